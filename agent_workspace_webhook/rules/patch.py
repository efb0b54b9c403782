"""Object -> the minimal JSON patch that records the workspace (pure).

Only the parts the webhook may change are looked at: two maps of strings in metadata, written
out as ops, and the one workspace volume, diffed with jsonpatch and rooted at its index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonpatch

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE, LABEL_WORKSPACE

HOSTNAME = "kubernetes.io/hostname"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


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


def workspace_patch(
    obj: Mapping[str, Any],
    labels: Mapping[str, str],
    pvc: str,
    volume_index: int | None,
) -> list[dict[str, Any]]:
    """The JSON patch that records the workspace in labels and an annotation and, for a Pod
    (volume_index given), points that volume at the PVC. Empty when nothing needs to change.

    The object must have passed shape_problem() and volume_index come from find_volume().
    Each part is diffed on its own (metadata's two maps, then the one volume) and the volume's
    operations are rooted at its index: diffing the whole volume list costs far more."""
    patch = _metadata_patch(obj, labels, pvc)
    if volume_index is not None:
        old = obj["spec"]["volumes"][volume_index]
        source = old.get("persistentVolumeClaim")
        keep = {k: v for k, v in source.items() if k == "readOnly"} if isinstance(source, Mapping) else {}
        # A volume has exactly one source, so an emptyDir (or any other) is replaced, not kept.
        new = {"name": old["name"], "persistentVolumeClaim": {"claimName": pvc, **keep}}
        root = f"/spec/volumes/{volume_index}"
        for op in jsonpatch.make_patch(old, new).patch:
            patch.append({**op, "path": root + op["path"]})
    return patch


def _escape(key: str) -> str:
    """A map key as a JSON-pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _map_patch(obj: Mapping[str, Any], field: str, wanted: Mapping[str, str]) -> list[dict[str, Any]]:
    """Ops that make metadata.<field> (a map of strings) contain `wanted`, leaving other keys.

    Written out rather than diffed with jsonpatch.make_patch: for a flat map of strings the
    minimal patch is plain (add the map, or add/replace keys), and make_patch's generic diff
    cost more than the rest of an admission. tests/unit/test_mutation.py checks both agree.
    """
    metadata = obj.get("metadata")
    current = metadata.get(field) if isinstance(metadata, Mapping) else None
    if metadata is None:
        return [{"op": "add", "path": "/metadata", "value": {field: dict(wanted)}}]
    if current is None:
        return [{"op": "add", "path": f"/metadata/{field}", "value": dict(wanted)}]
    return [
        {"op": "replace" if key in current else "add", "path": f"/metadata/{field}/{_escape(key)}", "value": value}
        for key, value in wanted.items()
        if current.get(key) != value
    ]


def _metadata_patch(obj: Mapping[str, Any], labels: Mapping[str, str], pvc: str) -> list[dict[str, Any]]:
    annotations = _map_patch(obj, "annotations", {ANNOTATION_WORKSPACE: pvc})
    if annotations and annotations[0]["path"] == "/metadata":  # no metadata at all: add it once, whole
        return [
            {
                "op": "add",
                "path": "/metadata",
                "value": {"labels": dict(labels), "annotations": {ANNOTATION_WORKSPACE: pvc}},
            }
        ]
    return annotations + _map_patch(obj, "labels", labels)


def colocation_term(pvc: str) -> dict[str, Any]:
    """Required pod affinity to the Pods of the same workspace, on one node: two Pods mounting one
    ReadWriteOnce volume from different nodes would leave the second unable to attach it. The
    first Pod of a workspace matches its own term, which the scheduler lets it place freely."""
    return {"labelSelector": {"matchLabels": {LABEL_WORKSPACE: pvc}}, "topologyKey": HOSTNAME}


def colocation_patch(pod: Mapping[str, Any], pvc: str) -> list[dict[str, Any]]:
    """Ops that add colocation_term(pvc) to the Pod's affinity, merged into what it has; none
    when the term is already there (reinvocation adds no second one)."""
    term = colocation_term(pvc)
    affinity = pod["spec"].get("affinity")
    if not isinstance(affinity, Mapping):
        return [{"op": "add", "path": "/spec/affinity", "value": {"podAffinity": {REQUIRED: [term]}}}]
    pod_affinity = affinity.get("podAffinity")
    if not isinstance(pod_affinity, Mapping):
        return [{"op": "add", "path": "/spec/affinity/podAffinity", "value": {REQUIRED: [term]}}]
    required = pod_affinity.get(REQUIRED)
    path = f"/spec/affinity/podAffinity/{REQUIRED}"
    if not isinstance(required, list):
        return [{"op": "add", "path": path, "value": [term]}]
    return [] if term in required else [{"op": "add", "path": f"{path}/-", "value": term}]
