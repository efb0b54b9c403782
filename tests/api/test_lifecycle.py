"""A workspace's life through /mutate with the in-memory store (issue 12): a dying workspace is
never handed out, new ones can start as clones of the legacy workspace, Pods of a ReadWriteOnce
workspace share a node, and today's CodeRun names its agent in spec.implementationAgent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.rules.patch import REQUIRED, colocation_term
from agent_workspace_webhook.testing.objects import applied, claim, coderun, job_pod, review, stored_pvc
from tests.api.conftest import MakeClient, mutate


def with_pvcs(*pvcs: dict[str, Any]) -> MemoryStore:
    return MemoryStore(pvcs={("agents", p["metadata"]["name"]): p for p in pvcs})


# --- a dying workspace -------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_workspace_being_deleted_is_never_handed_out(make_client: MakeClient, dry_run: bool) -> None:
    http, store = make_client(with_pvcs(stored_pvc("workspace-cto-rex", deleting=True)))
    response = mutate(http, review(job_pod("cto", "5dlabs-rex"), dry_run=dry_run))["response"]
    assert response["allowed"] is False and response["status"]["code"] == 409
    message = response["status"]["message"]
    assert "PersistentVolumeClaim agents/workspace-cto-rex is being deleted" in message
    assert "still mounted by a Pod" in message
    assert "admitted with a fresh workspace once it is gone" in message
    assert ("create", "workspace-cto-rex") not in store.calls


def test_once_it_is_gone_the_run_gets_a_fresh_workspace(make_client: MakeClient) -> None:
    http, store = make_client(with_pvcs(stored_pvc("workspace-cto-rex", deleting=True)))
    assert mutate(http, review(job_pod("cto", "5dlabs-rex")))["response"]["allowed"] is False
    del store.pvcs[("agents", "workspace-cto-rex")]
    pod = job_pod("cto", "5dlabs-rex")
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto-rex"
    assert "deletionTimestamp" not in store.pvcs[("agents", "workspace-cto-rex")]["metadata"]


def test_the_legacy_owner_is_not_pointed_at_a_dying_legacy_workspace(make_client: MakeClient) -> None:
    http, _ = make_client(with_pvcs(stored_pvc("workspace-cto", deleting=True)), legacy_owner="rex")
    response = mutate(http, review(job_pod("cto", "5dlabs-rex")))["response"]
    assert response["allowed"] is False and "agents/workspace-cto is being deleted" in response["status"]["message"]


# --- cloning the legacy workspace ---------------------------------------------------------------


def test_clone_mode_seeds_a_new_workspace_from_the_bound_legacy_one(make_client: MakeClient) -> None:
    legacy = stored_pvc("workspace-cto", storageClassName="standard-csi", volumeMode="Filesystem")
    legacy["spec"]["resources"]["requests"]["storage"] = "30Gi"
    http, store = make_client(with_pvcs(legacy), seed_from_legacy="clone", storage_class="fast-ssd")
    before = dict(store.pvcs[("agents", "workspace-cto")])
    response = mutate(http, review(job_pod("cto", "5dlabs-cleobot")))["response"]
    assert response["allowed"] is True and not response.get("warnings")
    made = store.pvcs[("agents", "workspace-cto-cleo")]
    assert made["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "workspace-cto"}
    assert made["spec"]["storageClassName"] == "standard-csi" and made["spec"]["volumeMode"] == "Filesystem"
    assert made["spec"]["resources"]["requests"]["storage"] == "30Gi"
    assert made["metadata"]["annotations"]["agents.platform/cloned-from"] == "workspace-cto"
    assert store.pvcs[("agents", "workspace-cto")] == before  # the legacy PVC is never changed
    creates = [call for call in store.calls if call[0] == "create"]
    assert creates == [("create", "workspace-cto-cleo")]


@pytest.mark.parametrize(
    ("legacy", "why"),
    [
        (None, "there is no legacy PersistentVolumeClaim workspace-cto"),
        (stored_pvc("workspace-cto", phase="Pending"), "is Pending, not Bound"),
        (stored_pvc("workspace-cto", deleting=True), "is being deleted"),
    ],
)
def test_where_no_clone_is_possible_the_workspace_starts_empty_and_says_why(
    make_client: MakeClient, legacy: dict[str, Any] | None, why: str
) -> None:
    http, store = make_client(with_pvcs(*([legacy] if legacy else [])), seed_from_legacy="clone")
    response = mutate(http, review(job_pod("cto", "5dlabs-rex")))["response"]
    assert response["allowed"] is True
    assert any("workspace-cto-rex starts empty, not as a clone" in w and why in w for w in response["warnings"])
    assert "dataSource" not in store.pvcs[("agents", "workspace-cto-rex")]["spec"]


def test_a_dry_run_says_which_clone_would_be_made(make_client: MakeClient) -> None:
    http, store = make_client(with_pvcs(stored_pvc("workspace-cto")), seed_from_legacy="clone")
    response = mutate(http, review(job_pod("cto", "5dlabs-tess"), dry_run=True))["response"]
    assert any("would be created as a clone of workspace-cto" in w for w in response["warnings"])
    assert ("agents", "workspace-cto-tess") not in store.pvcs


def test_the_legacy_owner_keeps_the_legacy_workspace_itself(make_client: MakeClient) -> None:
    http, store = make_client(with_pvcs(stored_pvc("workspace-cto")), seed_from_legacy="clone", legacy_owner="rex")
    pod = job_pod("cto", "5dlabs-rex")
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto"
    assert list(store.pvcs) == [("agents", "workspace-cto")]


def test_clone_mode_off_creates_empty_workspaces(make_client: MakeClient) -> None:
    http, store = make_client(with_pvcs(stored_pvc("workspace-cto")))
    response = mutate(http, review(job_pod("cto", "5dlabs-rex")))["response"]
    assert not response.get("warnings")
    assert "dataSource" not in store.pvcs[("agents", "workspace-cto-rex")]["spec"]


# --- one node per ReadWriteOnce workspace -----------------------------------------------------------


def affinity(http: TestClient) -> Any:
    pod = job_pod("cto", "5dlabs-rex")
    return applied(pod, mutate(http, review(pod)))["spec"].get("affinity")


def test_pods_of_a_read_write_once_workspace_get_one_node(make_client: MakeClient) -> None:
    http, _ = make_client()
    assert affinity(http) == {"podAffinity": {REQUIRED: [colocation_term("workspace-cto-rex")]}}


@pytest.mark.parametrize(
    ("settings", "existing"),
    [
        ({"colocate": "false"}, None),
        ({"access_modes": ["ReadWriteMany"]}, None),
        ({}, stored_pvc("workspace-cto-rex", accessModes=["ReadWriteMany"])),  # the existing PVC's modes decide
    ],
)
def test_no_colocation_when_off_or_not_read_write_once(
    make_client: MakeClient, settings: dict[str, Any], existing: dict[str, Any] | None
) -> None:
    http, _ = make_client(with_pvcs(*([existing] if existing else [])), **settings)
    assert affinity(http) is None


def test_a_coderun_gets_no_affinity(make_client: MakeClient) -> None:
    http, _ = make_client()
    run = coderun("cto", "5DLabs-Rex")
    assert "affinity" not in applied(run, mutate(http, review(run)))["spec"]


# --- today's CodeRun --------------------------------------------------------------------------------


def test_a_coderun_with_only_implementation_agent_gets_that_agents_workspace(make_client: MakeClient) -> None:
    http, store = make_client(naming_mode="agent")
    run = coderun("cto", None, implementationAgent="cleo")
    stored = applied(run, mutate(http, review(run)))
    assert stored["metadata"]["labels"]["agents.platform/workspace"] == "workspace-cto-cleo"
    assert ("agents", "workspace-cto-cleo") in store.pvcs


def test_an_implementation_agent_that_is_no_label_is_named(make_client: MakeClient) -> None:
    http, store = make_client(naming_mode="agent")
    response = mutate(http, review(coderun("cto", None, implementationAgent="Rex Prime")))["response"]
    assert response["allowed"] is False
    assert "spec.implementationAgent is 'Rex Prime', which is not a DNS-1123 label" in response["status"]["message"]
    assert store.pvcs == {}
