"""The PersistentVolumeClaim the webhook creates for a workspace, what it keeps to know of the
ones that exist, and the rules for seeding a new one as a clone of the legacy workspace (pure)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from agent_workspace_webhook.rules.labels import (
    ANNOTATION_CLONED_FROM,
    ANNOTATION_FRESH_FOR,
    ANNOTATION_MADE_FROM,
    COMPONENT,
    LABEL_GENERATION_OF,
    LABEL_SERVICE,
    MANAGED_BY,
    MANAGED_BY_KEY,
    generation_of,
)
from agent_workspace_webhook.rules.quantity import parse_quantity

PVC_PROTECTION = "kubernetes.io/pvc-protection"


@dataclass(frozen=True)
class PvcSpec:
    """What every new workspace gets, from the settings."""

    storage_size: str
    access_modes: Sequence[str]
    storage_class: str | None = None


class PvcState(msgspec.Struct, frozen=True):
    """What the webhook knows of an existing workspace PVC (the watch cache keeps one per PVC):
    enough to deny a dying one, to colocate RWO runs and to clone it."""

    phase: str  # Pending, Bound, Lost
    deleting: bool  # has a deletionTimestamp
    # Still held by the pvc-protection finalizer: a Pod mounts it (when deleting).
    protected: bool
    access_modes: tuple[str, ...]
    storage_class: str | None
    volume_mode: str | None
    storage: str | None  # spec.resources.requests.storage
    cloned_from: str | None = None
    generation: int = 1  # its label; 1 for PVCs made before generations, or by others
    generation_of: str | None = None  # the name of its generation 1 (None: its own)
    fresh_for: str | None = None  # the uid of the CodeRun it was made fresh for
    created: str | None = None  # creationTimestamp (RFC 3339, UTC); None until the API server set it
    service: str | None = None  # its agents.platform/service label (the gauges tell legacy ones apart)
    ours: bool = False  # made (or adopted) by the webhook: app.kubernetes.io/managed-by says so


def pvc_state(pvc: Mapping[str, Any]) -> PvcState:
    """The PvcState of a PVC as the API server returns it (a dict)."""
    metadata, spec = pvc.get("metadata") or {}, pvc.get("spec") or {}
    requests = (spec.get("resources") or {}).get("requests") or {}
    labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
    return PvcState(
        phase=str((pvc.get("status") or {}).get("phase") or "Pending"),
        deleting=metadata.get("deletionTimestamp") is not None,
        protected=PVC_PROTECTION in (metadata.get("finalizers") or ()),
        # Interned: one copy of each mode string however many PVCs are cached.
        access_modes=tuple(sys.intern(str(m)) for m in spec.get("accessModes") or ()),
        storage_class=spec.get("storageClassName"),
        volume_mode=spec.get("volumeMode"),
        storage=requests.get("storage"),
        cloned_from=annotations.get(ANNOTATION_CLONED_FROM),
        generation=generation_of(labels),
        generation_of=labels.get(LABEL_GENERATION_OF),
        fresh_for=annotations.get(ANNOTATION_FRESH_FOR),
        created=metadata.get("creationTimestamp"),
        service=labels.get(LABEL_SERVICE),
        ours=labels.get(MANAGED_BY_KEY) == MANAGED_BY[MANAGED_BY_KEY],
    )


@dataclass(frozen=True)
class Clone:
    """A new workspace seeded from an existing PVC: the rules the CSI external provisioner
    enforces for clones (same class and volume mode, no smaller) are applied by pvc_manifest."""

    source: str
    state: PvcState


def clone_problem(source: str, state: PvcState | None) -> str | None:
    """Why the legacy PVC cannot be cloned, or None when it can."""
    if state is None:
        return f"there is no legacy PersistentVolumeClaim {source} to clone"
    if state.deleting:
        return f"the legacy PersistentVolumeClaim {source} is being deleted"
    if state.phase != "Bound":
        return f"the legacy PersistentVolumeClaim {source} is {state.phase}, not Bound"
    return None


def larger(ours: str, theirs: str | None) -> str:
    """The larger of two storage requests (ours when theirs cannot be read)."""
    if theirs is None:
        return ours
    mine, other = parse_quantity(ours), parse_quantity(theirs)
    return theirs if mine is not None and other is not None and other > mine else ours


def pvc_manifest(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    spec: PvcSpec,
    clone: Clone | None = None,
    fresh_for: str | None = None,
    made_from: str | None = None,
) -> dict[str, Any]:
    """No ownerReferences: a workspace outlives the runs that use it. A clone takes the source's
    storage class and volume mode and asks for at least the source's size. `fresh_for` is the
    uid of the CodeRun a fresh generation is made for; `made_from` says what it is made from
    (default: "empty", or "clone of X")."""
    storage = spec.storage_size
    body: dict[str, Any] = {"accessModes": list(spec.access_modes)}
    annotations = {ANNOTATION_MADE_FROM: made_from or (f"clone of {clone.source}" if clone else "empty")}
    if fresh_for is not None:
        annotations[ANNOTATION_FRESH_FOR] = fresh_for
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**MANAGED_BY, **COMPONENT, **labels},
        "annotations": annotations,
    }
    storage_class = spec.storage_class
    if clone is not None:
        storage = larger(storage, clone.state.storage)
        storage_class = clone.state.storage_class
        if clone.state.volume_mode is not None:
            body["volumeMode"] = clone.state.volume_mode
        body["dataSource"] = {"kind": "PersistentVolumeClaim", "name": clone.source}
        annotations[ANNOTATION_CLONED_FROM] = clone.source
    body["resources"] = {"requests": {"storage": storage}}
    if storage_class is not None:
        body["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": body}
