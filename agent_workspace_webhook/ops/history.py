"""The history of each workspace (pure, over PVC, PV and Pod objects as the API returns them):
its generations (PVCs), which one is current, and the retained copies, i.e. the older
generations still there and the Released volumes that a deleted workspace PVC left behind in a
Retain class. What `workspaces` shows, `workspaces prune` thins and `workspaces restore` brings
back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_workspace_webhook.rules.generations import generation_name, later_generation
from agent_workspace_webhook.rules.labels import (
    ANNOTATION_MADE_FROM,
    LABEL_AGENT,
    LABEL_GENERATION_OF,
    LABEL_SERVICE,
    MANAGED_BY,
)
from agent_workspace_webhook.rules.pvc import pvc_state
from agent_workspace_webhook.rules.quantity import parse_quantity
from agent_workspace_webhook.rules.volume import is_marked
from agent_workspace_webhook.rules.workspace import is_workspace_name


@dataclass(frozen=True)
class Copy:
    """One life of a workspace: a PVC (one of its generations) or a Released volume."""

    namespace: str
    workspace: str  # the name of its generation 1
    generation: int
    pvc: str  # the PVC's name (of a Released volume: the PVC it was bound to)
    pv: str | None
    state: str  # Bound, Pending, "Bound, being deleted", Released
    size: str
    bytes: int
    made_from: str
    mounted_by: tuple[str, ...]
    created: str  # when the PVC (or the volume) was made
    ours: bool  # made by the webhook: only those are ever pruned
    current: bool = False
    service: str | None = None  # from a PVC's labels (a Released volume has none)
    agent: str | None = None
    cloned_from: str | None = None

    @property
    def released(self) -> bool:
        return self.state == "Released"


def histories(
    pvcs: Iterable[Mapping[str, Any]],
    pvs: Iterable[Mapping[str, Any]] = (),
    mounted: Mapping[tuple[str, str], list[str]] | None = None,
) -> dict[tuple[str, str], list[Copy]]:
    """(namespace, workspace) -> its copies, newest generation first; the current one marked."""
    found: dict[tuple[str, str], list[Copy]] = defaultdict(list)
    bases: dict[str, set[str]] = defaultdict(set)
    for pvc in pvcs:
        copy = _pvc_copy(pvc, mounted or {})
        if copy is not None:
            found[(copy.namespace, copy.workspace)].append(copy)
            bases[copy.namespace].add(copy.workspace)
    for pv in pvs:
        copy = _released_copy(pv, bases)
        if copy is not None:
            found[(copy.namespace, copy.workspace)].append(copy)
    for key, copies in found.items():
        copies.sort(key=lambda c: (c.generation, not c.released, c.created), reverse=True)
        alive = [c for c in copies if not c.released and "being deleted" not in c.state]
        if alive:
            current = max(alive, key=lambda c: c.generation)
            found[key] = [_marked(c) if c is current else c for c in copies]
    return dict(found)


def retained(copies: Iterable[Copy]) -> list[Copy]:
    """What a workspace keeps beside its current generation, newest first."""
    return sorted((c for c in copies if not c.current), key=lambda c: c.created, reverse=True)


def _marked(copy: Copy) -> Copy:
    return Copy(**{**copy.__dict__, "current": True})


def _pvc_copy(pvc: Mapping[str, Any], mounted: Mapping[tuple[str, str], list[str]]) -> Copy | None:
    metadata, status = pvc.get("metadata") or {}, pvc.get("status") or {}
    name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", ""))
    labels = metadata.get("labels") or {}
    if not is_workspace_name(name) and LABEL_GENERATION_OF not in labels:
        return None
    state = pvc_state(pvc)
    size = (status.get("capacity") or {}).get("storage") or state.storage or "?"
    ours = all(labels.get(key) == value for key, value in MANAGED_BY.items())
    return Copy(
        namespace=namespace,
        workspace=state.generation_of or name,
        generation=state.generation,
        pvc=name,
        pv=(pvc.get("spec") or {}).get("volumeName"),
        state=f"{state.phase}, being deleted" if state.deleting else state.phase,
        size=size,
        bytes=_bytes(size),
        made_from=(metadata.get("annotations") or {}).get(ANNOTATION_MADE_FROM) or ("-" if ours else "not the webhook"),
        mounted_by=tuple(sorted(mounted.get((namespace, name), ()))),
        created=str(metadata.get("creationTimestamp", "")),
        ours=ours,
        service=labels.get(LABEL_SERVICE),
        agent=labels.get(LABEL_AGENT),
        cloned_from=state.cloned_from,
    )


def _released_copy(pv: Mapping[str, Any], bases: Mapping[str, set[str]]) -> Copy | None:
    """A Released volume whose PVC was a workspace's: that workspace's retained copy."""
    metadata, spec = pv.get("metadata") or {}, pv.get("spec") or {}
    claim = spec.get("claimRef") or {}
    name, namespace = str(claim.get("name", "")), str(claim.get("namespace", ""))
    if (pv.get("status") or {}).get("phase") != "Released" or not is_workspace_name(name):
        return None
    workspace, generation = name, 1
    later = later_generation(name)
    if later is not None:
        head, number = later
        known = [b for b in bases.get(namespace, ()) if generation_name(b, number) == name]
        workspace, generation = (known[0] if known else head), number
    size = str((spec.get("capacity") or {}).get("storage", "?"))
    return Copy(
        namespace=namespace,
        workspace=workspace,
        generation=generation,
        pvc=name,
        pv=str(metadata.get("name", "")),
        state="Released",
        size=size,
        bytes=_bytes(size),
        made_from="-",
        mounted_by=(),
        created=str(metadata.get("creationTimestamp", "")),
        # Only what the webhook can prove it made: its mark, put on the volume as it was created
        # for a PVC the webhook made (rules/volume.py); a hand-made workspace-* claim's is not.
        ours=is_marked(pv),
    )


def _bytes(size: str) -> int:
    value = parse_quantity(size)
    return int(value) if value is not None else 0
