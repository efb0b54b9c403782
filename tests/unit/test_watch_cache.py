"""The PVC watch cache's index by namespace: counting one namespace's workspaces (the
per-namespace ceiling, on every create) reads that namespace's groups only, however many other
namespaces hold, and follows the watch's additions and deletions."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from agent_workspace_webhook.kube.caches import pvc_cache
from agent_workspace_webhook.rules.pvc import PvcState
from agent_workspace_webhook.testing.objects import stored_pvc


def generation_of(base: str) -> dict[str, str]:
    return {"agents.platform/generation-of": base}


class Core:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def list_persistent_volume_claim_for_all_namespaces(self, **_: Any) -> Any:
        page = {"metadata": {"resourceVersion": "1"}, "items": self.items}
        return SimpleNamespace(data=json.dumps(page).encode())


def test_counting_one_namespace_reads_only_its_workspaces() -> None:
    others = [stored_pvc(f"workspace-s{i}-rex", "crowded") for i in range(5000)]
    ours = [
        stored_pvc("workspace-cto-rex", "agents", labels=generation_of("workspace-cto-rex")),
        stored_pvc("workspace-cto-cleo", "agents", labels=generation_of("workspace-cto-cleo")),
    ]
    ours.append(stored_pvc("workspace-cto", "agents"))  # the platform's: no generation label
    cache = pvc_cache(Core(others + ours), lambda *_: None)
    cache._list()  # the first list, as the cache's thread makes it
    read: list[tuple[str, str]] = []

    def webhooks(workspace: tuple[str, str], members: dict[tuple[str, str], PvcState]) -> bool:
        read.append(workspace)
        return any(state.generation_of for state in members.values())

    assert cache.tally("agents", webhooks) == 2
    assert sorted(read) == [
        ("agents", "workspace-cto"),
        ("agents", "workspace-cto-cleo"),
        ("agents", "workspace-cto-rex"),
    ]
    assert cache.tally("nowhere", webhooks) == 0
    # A second generation joins its workspace; a new workspace and a deletion follow the watch.
    generation = stored_pvc("workspace-cto-rex-g2-0a1b2c", "agents", labels=generation_of("workspace-cto-rex"))
    generation["metadata"]["labels"]["agents.platform/generation"] = "2"
    events = [
        {"type": "ADDED", "raw_object": generation},
        {
            "type": "ADDED",
            "raw_object": stored_pvc("workspace-cto-tess", "agents", labels=generation_of("workspace-cto-tess")),
        },
        {
            "type": "DELETED",
            "raw_object": stored_pvc("workspace-cto-cleo", "agents", labels=generation_of("workspace-cto-cleo")),
        },
    ]
    cache._apply(events)
    assert cache.tally("agents", webhooks) == 2  # rex (two generations) and tess
    cache._apply([{"type": "DELETED", "raw_object": stored_pvc(f"workspace-s{i}-rex", "crowded")} for i in range(5000)])
    assert cache.tally("crowded", webhooks) == 0 and "crowded" not in cache._sections


class Custom:
    """The CodeRun list of an API server without the CRD (404) until `served` is set."""

    def __init__(self) -> None:
        self.served = False

    def list_cluster_custom_object(self, *_: Any, **__: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        if not self.served:
            raise ApiException(status=404, reason="Not Found")
        run = {
            "metadata": {
                "namespace": "agents",
                "name": "intake-1",
                "uid": "u1",
                "creationTimestamp": "2026-12-07T00:00:00Z",
            },
            "spec": {"service": "cto", "githubApp": "5DLabs-Morgan", "runType": "intake"},
        }
        return SimpleNamespace(data=json.dumps({"metadata": {"resourceVersion": "1"}, "items": [run]}).encode())

    def list_namespaced_custom_object(self, *_: Any, **__: Any) -> Any:  # the watch's call: nothing more
        return SimpleNamespace(data=b'{"metadata": {"resourceVersion": "1"}, "items": []}')


def test_without_the_coderun_crd_the_fresh_run_cache_is_empty_and_synced_until_it_appears() -> None:
    from agent_workspace_webhook.kube.caches import fresh_run_cache

    custom = Custom()
    cache = fresh_run_cache(custom, "agents.platform", "v1", "coderuns", lambda *_: None)
    cache._absent_retry = 0.05
    cache._follow = lambda version: cache._stop.wait(0.05)  # type: ignore[method-assign,assignment]  # no watch here
    cache.start()
    try:
        assert cache.wait_synced(5)
        assert cache.absent and cache.lookup_group("agents") == {}  # no CRD: no run asks for a fresh workspace
        custom.served = True  # the platform's CRD is installed: picked up without a restart
        deadline = time.monotonic() + 5
        while cache.absent and time.monotonic() < deadline:
            time.sleep(0.01)
        found = cache.lookup_group("agents")
        assert not cache.absent and found is not None and [run.name for run in found.values()] == ["intake-1"]
    finally:
        cache.stop()
