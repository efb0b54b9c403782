"""One-off listings for the operator's `workspaces` commands (not the admission path, which asks
the store): every PVC, the Pods that may mount them, the CodeRuns that name them, and the
PersistentVolumes (the Released ones are what deleted workspaces left in a Retain class)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent_workspace_webhook.kube.calls import attempt, body
from agent_workspace_webhook.kube.connect import api_client
from agent_workspace_webhook.settings import Settings


def list_pvcs(settings: Settings, namespace: str | None) -> list[dict[str, Any]]:
    """Every PVC, or those of one namespace, as the API returns them (for `workspaces`)."""
    return _list(settings, namespace, "persistent_volume_claim", "PersistentVolumeClaim")


def list_pods(settings: Settings, namespace: str | None) -> list[dict[str, Any]]:
    """The Pods that have not finished, everywhere or in one namespace (who mounts a workspace)."""
    return _list(settings, namespace, "pod", "Pod", field_selector="status.phase!=Succeeded,status.phase!=Failed")


def list_pvs(settings: Settings) -> list[dict[str, Any]]:
    """Every PersistentVolume (cluster-wide; the report needs only the Released ones)."""
    return _list(settings, None, "persistent_volume", "PersistentVolume")


def list_coderuns(settings: Settings, namespace: str | None) -> list[dict[str, Any]]:
    """The CodeRuns, everywhere or in one namespace: which workspace each names (its annotation)."""
    from kubernetes import client

    group, version, plural = settings.coderun_group, settings.coderun_version, settings.coderun_plural

    def call(api: Any) -> Any:
        runs = client.CustomObjectsApi(api)
        if namespace:
            return runs.list_namespaced_custom_object(group, version, namespace, plural, _preload_content=False)
        return runs.list_cluster_custom_object(group, version, plural, _preload_content=False)

    return _items(settings, namespace, "CodeRun", call)


def _list(settings: Settings, namespace: str | None, kind: str, what: str, **options: Any) -> list[dict[str, Any]]:
    from kubernetes import client

    def call(api: Any) -> Any:
        core = client.CoreV1Api(api)
        if kind == "persistent_volume":
            return core.list_persistent_volume(_preload_content=False, **options)
        if namespace:
            return getattr(core, f"list_namespaced_{kind}")(namespace, _preload_content=False, **options)
        return getattr(core, f"list_{kind}_for_all_namespaces")(_preload_content=False, **options)

    return _items(settings, namespace, what, call)


def _items(settings: Settings, namespace: str | None, what: str, call: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """The items of one list call made with a client of its own (calls.attempt: a failure is a
    ClusterError naming the cause and the fix)."""
    api = api_client(settings)
    try:
        listed = body(attempt("list", what, namespace or "", "", lambda: call(api), operator=True))
    finally:
        api.close()
    items: list[dict[str, Any]] = (listed or {}).get("items") or []
    return items
