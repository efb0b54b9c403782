"""What the workspace gauges count (pure): the workspace PVCs by state, each workspace's current
and retained generations, and the legacy shared workspaces left. Computed from the watch cache's
groups when Prometheus scrapes, never per admission; no names in it, so no label cardinality."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent_workspace_webhook.rules.pvc import PvcState
from agent_workspace_webhook.rules.workspace import PREFIX

STATES = ("Bound", "Pending", "Lost", "deleting")


@dataclass(frozen=True)
class Census:
    pvcs: Mapping[str, int]  # by STATES: phase, or "deleting" for one with a deletionTimestamp
    current: int  # workspaces with a generation in use
    retained: int  # older generations still there beside a current one
    legacy: int  # shared workspace-{service} PVCs left
    idle_seconds: Mapping[str, float] = field(default_factory=dict)  # cache -> seconds since its last event
    unserved: Mapping[str, float] = field(default_factory=dict)  # cache -> 1 while its resource is not served


def census(groups: Iterable[tuple[str, Mapping[str, PvcState]]]) -> Census:
    """Over (name of generation 1, {PVC name: state}) for each workspace."""
    pvcs: Counter[str] = Counter(dict.fromkeys(STATES, 0))
    current = retained = legacy = 0
    for base, members in groups:
        alive = [s for s in members.values() if not s.deleting]
        for state in members.values():
            pvcs["deleting" if state.deleting else state.phase if state.phase in STATES else "Pending"] += 1
        if alive:
            current += 1
            retained += len(alive) - 1
        service = next((s.service for s in members.values() if s.service), base.removeprefix(PREFIX))
        legacy += base == PREFIX + service and base in members
    return Census(dict(pvcs), current, retained, legacy)
