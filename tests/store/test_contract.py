"""One contract, two stores: the in-memory twin must behave like the real KubeStore, which runs
here against the real API server as the manifests' ServiceAccount."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from kubernetes import client

from agent_workspace_webhook.kube.client import KubeStore
from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.kube.store import WorkspaceStore
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.rules.labels import generation_labels
from agent_workspace_webhook.rules.pvc import PvcSpec, pvc_manifest
from agent_workspace_webhook.rules.selector import parse_selector
from agent_workspace_webhook.settings import load_settings
from agent_workspace_webhook.testing.install import workspace_namespace
from agent_workspace_webhook.testing.kube import pvcs, wait_bound
from agent_workspace_webhook.testing.objects import coderun

SPEC = PvcSpec(storage_size="2Gi", access_modes=["ReadWriteOnce"])


class Backend(Protocol):
    namespace: str

    @property
    def store(self) -> WorkspaceStore: ...  # read-only, so each backend may hold its own kind of store

    def put_pvc(self, manifest: dict[str, Any]) -> None: ...
    def get_pvc(self, name: str) -> dict[str, Any] | None: ...
    def put_owner(self, obj: dict[str, Any]) -> dict[str, Any]: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.namespace = "agents"

    def put_pvc(self, manifest: dict[str, Any]) -> None:
        self.store.pvcs[(self.namespace, manifest["metadata"]["name"])] = manifest

    def get_pvc(self, name: str) -> dict[str, Any] | None:
        return self.store.pvcs.get((self.namespace, name))

    def put_owner(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.store.owners[(obj["kind"], self.namespace, obj["metadata"]["name"])] = obj
        return obj


class KubeBackend:
    """The real store as the manifests' ServiceAccount; `cached` starts its PVC watch."""

    def __init__(self, cluster: Any, cached: bool) -> None:
        self.admin = cluster.admin
        self.namespace = f"store-{uuid.uuid4().hex[:8]}"
        client.CoreV1Api(self.admin).create_namespace(workspace_namespace(self.namespace))  # type: ignore[arg-type]
        kubeconfig = cluster.kubeconfig_for("agent-workspace-webhook")
        self.store = KubeStore(load_settings(storage_size="2Gi", kubeconfig=str(kubeconfig), watch_caches=cached))
        self.cache = self.store.cache
        if self.cache is not None:
            self.store.start()
            assert self.cache.wait_synced(10)
            assert self.store.namespaces is not None and self.store.namespaces.wait_synced(10)
            assert self.store.fresh is not None and self.store.fresh.wait_synced(10)

    def put_pvc(self, manifest: dict[str, Any]) -> None:
        client.CoreV1Api(self.admin).create_namespaced_persistent_volume_claim(self.namespace, manifest)  # type: ignore[arg-type]
        wait_bound(self.admin, self.namespace, manifest["metadata"]["name"])  # the living cluster binds it first
        if self.cache is not None:  # made behind the store's back: wait for its watch to see it
            deadline = time.monotonic() + 10
            while (self.cache.lookup((self.namespace, manifest["metadata"]["name"])) or (False,))[0] is not True:
                assert time.monotonic() < deadline, "the watch did not deliver the PVC"
                time.sleep(0.05)

    def get_pvc(self, name: str) -> dict[str, Any] | None:
        return pvcs(self.admin, self.namespace).get(name)

    def put_owner(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "Job":
            client.BatchV1Api(self.admin).create_namespaced_job(self.namespace, obj)  # type: ignore[arg-type]
        else:
            client.CustomObjectsApi(self.admin).create_namespaced_custom_object(
                "agents.platform", "v1", self.namespace, "coderuns", obj
            )
        return obj


@pytest.fixture(
    params=["memory", pytest.param("kube", marks=pytest.mark.e2e), pytest.param("kube-cached", marks=pytest.mark.e2e)]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    kube = KubeBackend(request.getfixturevalue("cluster"), cached=request.param == "kube-cached")
    yield kube
    kube.store.close()


def cached(backend: Backend) -> bool:
    """Whether the store answers a hit at once (its *_now methods): the twin, or the watch caches."""
    return not isinstance(backend.store, KubeStore) or backend.store.cache is not None


def manifest(backend: Backend, name: str) -> dict[str, Any]:
    return pvc_manifest(name, backend.namespace, {"agents.platform/agent": "rex"}, SPEC)


def test_creates_a_missing_pvc_once(backend: Backend) -> None:
    wanted = manifest(backend, "workspace-cto-rex")
    assert asyncio.run(backend.store.get_pvc(backend.namespace, "workspace-cto-rex")) is None
    assert asyncio.run(backend.store.create_pvc(wanted, dry_run=False)) == "created"
    stored = backend.get_pvc("workspace-cto-rex")
    assert stored is not None
    assert stored["metadata"]["labels"] == wanted["metadata"]["labels"]
    assert stored["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert stored["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert asyncio.run(backend.store.create_pvc(wanted, dry_run=False)) == "exists"
    state = asyncio.run(backend.store.get_pvc(backend.namespace, "workspace-cto-rex"))
    assert state is not None and state.access_modes == ("ReadWriteOnce",) and state.storage == "2Gi"
    assert not state.deleting
    assert asyncio.run(backend.store.get_pvc(backend.namespace, "workspace-cto-cleo")) is None


def test_existing_pvc_is_left_exactly_as_it_was(backend: Backend) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "workspace-cto-rex", "labels": {"owner": "someone-else"}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    backend.put_pvc(theirs)
    before = backend.get_pvc("workspace-cto-rex")
    state = asyncio.run(backend.store.get_pvc(backend.namespace, "workspace-cto-rex"))
    assert state is not None and state.access_modes == ("ReadWriteMany",) and state.storage == "5Gi"
    assert asyncio.run(backend.store.create_pvc(manifest(backend, "workspace-cto-rex"), dry_run=False)) == "exists"
    assert backend.get_pvc("workspace-cto-rex") == before


def test_dry_run_creates_nothing(backend: Backend) -> None:
    answer = asyncio.run(backend.store.create_pvc(manifest(backend, "workspace-cto-tess"), dry_run=True))
    assert answer == "would-create"
    assert backend.get_pvc("workspace-cto-tess") is None


def test_concurrent_creates_create_exactly_once(backend: Backend) -> None:
    wanted = manifest(backend, "workspace-cto-blaze")

    async def race() -> list[str]:
        return list(await asyncio.gather(*(backend.store.create_pvc(wanted, dry_run=False) for _ in range(10))))

    results = asyncio.run(race())
    assert results.count("created") == 1 and results.count("exists") == 9


def test_owner_lookup(backend: Backend) -> None:
    run = backend.put_owner(coderun("cto", "5DLabs-Cleo", name="run-5"))
    found = asyncio.run(backend.store.get_owner("CodeRun", backend.namespace, "run-5"))
    assert found is not None and found["spec"]["githubApp"] == run["spec"]["githubApp"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "job-5"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
    }
    backend.put_owner(job)
    found_job = asyncio.run(backend.store.get_owner("Job", backend.namespace, "job-5"))
    assert found_job is not None and found_job["metadata"]["name"] == "job-5"
    assert asyncio.run(backend.store.get_owner("CodeRun", backend.namespace, "nope")) is None


def test_ready(backend: Backend) -> None:
    assert asyncio.run(backend.store.check_ready()) is None


def test_a_labelled_namespace_is_in_scope_and_a_missing_one_does_not_exist(backend: Backend) -> None:
    scope = parse_selector("agents.platform/workspaces=enabled")
    assert asyncio.run(backend.store.namespace_in_scope(backend.namespace, scope)) is True
    assert backend.store.in_scope_now(backend.namespace, scope) is (True if cached(backend) else None)
    if isinstance(backend.store, KubeStore):  # the memory twin assumes every namespace exists
        assert asyncio.run(backend.store.namespace_in_scope("no-such-namespace", scope)) is None
        assert backend.store.in_scope_now("no-such-namespace", scope) is None  # not at once: asked


def test_the_generations_of_a_workspace(backend: Backend) -> None:
    base = "workspace-cto-cleo"
    backend.put_pvc(pvc_manifest(base, backend.namespace, {}, SPEC))  # made before generations: no label
    second = generation_name(base, 2)
    labels = generation_labels(2, base)
    assert asyncio.run(backend.store.create_pvc(pvc_manifest(second, backend.namespace, labels, SPEC), dry_run=False))
    backend.put_pvc(pvc_manifest("workspace-cto-cleo-other", backend.namespace, {}, SPEC))  # another workspace
    found = asyncio.run(backend.store.generations(backend.namespace, base))
    assert [(g.number, g.pvc) for g in found] == [(1, base), (2, second)]
    assert found[1].state.generation_of == base
    assert backend.store.generations_now(backend.namespace, base) == (found if cached(backend) else None)
    assert asyncio.run(backend.store.generations(backend.namespace, "workspace-cto-nobody")) == []
    assert backend.store.generations_now(backend.namespace, "workspace-cto-nobody") == ([] if cached(backend) else None)


def test_only_the_coderuns_asking_for_a_fresh_workspace(backend: Backend) -> None:
    backend.put_owner(coderun("cto", "5DLabs-Cleo", name="plain"))
    backend.put_owner(coderun("cto", "5DLabs-Cleo", name="fresh", freshWorkspace=True))
    backend.put_owner(coderun("cto", "5DLabs-Tess", name="intake", runType="intake"))
    deadline = time.monotonic() + 10
    while True:  # the cached store learns of them from its watch
        runs = asyncio.run(backend.store.fresh_runs(backend.namespace))
        if len(runs) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted((run.name, run.facts.app) for run in runs) == [("fresh", "5DLabs-Cleo"), ("intake", "5DLabs-Tess")]
    at_once = backend.store.fresh_runs_now(backend.namespace)
    assert (sorted(at_once, key=lambda run: run.name) if at_once is not None else None) == (
        sorted(runs, key=lambda run: run.name) if cached(backend) else None
    )
    assert asyncio.run(backend.store.fresh_runs("no-such-namespace")) == []


def test_a_namespace_made_a_moment_ago_is_in_scope_before_the_watch_tells(backend: Backend) -> None:
    if not isinstance(backend, KubeBackend):
        return  # the memory twin has no watch to lag behind
    name = f"new-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(backend.admin).create_namespace(workspace_namespace(name))  # type: ignore[arg-type]
    scope = parse_selector("agents.platform/workspaces=enabled")
    assert asyncio.run(backend.store.namespace_in_scope(name, scope)) is True  # at once, not "does not exist"
