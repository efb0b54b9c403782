"""The three watch caches of KubeStore (WatchCache, watch_cache.py, keeps them current): the
workspace PVCs grouped by workspace, the namespaces' labels, and the CodeRuns that ask for a
fresh workspace grouped by namespace. Each keeps only what admissions ask of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.kube.watch_cache import CallCounter, WatchCache
from agent_workspace_webhook.rules.generations import FreshRun, fresh_run_of
from agent_workspace_webhook.rules.pvc import PvcState, pvc_state
from agent_workspace_webhook.rules.workspace import is_workspace_name


def pvc_cache(core_api: Any, count: CallCounter) -> WatchCache[tuple[str, str], PvcState, tuple[str, str]]:
    """What the webhook needs to know of every PVC named workspace-* (PvcState, by namespace
    and name), grouped by workspace (namespace, name of generation 1); other PVCs are not kept,
    so memory grows with the workspaces, not the cluster."""

    def keep(pvc: Mapping[str, Any]) -> tuple[tuple[str, str], PvcState] | None:
        metadata = pvc["metadata"]
        name = metadata["name"]
        return ((metadata["namespace"], name), pvc_state(pvc)) if is_workspace_name(name) else None

    return WatchCache(
        core_api.list_persistent_volume_claim_for_all_namespaces,
        "persistentvolumeclaims",
        keep,
        count,
        group=workspace_of,
        section=namespace_of,
    )


def workspace_of(key: tuple[str, str], state: PvcState) -> tuple[str, str]:
    """The workspace a PVC is a generation of: (namespace, name of its generation 1)."""
    return key[0], state.generation_of or key[1]


def namespace_of(workspace: tuple[str, str]) -> str:
    """A workspace's namespace: the per-namespace ceiling counts the workspaces of one."""
    return workspace[0]


def namespace_cache(core_api: Any, count: CallCounter) -> WatchCache[str, dict[str, str], None]:
    """Every namespace's labels (read only: it decides which namespaces are in scope)."""

    def keep(namespace: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        metadata = namespace["metadata"]
        return metadata["name"], dict(metadata.get("labels") or {})

    return WatchCache(core_api.list_namespace, "namespaces", keep, count)


def fresh_run_cache(
    custom_api: Any, group: str, version: str, plural: str, count: CallCounter
) -> WatchCache[tuple[str, str], FreshRun, str]:
    """The CodeRuns that ask for a fresh workspace (rules/generations.wants_fresh), by namespace
    and name, grouped by namespace; every other CodeRun is dropped as it is read."""

    def list_call(**kwargs: Any) -> Any:  # the watch needs a plain function over the list call
        return custom_api.list_cluster_custom_object(group, version, plural, **kwargs)

    def keep(run: Mapping[str, Any]) -> tuple[tuple[str, str], FreshRun] | None:
        fresh = fresh_run_of(run)
        return None if fresh is None else ((fresh.namespace, fresh.name), fresh)

    # absent_ok: without the CRD (the platform not installed yet, or its CRD being replaced) there is
    # no CodeRun, so none asks for a fresh workspace: admissions go on, nothing is refused.
    return WatchCache(list_call, plural, keep, count, group=lambda key, _: key[0], absent_ok=True)
