"""What a caller who is not the API server can do: nothing outside the namespaces in scope, and
nothing that grows the metrics (issue 10)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.testing.objects import job_pod, review
from tests.api.conftest import MakeClient, mutate, probes

IN_SCOPE = {"agents.platform/workspaces": "enabled"}


@pytest.mark.parametrize(
    ("namespace", "code", "says"),
    [
        ("kube-system", 403, "never gets workspaces"),
        ("agent-workspace-webhook", 403, "never gets workspaces"),
        ("unlabelled", 403, "not in the webhook's scope"),
        ("missing", 404, "does not exist"),
    ],
)
def test_forged_reviews_outside_the_scope_are_denied_and_create_nothing(
    make_client: MakeClient, namespace: str, code: int, says: str
) -> None:
    store = MemoryStore(namespaces={"agents": IN_SCOPE, "unlabelled": {}, "kube-system": IN_SCOPE})
    http, _ = make_client(store)
    response = mutate(http, review(job_pod("cto", "5dlabs-rex"), namespace=namespace))["response"]
    assert response["allowed"] is False and response["status"]["code"] == code
    assert says in response["status"]["message"] and namespace in response["status"]["message"]
    assert store.pvcs == {}
    assert mutate(http, review(job_pod("cto", "5dlabs-rex"), namespace="agents"))["response"]["allowed"] is True
    assert list(store.pvcs) == [("agents", "workspace-cto-rex")]


def test_thousands_of_forged_kinds_leave_the_metrics_small(client: tuple[TestClient, MemoryStore]) -> None:
    http, _ = client
    before = len(probes(http).get("/metrics").content)
    for i in range(2000):
        body = review(job_pod("cto", "5dlabs-rex"), kind={"group": f"g{i}", "version": "v1", "kind": f"Kind{i}"})
        body["request"]["operation"] = f"OP{i}"
        assert mutate(http, body)["response"]["allowed"] is False
    exposition = probes(http).get("/metrics").text
    assert len(exposition) < before + 5000, "a handful of new series (one histogram), not one per forged kind"
    assert 'decision="denied",kind="other",operation="other"} 2000.0' in exposition
    assert "Kind1" not in exposition and "OP1" not in exposition
