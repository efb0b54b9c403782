"""Object -> the minimal JSON patch that records the workspace (pure).

Only the parts the webhook may change are looked at, and their ops written out: two maps of
strings in metadata, the one workspace volume, and (for a ReadWriteOnce workspace) the Pod's
affinity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE, LABEL_WORKSPACE

HOSTNAME = "kubernetes.io/hostname"
# For isinstance: dict first, as JSON's objects are dicts, and the Mapping ABC's check alone costs
# a Python call (a tenth of this module's time on a hit).
MAPPING = (dict, Mapping)
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def find_volume(pod: Mapping[str, Any], volume_name: str) -> int | None:
    """Index of the Pod's volume with that name, or None."""
    spec = pod.get("spec")
    volumes = spec.get("volumes") if isinstance(spec, MAPPING) else None
    if not isinstance(volumes, list):
        return None
    for index, volume in enumerate(volumes):
        if isinstance(volume, MAPPING) and volume.get("name") == volume_name:
            return index
    return None


def volume_problem(volume: Mapping[str, Any]) -> str | None:
    """Why the workspace volume is no claim the webhook may point elsewhere, or None. Only a
    persistentVolumeClaim is re-pointed: any other source (a hostPath, an emptyDir) would be
    replaced, and what it holds lost without a word."""
    sources = sorted(key for key in volume if key != "name")
    if sources == ["persistentVolumeClaim"] and isinstance(volume["persistentVolumeClaim"], MAPPING):
        return None
    kind = " and ".join(sources) or "no source"
    return (
        f"its volume {volume.get('name')!r} is {kind}, not a persistentVolumeClaim; the webhook points a "
        "workspace claim at the agent's workspace and never replaces another kind of volume: declare it as "
        "a persistentVolumeClaim (the platform's controller does: claimName workspace-{service})"
    )


def claim_of(volume: Mapping[str, Any]) -> str | None:
    """The claim a volume that volume_problem() passed names; None when it names none."""
    claim = volume["persistentVolumeClaim"].get("claimName")
    return claim if isinstance(claim, str) else None


def shape_problem(obj: Mapping[str, Any]) -> str | None:
    """Why the object cannot be patched safely (a field of the wrong type), or None."""
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, MAPPING):
        return "metadata must be an object"
    for key in ("labels", "annotations"):
        value = metadata.get(key, {})
        if not isinstance(value, MAPPING) or not all(isinstance(v, str) for v in value.values()):
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
    Every op is written out, rooted where it applies; tests/unit/test_mutation.py checks that they
    reach what jsonpatch.make_patch would, with no more ops."""
    patch = _metadata_patch(obj, labels, pvc)
    if volume_index is not None:
        patch += _volume_patch(obj["spec"]["volumes"][volume_index], pvc, f"/spec/volumes/{volume_index}")
    return patch


def _volume_patch(old: Mapping[str, Any], pvc: str, root: str) -> list[dict[str, Any]]:
    """Ops that point the workspace volume at the PVC, written out (a generic diff cost more than
    the rest of an admission): a PVC source gets its claimName set (readOnly kept); any other
    source (emptyDir, ...) is replaced, since a volume has exactly one."""
    source = old.get("persistentVolumeClaim")
    if isinstance(source, MAPPING) and set(old) == {"name", "persistentVolumeClaim"}:
        if source.get("claimName") == pvc:
            return []
        op = "replace" if "claimName" in source else "add"
        ops = [{"op": op, "path": f"{root}/persistentVolumeClaim/claimName", "value": pvc}]
        return ops + [
            {"op": "remove", "path": f"{root}/persistentVolumeClaim/{escape_key(key)}"}
            for key in source
            if key not in ("claimName", "readOnly")
        ]
    return [
        {"op": "replace", "path": root, "value": {"name": old["name"], "persistentVolumeClaim": {"claimName": pvc}}}
    ]


def escape_key(key: str) -> str:
    """A map key as a JSON-pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def map_patch(obj: Mapping[str, Any], field: str, wanted: Mapping[str, str]) -> list[dict[str, Any]]:
    """Ops that make metadata.<field> (a map of strings) contain `wanted`, leaving other keys.

    Written out rather than diffed with jsonpatch.make_patch: for a flat map of strings the
    minimal patch is plain (add the map, or add/replace keys), and make_patch's generic diff
    cost more than the rest of an admission. tests/unit/test_mutation.py checks both agree.
    """
    metadata = obj.get("metadata")
    current = metadata.get(field) if isinstance(metadata, MAPPING) else None
    if metadata is None:
        return [{"op": "add", "path": "/metadata", "value": {field: dict(wanted)}}]
    if current is None:
        return [{"op": "add", "path": f"/metadata/{field}", "value": dict(wanted)}]
    return [
        {"op": "replace" if key in current else "add", "path": f"/metadata/{field}/{escape_key(key)}", "value": value}
        for key, value in wanted.items()
        if current.get(key) != value
    ]


def _metadata_patch(obj: Mapping[str, Any], labels: Mapping[str, str], pvc: str) -> list[dict[str, Any]]:
    annotations = map_patch(obj, "annotations", {ANNOTATION_WORKSPACE: pvc})
    if annotations and annotations[0]["path"] == "/metadata":  # no metadata at all: add it once, whole
        return [
            {
                "op": "add",
                "path": "/metadata",
                "value": {"labels": dict(labels), "annotations": {ANNOTATION_WORKSPACE: pvc}},
            }
        ]
    return annotations + map_patch(obj, "labels", labels)


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
    if not isinstance(affinity, MAPPING):
        return [{"op": "add", "path": "/spec/affinity", "value": {"podAffinity": {REQUIRED: [term]}}}]
    pod_affinity = affinity.get("podAffinity")
    if not isinstance(pod_affinity, MAPPING):
        return [{"op": "add", "path": "/spec/affinity/podAffinity", "value": {REQUIRED: [term]}}]
    required = pod_affinity.get(REQUIRED)
    path = f"/spec/affinity/podAffinity/{REQUIRED}"
    if not isinstance(required, list):
        return [{"op": "add", "path": path, "value": [term]}]
    return [] if term in required else [{"op": "add", "path": f"{path}/-", "value": term}]
