"""The mark on a workspace's volume (pure). A PersistentVolume outlives its claim: once the claim
is deleted, the volume is all that is left of that generation (Released, in a Retain class), and
`workspaces prune` must be able to prove the webhook made it before deleting it. The webhook's
label on its PVCs does not reach the PV the provisioner makes, so the webhook puts it there as
the PV is created (a webhook entry of its own, failurePolicy Ignore, never a refusal): only for a
volume whose claim is a PVC the webhook made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.rules.labels import MANAGED_BY
from agent_workspace_webhook.rules.names import is_object_name
from agent_workspace_webhook.rules.patch import MAPPING, map_patch
from agent_workspace_webhook.rules.workspace import is_workspace_name


def volume_claim(pv: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the workspace claim a volume is made for; None for any other."""
    spec = pv.get("spec")
    ref = spec.get("claimRef") if isinstance(spec, MAPPING) else None
    if not isinstance(ref, MAPPING):
        return None
    namespace, name = ref.get("namespace"), ref.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str) or not is_object_name(namespace):
        return None
    return (namespace, name) if is_object_name(name) and is_workspace_name(name) else None


def is_marked(pv: Mapping[str, Any]) -> bool:
    """Whether the webhook marked the volume as its workspace's (prune deletes no other)."""
    labels = (pv.get("metadata") or {}).get("labels") or {}
    return isinstance(labels, MAPPING) and all(labels.get(key) == value for key, value in MANAGED_BY.items())


def mark_patch(pv: Mapping[str, Any]) -> list[dict[str, Any]]:
    return map_patch(pv, "labels", MANAGED_BY)
