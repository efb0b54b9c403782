"""The PersistentVolumeClaim the webhook creates for a workspace (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_workspace_webhook.rules.labels import COMPONENT, MANAGED_BY


@dataclass(frozen=True)
class PvcSpec:
    """What every new workspace gets, from the settings."""

    storage_size: str
    access_modes: Sequence[str]
    storage_class: str | None = None


def pvc_manifest(name: str, namespace: str, labels: Mapping[str, str], spec: PvcSpec) -> dict[str, Any]:
    """No ownerReferences: a workspace outlives the runs that use it."""
    body: dict[str, Any] = {
        "accessModes": list(spec.access_modes),
        "resources": {"requests": {"storage": spec.storage_size}},
    }
    if spec.storage_class is not None:
        body["storageClassName"] = spec.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **COMPONENT, **labels}},
        "spec": body,
    }
