"""The platform controller's own workspace PVCs (pure). Before every Job, its reconcile creates the
claim it computes for the run when that is missing (5dlabs/cto resources.rs ensure_pvc_exists),
in its own class and size; for every agent but its implementation agents that claim is the
webhook's generation 1, `workspace-{service}-{agent}`. Adopted at its creation (a webhook entry of
its own, failurePolicy Ignore, never a refusal), it lives where every workspace does: the
workspaces' class (keep one with reclaimPolicy Retain, so that the controller's delete of it for
a fresh run leaves a Released volume to restore), at least the workspaces' size, the webhook's
labels. A claim the controller re-makes after that delete is no generation, only its placeholder:
left as it is (the fresh run gets a generation of the webhook's own)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.rules.facts import RunFacts
from agent_workspace_webhook.rules.patch import MAPPING, map_patch
from agent_workspace_webhook.rules.pvc import larger

# The labels ensure_pvc_exists puts on every PVC it creates (the webhook entry selects on them).
CONTROLLER_PVC_LABELS = {"app": "orchestrator", "component": "code-runner"}
# Its made-from annotation (what the `workspaces` report shows), as "clone of X" is the webhook's own.
ADOPTED = "adopted from the platform's controller"


def is_controller_pvc(pvc: Mapping[str, Any]) -> bool:
    metadata = pvc.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, MAPPING) else None
    return isinstance(labels, MAPPING) and all(labels.get(k) == v for k, v in CONTROLLER_PVC_LABELS.items())


def controller_pvc_facts(pvc: Mapping[str, Any]) -> RunFacts | None:
    """The service and agent the controller labelled its PVC with; None without both (a run
    without a GitHub App: its claim is the shared workspace-{service}, never a generation)."""
    labels = (pvc.get("metadata") or {}).get("labels") or {}
    service, agent = labels.get("service"), labels.get("agent")
    if not isinstance(service, str) or not isinstance(agent, str) or not service or not agent:
        return None
    return RunFacts(service, None, "metadata.labels.service", "metadata.labels.agent", agent=agent)


def adoption_patch(pvc: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ops that make the controller's PVC the one the webhook would have made (`wanted`, from
    pvc.pvc_manifest: the workspaces' class, access modes, a clone's source, the webhook's labels
    and annotations) while keeping what the controller set: its labels (the webhook's only where
    it set none) and a size never below what it asked for. The PVC must have passed
    patch.shape_problem; a dataSource can only be given at creation, which this is."""
    theirs = (pvc.get("metadata") or {}).get("labels") or {}
    labels = {key: value for key, value in wanted["metadata"]["labels"].items() if key not in theirs}
    ops = map_patch(pvc, "labels", labels)
    ops += map_patch(pvc, "annotations", wanted["metadata"]["annotations"])
    body = pvc.get("spec")
    if not isinstance(body, MAPPING):  # no spec: the API server refuses it whatever we say
        return ops
    for key in ("storageClassName", "accessModes", "volumeMode", "dataSource"):
        if key in wanted["spec"] and body.get(key) != wanted["spec"][key]:
            op = "replace" if key in body else "add"
            ops.append({"op": op, "path": f"/spec/{key}", "value": wanted["spec"][key]})
    return ops + _size_patch(body, wanted["spec"]["resources"]["requests"]["storage"])


def _size_patch(body: Mapping[str, Any], ours: str) -> list[dict[str, Any]]:
    resources = body.get("resources")
    requests = resources.get("requests") if isinstance(resources, MAPPING) else None
    asked = requests.get("storage") if isinstance(requests, MAPPING) else None
    size = larger(ours, asked if isinstance(asked, str) else None)
    if size == asked:
        return []
    if isinstance(requests, MAPPING):
        op = "replace" if "storage" in requests else "add"
        return [{"op": op, "path": "/spec/resources/requests/storage", "value": size}]
    if isinstance(resources, MAPPING):
        return [{"op": "add", "path": "/spec/resources/requests", "value": {"storage": size}}]
    return [{"op": "add", "path": "/spec/resources", "value": {"requests": {"storage": size}}}]
