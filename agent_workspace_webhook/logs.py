"""Structured logs: one JSON object per line, fields passed as ``extra={"fields": {...}}``, or
through event() on the hot path."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, TextIO

import orjson

LOGGER = "agent_workspace_webhook"


class _Sink:
    """Where event() writes, once configure() has run: stderr's bytes, beside the handler's text."""

    stream: BinaryIO | None = None
    flush_pending = False
    second = -1  # the second whose formatted timestamp is in prefix
    prefix = ""

    def flush(self) -> None:
        self.flush_pending = False
        if self.stream is not None:
            self.stream.flush()


_SINK = _Sink()


def _timestamp(created: float) -> str:
    second = int(created)
    if second != _SINK.second:  # strftime once a second, not once a line
        _SINK.second, _SINK.prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{_SINK.prefix}.{int(created * 1000) % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        if not record.name.startswith(LOGGER):
            line["logger"] = record.name  # uvicorn, asyncio: say whose line it is
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # orjson: a quarter of the standard encoder's cost, on every admission's line.
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Every logger in the process writes JSON lines: ours at `level`; the libraries' (uvicorn's
    "Invalid HTTP request received.", asyncio's) through the root logger at warning and above,
    where Python would otherwise print them as bare text."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    _SINK.stream = stream.buffer
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger(LOGGER)
    ours.handlers.clear()
    ours.setLevel(level.upper())
    ours.propagate = True


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER)


def event(level: int, name: str, fields: Mapping[str, Any]) -> None:
    """One line, as `logger().log(level, name, extra={"fields": fields})` would write it, for the
    line every admission writes: once configure() has set up stderr, without building a LogRecord
    (with the handler's lock and the caller lookup, that was most of the line's cost)."""
    ours = logging.getLogger(LOGGER)
    if not ours.isEnabledFor(level):
        return
    stream = _SINK.stream
    if stream is None:  # not configured (tests, a library user): through logging as usual
        ours.log(level, name, extra={"fields": dict(fields)})
        return
    line = {"ts": _timestamp(time.time()), "level": logging.getLevelName(level).lower(), "event": name, **fields}
    stream.write(orjson.dumps(line, default=str) + b"\n")
    if _SINK.flush_pending:
        return
    # Under load many admissions end in one turn of the event loop: their lines go out in one
    # write at the end of it (a syscall per line was a tenth of an admission's cost).
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        stream.flush()
        return
    _SINK.flush_pending = True
    loop.call_soon(_SINK.flush)
