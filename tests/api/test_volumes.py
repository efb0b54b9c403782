"""The volume the provisioner makes for a workspace PVC, through /mutate with the in-memory store:
marked as the webhook's when its claim is a PVC the webhook made (the mark `workspaces prune`
requires, which outlives the claim), else left as it is; never refused."""

from __future__ import annotations

from typing import Any

import pytest

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.testing.objects import applied, review
from tests.api.conftest import MakeClient, mutate
from tests.api.test_generations import old_workspace

PV_KIND = {"group": "", "version": "v1", "kind": "PersistentVolume"}
OURS = {"app.kubernetes.io/managed-by": "agent-workspace-webhook"}


def volume(claim: str = "workspace-cto-rex", namespace: str = "agents") -> dict[str, Any]:
    """A PV as the external provisioner creates it for a claim (cluster-scoped: no namespace)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pvc-0a1b2c3d", "annotations": {"pv.kubernetes.io/provisioned-by": "csi.example"}},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim, "uid": "u-1"},
        },
    }


def answer_for(http: Any, pv: dict[str, Any]) -> dict[str, Any]:
    return mutate(
        http, {**review(pv, kind=PV_KIND), "request": {**review(pv, kind=PV_KIND)["request"], "namespace": ""}}
    )


def test_the_volume_of_a_workspace_the_webhook_made_is_marked(make_client: MakeClient) -> None:
    store = MemoryStore(pvcs={("agents", "workspace-cto-rex"): old_workspace("workspace-cto-rex", labels=OURS)})
    http, _ = make_client(store)
    pv = volume()
    stored = applied(pv, answer_for(http, pv))
    assert stored["metadata"]["labels"] == OURS
    assert stored["spec"] == pv["spec"]  # nothing else


@pytest.mark.parametrize(
    ("pvcs", "pv"),
    [
        ({("agents", "workspace-cto-rex"): old_workspace("workspace-cto-rex")}, volume()),  # made by hand
        ({}, volume()),  # no such claim
        ({("agents", "workspace-cto-rex"): old_workspace("workspace-cto-rex", labels=OURS)}, volume("data")),
        ({("agents", "workspace-cto-rex"): old_workspace("workspace-cto-rex", labels=OURS)}, volume(namespace="x y")),
    ],
)
def test_any_other_volume_is_left_as_it_is(make_client: MakeClient, pvcs: dict[Any, Any], pv: dict[str, Any]) -> None:
    http, _ = make_client(MemoryStore(pvcs=pvcs))
    answer = answer_for(http, pv)["response"]
    assert answer["allowed"] is True and "patch" not in answer


def test_a_volume_whose_claim_is_out_of_scope_is_left_as_it_is(make_client: MakeClient) -> None:
    store = MemoryStore(
        pvcs={("agents", "workspace-cto-rex"): old_workspace("workspace-cto-rex", labels=OURS)},
        namespaces={"agents": {}},
    )
    http, _ = make_client(store, namespace_selector="agents.platform/workspaces=enabled")
    answer = answer_for(http, volume())["response"]
    assert answer["allowed"] is True and "patch" not in answer


def test_an_api_failure_leaves_the_volume_unmarked_never_refused(make_client: MakeClient) -> None:
    http, _ = make_client(MemoryStore(failures={"get": (None, "connection refused")}))
    answer = answer_for(http, volume())["response"]
    assert answer["allowed"] is True and "patch" not in answer
