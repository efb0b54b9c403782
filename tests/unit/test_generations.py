"""Generations of a workspace: names, the current one, and which CodeRuns ask for a fresh one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_workspace_webhook.rules.generations import (
    LABEL_GENERATION,
    current_generation,
    generation_name,
    generation_of,
    wants_fresh,
)
from agent_workspace_webhook.rules.names import is_dns1123_label
from agent_workspace_webhook.rules.workspace import pvc_name

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)


def test_generation_one_is_todays_name_and_later_ones_say_their_number() -> None:
    assert generation_name("workspace-cto-cleo", 1) == "workspace-cto-cleo"
    second = generation_name("workspace-cto-cleo", 2)
    assert second.startswith("workspace-cto-cleo-g2-") and len(second) == len("workspace-cto-cleo-g2-") + 6


@given(labels, labels, st.integers(1, 9999))
def test_every_generation_name_is_a_valid_label_of_at_most_63(service: str, agent: str, generation: int) -> None:
    name = generation_name(pvc_name(service, agent), generation)
    assert is_dns1123_label(name) and len(name) <= 63


@given(st.lists(st.tuples(labels, labels, st.integers(1, 50)), min_size=2, max_size=20, unique=True))
def test_no_two_workspaces_or_generations_share_a_name(workspaces: list[tuple[str, str, int]]) -> None:
    pairs = {(pvc_name(service, agent), generation) for service, agent, generation in workspaces}
    assert len({generation_name(base, generation) for base, generation in pairs}) == len(pairs)


def test_long_names_keep_their_generation_apart() -> None:
    base = pvc_name("s" * 60, "tess")
    assert len(base) == 63
    names = {generation_name(base, g) for g in range(1, 200)}
    assert len(names) == 199 and all(len(n) <= 63 for n in names)


def test_the_same_in_every_process() -> None:
    code = "from agent_workspace_webhook.rules.generations import generation_name as g; print(g('workspace-a-b', 7))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == generation_name("workspace-a-b", 7)


@pytest.mark.parametrize("bad", [0, -1, 10_000])
def test_a_generation_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="generation must be"):
        generation_name("workspace-a-b", bad)


@pytest.mark.parametrize(
    ("label", "generation"),
    [(None, 1), ("3", 3), ("0", 1), ("x", 1), ("99999", 1), ("-2", 1), ("", 1)],
)
def test_generation_of_a_pvc_from_its_label(label: str | None, generation: int) -> None:
    assert generation_of({} if label is None else {LABEL_GENERATION: label}) == generation


@pytest.mark.parametrize(
    ("existing", "current"),
    [
        ({}, None),
        ({1: False}, 1),
        ({1: False, 2: False, 3: False}, 3),
        ({1: False, 3: False, 2: False}, 3),
        ({1: False, 2: True}, 1),  # the newest is going: the one before it is current
        ({1: True}, None),  # all going: none to hand out
        ({1: True, 2: False}, 2),  # the platform deleted generation 1 after a fresh run made 2
    ],
)
def test_the_current_generation_is_the_highest_not_being_deleted(
    existing: dict[int, bool], current: int | None
) -> None:
    assert current_generation(existing) == current


@pytest.mark.parametrize(
    ("spec", "fresh"),
    [
        ({}, False),
        ({"freshWorkspace": True}, True),
        ({"freshWorkspace": False}, False),
        ({"runType": "intake"}, True),
        ({"runType": "intake", "freshWorkspace": False}, False),
        ({"runType": "implementation"}, False),
        ({"runType": "implementation", "freshWorkspace": True}, True),
        ({"freshWorkspace": "yes"}, False),  # not a boolean: the API server's schema would refuse it
    ],
)
def test_fresh_as_the_platforms_controller_decides(spec: dict[str, object], fresh: bool) -> None:
    assert wants_fresh(spec) is fresh
