"""Numbered generations of one workspace (pure): a fresh run starts a new, empty generation and
the previous ones stay to be restored. Their PVC names, which one is current, and whether a
CodeRun asks for a fresh workspace as the platform's controller decides it.

Generation 1 is `workspace-{service}-{agent}` as it always was (every existing PVC keeps
working); generation N > 1 is that name with `-g{N}-{hash}`, where the hash covers the full base
name and N (the rule long names follow), so names stay distinct, valid and at most 63 characters.
Which generation is current is derived from the PVCs that exist (the watch cache), never kept
anywhere: every replica agrees, and a hit costs no API call.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from agent_workspace_webhook.rules.facts import FactsError, RunFacts, coderun_facts
from agent_workspace_webhook.rules.labels import MAX_GENERATION
from agent_workspace_webhook.rules.names import MAX_LABEL
from agent_workspace_webhook.rules.pvc import PvcState
from agent_workspace_webhook.rules.workspace import is_healer_run


def generation_name(base: str, generation: int) -> str:
    """The PVC name of that generation of the workspace whose generation 1 is `base`."""
    if generation < 1 or generation > MAX_GENERATION:
        raise ValueError(f"generation must be 1..{MAX_GENERATION}, not {generation}")
    if generation == 1:
        return base
    digest = hashlib.sha256(f"{base}\0{generation}".encode()).hexdigest()[:6]
    suffix = f"-g{generation}-{digest}"
    return base[: MAX_LABEL - len(suffix)].rstrip("-") + suffix


class Generation(msgspec.Struct, frozen=True):
    """One existing generation of a workspace, as the cache knows it."""

    number: int
    pvc: str
    state: PvcState


_LATER_SUFFIX = re.compile(r"-g([0-9]{1,4})-[0-9a-f]{6}$")  # what generation_name appends


def later_generation(name: str) -> tuple[str, int] | None:
    """(the name before the suffix, N) for a name generation_name made for N > 1, else None. The
    name before it is generation 1's only when that was not cut to fit: check with generation_name."""
    found = _LATER_SUFFIX.search(name)
    return None if found is None else (name[: found.start()], int(found.group(1)))


def current_generation(generations: Iterable[Generation]) -> Generation | None:
    """The current generation: the highest not being deleted; None when none is usable (none
    exists, or all are going)."""
    current = None
    for generation in generations:
        if not generation.state.deleting and (current is None or generation.number > current.number):
            current = generation
    return current


def made_since(generations: Iterable[Generation], since: datetime.datetime) -> int:
    """How many of the generations the webhook made (it labels them) were created at or after
    `since` (UTC); one so new that the API server's timestamp is not known yet counts."""
    made = 0
    for generation in generations:
        state = generation.state
        if state.generation_of is None:
            continue
        created = _timestamp(state.created)
        made += created is None or created >= since
    return made


def _timestamp(text: str | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def next_generation(generations: Iterable[Generation]) -> int:
    """The number a new generation gets: one above every that exists, those being deleted too."""
    return max((generation.number for generation in generations), default=0) + 1


def wants_fresh(spec: Mapping[str, Any]) -> bool:
    """Whether the platform's controller gives this CodeRun a fresh workspace: when
    `freshWorkspace` is true, or unset with `runType: intake` (its should_use_fresh_workspace)."""
    fresh = spec.get("freshWorkspace")
    if isinstance(fresh, bool):
        return fresh
    return fresh is None and spec.get("runType") == "intake"


@dataclass(frozen=True, slots=True)
class FreshRun:
    """A CodeRun that asks for a fresh workspace (the watch cache keeps only these)."""

    uid: str
    namespace: str
    name: str
    created: str  # its creationTimestamp (RFC 3339, UTC)
    facts: RunFacts


def fresh_run_of(coderun: Mapping[str, Any]) -> FreshRun | None:
    """The CodeRun as a FreshRun when it asks for a fresh workspace, else None (also when its
    facts are malformed: its own admission was denied for that)."""
    metadata, spec = coderun.get("metadata") or {}, coderun.get("spec")
    if not isinstance(spec, Mapping) or not wants_fresh(spec) or is_healer_run(spec):
        return None
    try:
        facts = coderun_facts(coderun)
    except FactsError:
        return None
    return FreshRun(
        str(metadata.get("uid", "")),
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
        str(metadata.get("creationTimestamp", "")),
        facts,
    )


def awaits_fresh_generation(run: FreshRun, generations: Iterable[Generation]) -> bool:
    """Whether this fresh run still needs its new generation: none was made for it, and none the
    webhook made since it started is in use (such a one is as empty; one this process just made
    has no timestamp yet). A PVC the platform's controller re-made under the generation-1 name
    does not count: its class is the controller's, and the controller deletes that name again at
    the next fresh run, so the fresh run gets a generation of the webhook's own."""
    for generation in generations:
        state = generation.state
        if state.fresh_for == run.uid:
            return False
        ours = state.generation_of is not None  # the webhook labels what it makes
        # Timestamps have whole seconds: one made in the run's own second may be the run before's.
        if ours and not state.deleting and (state.created is None or state.created > run.created):
            return False
    return True
