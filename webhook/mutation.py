"""Object -> desired object -> minimal JSON patch (pure, uses jsonpatch).

Only the parts the webhook may change are copied and compared, so the patch is computed on a
small projection of the object; its paths are the same as in the full object.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch

from webhook.names import MAX_LABEL

LABEL_SERVICE = "agents.platform/service"
LABEL_AGENT = "agents.platform/agent"
LABEL_WORKSPACE = "agents.platform/workspace"
ANNOTATION_WORKSPACE = "agents.platform/workspace"


def find_volume(pod: Mapping[str, Any], volume_name: str) -> int | None:
    """Index of the Pod's volume with that name, or None."""
    spec = pod.get("spec")
    volumes = spec.get("volumes") if isinstance(spec, Mapping) else None
    if not isinstance(volumes, list):
        return None
    for index, volume in enumerate(volumes):
        if isinstance(volume, Mapping) and volume.get("name") == volume_name:
            return index
    return None


def workspace_labels(service: str, agent: str | None, pvc: str) -> dict[str, str]:
    labels = {LABEL_SERVICE: service}
    if agent is not None:
        labels[LABEL_AGENT] = agent
    if len(pvc) <= MAX_LABEL:  # only a long legacy name can exceed it; the annotation still has it
        labels[LABEL_WORKSPACE] = pvc
    return labels


def shape_problem(obj: Mapping[str, Any]) -> str | None:
    """Why the object cannot be patched safely (a field of the wrong type), or None."""
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, Mapping):
        return "metadata must be an object"
    for key in ("labels", "annotations"):
        value = metadata.get(key, {})
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            return f"metadata.{key} must be an object of strings"
    return None


def _projection(obj: Mapping[str, Any], with_volumes: bool) -> dict[str, Any]:
    part: dict[str, Any] = {}
    if "metadata" in obj:
        metadata = obj["metadata"]
        part["metadata"] = {k: dict(metadata[k]) for k in ("labels", "annotations") if k in metadata}
    if with_volumes:
        part["spec"] = {"volumes": copy.deepcopy(obj["spec"]["volumes"])}
    return part


def workspace_patch(
    obj: Mapping[str, Any],
    labels: Mapping[str, str],
    pvc: str,
    volume_index: int | None,
) -> list[dict[str, Any]]:
    """The JSON patch that records the workspace in labels and an annotation and, for a Pod
    (volume_index given), points that volume at the PVC. Empty when nothing needs to change.

    The object must have passed shape_problem() and volume_index come from find_volume()."""
    before = _projection(obj, volume_index is not None)
    after = copy.deepcopy(before)
    metadata = after.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), ANNOTATION_WORKSPACE: pvc}
    if volume_index is not None:
        volumes = after["spec"]["volumes"]
        old = volumes[volume_index]
        source = old.get("persistentVolumeClaim")
        keep = {k: v for k, v in source.items() if k == "readOnly"} if isinstance(source, Mapping) else {}
        # A volume has exactly one source, so an emptyDir (or any other) is replaced, not kept.
        volumes[volume_index] = {"name": old["name"], "persistentVolumeClaim": {"claimName": pvc, **keep}}
    patch: list[dict[str, Any]] = jsonpatch.make_patch(before, after).patch
    return patch
