"""logs.event's lines (one per admission) are buffered and written once per turn of the event
loop, even where stderr itself is unbuffered (PYTHONUNBUFFERED, as the image sets); any other
log line flushes them first, so the file keeps their order."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_workspace_webhook import logs


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "serve.log"
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logs._SINK.stream
    # As Python makes stderr under PYTHONUNBUFFERED: text written through to unbuffered bytes.
    with io.TextIOWrapper(io.FileIO(path, "w"), write_through=True) as stream:
        logs.configure("INFO", stream)
        yield path
    root.handlers[:], root.level, logs._SINK.stream = saved


def events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_lines_of_one_turn_are_held_until_its_end_then_written(log_file: Path) -> None:
    async def turn() -> list[str]:
        logs.event(logging.INFO, "admission", {"uid": "1"})
        logs.event(logging.INFO, "admission", {"uid": "2"})
        seen = events(log_file)
        await asyncio.sleep(0)  # the end of the turn
        await asyncio.sleep(0)
        return seen

    assert asyncio.run(turn()) == []
    assert events(log_file) == ["admission", "admission"]


def test_another_log_line_comes_after_the_held_ones(log_file: Path) -> None:
    async def turn() -> None:
        logs.event(logging.INFO, "admission", {"uid": "1"})
        logs.logger().warning("overloaded")
        logs.event(logging.INFO, "admission", {"uid": "2"})

    asyncio.run(turn())
    assert events(log_file) == ["admission", "overloaded", "admission"]


def test_outside_an_event_loop_a_line_is_written_at_once(log_file: Path) -> None:
    logs.event(logging.WARNING, "admission", {"uid": "3"})
    assert events(log_file) == ["admission"]
