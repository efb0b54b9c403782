"""Generations of a workspace: names, the current one, and which CodeRuns ask for a fresh one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_workspace_webhook.rules.facts import RunFacts
from agent_workspace_webhook.rules.generations import (
    FreshRun,
    Generation,
    awaits_fresh_generation,
    current_generation,
    fresh_run_of,
    generation_name,
    later_generation,
    next_generation,
    wants_fresh,
)
from agent_workspace_webhook.rules.labels import LABEL_GENERATION, generation_of
from agent_workspace_webhook.rules.names import is_dns1123_label
from agent_workspace_webhook.rules.pvc import PvcState
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


def generation(
    number: int, deleting: bool = False, fresh_for: str | None = None, created: str | None = None, ours: bool = True
) -> Generation:
    """A generation; `ours`: made by the webhook (labelled), not re-made by the platform's controller."""
    base = "workspace-cto-cleo"
    of = base if ours else None
    state = PvcState(
        "Bound", deleting, False, ("ReadWriteOnce",), None, None, "10Gi", None, number, of, fresh_for, created
    )
    return Generation(number, generation_name(base, number), state)


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
    found = current_generation([generation(number, deleting) for number, deleting in existing.items()])
    assert (found.number if found else None) == current


@pytest.mark.parametrize(("existing", "following"), [([], 1), ([1], 2), ([1, 3], 4), ([2], 3)])
def test_a_new_generation_counts_past_every_existing_one(existing: list[int], following: int) -> None:
    # a generation being deleted still holds its number: its name is taken until it is gone
    assert next_generation([generation(number, deleting=number == 3) for number in existing]) == following


RUN = FreshRun("uid-1", "agents", "cto-intake", "2026-11-30T10:00:00Z", RunFacts("cto", "5DLabs-Cleo", "s", "a"))


@pytest.mark.parametrize(
    ("existing", "awaits"),
    [
        ([], True),  # nothing yet: its first Pod makes generation 1
        ([generation(1, created="2026-11-30T09:00:00Z")], True),  # an older one: make a new one
        ([generation(2, fresh_for="uid-1", created="2026-11-30T10:00:00Z")], False),  # made for it, same second
        ([generation(1, created="2026-11-30T10:00:05Z")], False),  # the webhook made one since: as empty
        # the platform's controller deleted and re-made generation 1 for it: not the webhook's own
        ([generation(1, created="2026-11-30T10:00:05Z", ours=False)], True),
        ([generation(1, deleting=True, created="2026-11-30T10:00:05Z")], True),  # that one going
        ([generation(1, created=None)], False),  # just made by this process: newer than the run
        ([generation(1, created="2026-11-30T10:00:00Z")], True),  # in its own second: maybe the run before's
        ([generation(1, created="2026-11-30T09:59:59Z")], True),  # a second before it: not for it
    ],
)
def test_a_fresh_run_awaits_its_generation_until_one_newer_exists(existing: list[Generation], awaits: bool) -> None:
    assert awaits_fresh_generation(RUN, existing) is awaits


def test_fresh_run_of_a_coderun() -> None:
    run = {
        "metadata": {"name": "r", "namespace": "ns", "uid": "u", "creationTimestamp": "2026-11-30T10:00:00Z"},
        "spec": {"service": "cto", "githubApp": "5DLabs-Cleo", "freshWorkspace": True},
    }
    fresh = fresh_run_of(run)
    assert fresh is not None and (fresh.uid, fresh.namespace, fresh.name, fresh.facts.app) == (
        "u",
        "ns",
        "r",
        "5DLabs-Cleo",
    )
    assert fresh_run_of({**run, "spec": {"service": "cto", "githubApp": "5DLabs-Cleo"}}) is None
    assert (
        fresh_run_of({**run, "spec": {"service": 7, "freshWorkspace": True}}) is None
    )  # malformed: its admission said so
    # A healer run's fresh workspace is the controller's own healer-workspace, never a generation.
    assert (
        fresh_run_of({**run, "spec": {"service": "healer", "githubApp": "5DLabs-Healer", "freshWorkspace": True}})
        is None
    )


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


@given(labels, labels, st.integers(2, 9999))
def test_a_later_generations_name_says_its_number(service: str, agent: str, number: int) -> None:
    base = pvc_name(service, agent)
    head, found = later_generation(generation_name(base, number)) or ("", 0)
    assert found == number and base.startswith(head)
