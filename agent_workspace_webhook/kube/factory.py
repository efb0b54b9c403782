"""The store the settings name: the real one over the Kubernetes API, or the in-memory twin."""

from __future__ import annotations

from agent_workspace_webhook.kube.client import KubeStore
from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.kube.store import WorkspaceStore
from agent_workspace_webhook.kube.watch_cache import CallCounter
from agent_workspace_webhook.settings import Settings


def make_store(settings: Settings, count: CallCounter | None = None) -> WorkspaceStore:
    """The store the settings name; `count` is told of every Kubernetes call (the metrics)."""
    if settings.store == "memory":
        return MemoryStore()
    return KubeStore(settings, count)
