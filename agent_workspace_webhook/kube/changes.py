"""What the operator's `workspaces restore` and `workspaces prune` write, run with the operator's
credentials (or the prune CronJob's ServiceAccount), never by the webhook: create a workspace
PVC, point a Released volume at a new claim, hand a volume back to its class for deletion, and
delete a PVC. Each failure is a ClusterError naming the object, the cause and the fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agent_workspace_webhook.kube.calls import attempt
from agent_workspace_webhook.kube.connect import api_client
from agent_workspace_webhook.settings import Settings


class Changes:
    def __init__(self, settings: Settings) -> None:
        from kubernetes import client

        self._api = api_client(settings)
        self._core = client.CoreV1Api(self._api)

    def create_pvc(self, manifest: Mapping[str, Any]) -> None:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        self._do(
            "create", "PersistentVolumeClaim", namespace, name,
            lambda: self._core.create_namespaced_persistent_volume_claim(namespace, dict(manifest)),  # type: ignore[arg-type]
        )  # fmt: skip

    def claim_volume(self, pv: str, namespace: str, pvc: str) -> None:
        """Point a Released volume at the claim that restores it (the PV binder then binds them)."""
        patch = {"spec": {"claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace,
                                       "name": pvc, "uid": None, "resourceVersion": None}}}  # fmt: skip
        self._do("patch", "PersistentVolume", "", pv, lambda: self._core.patch_persistent_volume(pv, patch))

    def reclaim(self, pv: str) -> None:
        """Let the volume's class delete it once it is Released (Retain kept it until now)."""
        patch = {"spec": {"persistentVolumeReclaimPolicy": "Delete"}}
        self._do("patch", "PersistentVolume", "", pv, lambda: self._core.patch_persistent_volume(pv, patch))

    def delete_pvc(self, namespace: str, name: str) -> None:
        self._do(
            "delete", "PersistentVolumeClaim", namespace, name,
            lambda: self._core.delete_namespaced_persistent_volume_claim(name, namespace),
        )  # fmt: skip

    def close(self) -> None:
        self._api.close()

    def _do(self, verb: str, what: str, namespace: str, name: str, call: Callable[[], Any]) -> None:
        attempt(verb, what, namespace, name, call, operator=True)
