"""The PVC watch cache's index by namespace: counting one namespace's workspaces (the
per-namespace ceiling, on every create) reads that namespace's groups only, however many other
namespaces hold, and follows the watch's additions and deletions."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from agent_workspace_webhook.kube.caches import pvc_cache
from agent_workspace_webhook.rules.pvc import PvcState


def pvc(namespace: str, name: str, generation_of: str | None = None) -> dict[str, Any]:
    labels = {} if generation_of is None else {"agents.platform/generation-of": generation_of}
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        "status": {"phase": "Bound"},
    }


class Core:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def list_persistent_volume_claim_for_all_namespaces(self, **_: Any) -> Any:
        page = {"metadata": {"resourceVersion": "1"}, "items": self.items}
        return SimpleNamespace(data=json.dumps(page).encode())


def test_counting_one_namespace_reads_only_its_workspaces() -> None:
    others = [pvc("crowded", f"workspace-s{i}-rex") for i in range(5000)]
    ours = [
        pvc("agents", "workspace-cto-rex", "workspace-cto-rex"),
        pvc("agents", "workspace-cto-cleo", "workspace-cto-cleo"),
    ]
    ours.append(pvc("agents", "workspace-cto"))  # the platform's: no generation label
    cache = pvc_cache(Core(others + ours), lambda *_: None)
    cache._list()  # the first list, as the cache's thread makes it
    read: list[tuple[str, str]] = []

    def webhooks(workspace: tuple[str, str], members: dict[tuple[str, str], PvcState]) -> bool:
        read.append(workspace)
        return any(state.generation_of for state in members.values())

    assert cache.count_groups("agents", webhooks) == 2
    assert sorted(read) == [
        ("agents", "workspace-cto"),
        ("agents", "workspace-cto-cleo"),
        ("agents", "workspace-cto-rex"),
    ]
    assert cache.count_groups("nowhere", webhooks) == 0
    # A second generation joins its workspace; a new workspace and a deletion follow the watch.
    generation = pvc("agents", "workspace-cto-rex-g2-0a1b2c", "workspace-cto-rex")
    generation["metadata"]["labels"]["agents.platform/generation"] = "2"
    events = [
        {"type": "ADDED", "raw_object": generation},
        {"type": "ADDED", "raw_object": pvc("agents", "workspace-cto-tess", "workspace-cto-tess")},
        {"type": "DELETED", "raw_object": pvc("agents", "workspace-cto-cleo", "workspace-cto-cleo")},
    ]
    cache._apply(events)
    assert cache.count_groups("agents", webhooks) == 2  # rex (two generations) and tess
    cache._apply([{"type": "DELETED", "raw_object": pvc("crowded", f"workspace-s{i}-rex")} for i in range(5000)])
    assert cache.count_groups("crowded", webhooks) == 0 and "crowded" not in cache._sections
