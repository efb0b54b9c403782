"""The platform controller's own workspace PVC (its ensure_pvc_exists, before every Job) through
/mutate with the in-memory store: the generation 1 of an agent's workspace is adopted at its
creation into the workspaces' class, size and labels; anything else, a placeholder the controller
re-makes after a fresh run's delete, and any failure leave it as the controller made it, never
refused (its reconcile fails on any error and is not retried)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.testing.objects import applied, review
from agent_workspace_webhook.testing.twin import pvc_manifest
from tests.api.conftest import MakeClient, metric, mutate
from tests.api.test_generations import old_workspace, stored_coderun

PVC_KIND = {"group": "", "version": "v1", "kind": "PersistentVolumeClaim"}
SETTINGS = {"storage_class": "workspaces-retain", "storage_size": "10Gi", "naming_mode": "agent"}


def controller_pvc(
    name: str = "workspace-cto-cleo", app: str | None = "5DLabs-Cleo", size: str = "5Gi"
) -> dict[str, Any]:
    """The PVC as the platform's controller creates it (its twin's resources.rs build_pvc_spec): its
    labels, the class of its own config, its size."""
    spec = {"service": "cto", **({"githubApp": app} if app else {})}
    return pvc_manifest(name, spec, "standard", size)


def answer_for(http: Any, pvc: dict[str, Any], **options: Any) -> dict[str, Any]:
    """The AdmissionReview answered (its response, as the other tests read it, under "response")."""
    return mutate(http, review(pvc, kind=PVC_KIND, **options))


def test_the_controllers_generation_1_is_adopted_into_the_workspaces_class(make_client: MakeClient) -> None:
    http, store = make_client(**SETTINGS)
    pvc = controller_pvc()
    answer = answer_for(http, pvc)
    assert answer["response"]["allowed"] is True
    stored = applied(pvc, answer)
    assert stored["spec"]["storageClassName"] == "workspaces-retain"  # Retain: a fresh run's delete keeps it
    assert stored["spec"]["resources"]["requests"]["storage"] == "10Gi"
    labels = stored["metadata"]["labels"]
    assert labels["agents.platform/generation"] == "1"
    assert labels["agents.platform/generation-of"] == "workspace-cto-cleo"
    assert labels["app.kubernetes.io/managed-by"] == "agent-workspace-webhook"
    assert (labels["app"], labels["component"], labels["agent"]) == ("orchestrator", "code-runner", "cleo")
    assert stored["metadata"]["annotations"]["agents.platform/made-from"] == "adopted from the platform's controller"
    assert not [call for call in store.calls if call[0] == "create"]  # nothing made besides it
    assert (
        metric(
            http,
            'agent_workspace_webhook_requests_total{decision="patched",kind="PersistentVolumeClaim",operation="CREATE"}',
        )
        == 1
    )


def test_a_larger_size_the_controller_asks_for_is_kept(make_client: MakeClient) -> None:
    http, _ = make_client(**SETTINGS)
    pvc = controller_pvc(size="50Gi")
    assert applied(pvc, answer_for(http, pvc))["spec"]["resources"]["requests"]["storage"] == "50Gi"


@pytest.mark.parametrize(
    ("name", "app"),
    [
        ("workspace-cto", "5DLabs-Rex"),  # an implementation agent's claim: the shared workspace, not a generation
        ("workspace-cto", None),  # a run without a GitHub App
        ("workspace-cto-cleo", "5DLabs-Tess"),  # the name is not the generation 1 of the agent it is labelled with
    ],
)
def test_other_controller_claims_are_left_as_they_are(make_client: MakeClient, name: str, app: str | None) -> None:
    http, _ = make_client(**SETTINGS)
    answer = answer_for(http, controller_pvc(name, app))
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


def test_a_placeholder_after_a_fresh_delete_is_left_as_it_is(make_client: MakeClient) -> None:
    # The controller deleted generation 1 for a fresh run and re-makes the name: the fresh run
    # waits for a generation of the webhook's own, so the re-made one is no generation.
    fresh = stored_coderun("cleo-intake", "11111111-2222-4333-8444-555555555555", runType="intake")
    store = MemoryStore(owners={("CodeRun", "agents", "cleo-intake"): fresh})
    http, _ = make_client(store, **SETTINGS)
    answer = answer_for(http, controller_pvc())
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


def test_a_placeholder_beside_a_later_generation_is_left_as_it_is(make_client: MakeClient) -> None:
    gen2 = old_workspace(
        generation_name("workspace-cto-cleo", 2),
        labels={"agents.platform/generation": "2", "agents.platform/generation-of": "workspace-cto-cleo"},
    )
    store = MemoryStore(pvcs={("agents", gen2["metadata"]["name"]): gen2})
    http, _ = make_client(store, **SETTINGS)
    answer = answer_for(http, controller_pvc())
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


@pytest.mark.parametrize("failing", [{"failures": {"get": (None, "connection refused")}}, {"delay": 3.0}])
def test_an_api_failure_leaves_the_pvc_as_the_controller_made_it(
    make_client: MakeClient, failing: dict[str, Any]
) -> None:
    http, _ = make_client(MemoryStore(**failing), kube_deadline_seconds="0.5", **SETTINGS)
    answer = answer_for(http, controller_pvc())
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


def test_out_of_scope_or_malformed_it_is_still_never_refused(make_client: MakeClient) -> None:
    http, _ = make_client(
        MemoryStore(namespaces={"agents": {}}), namespace_selector="agents.platform/workspaces=enabled"
    )
    assert answer_for(http, controller_pvc())["response"]["allowed"] is True
    http, _ = make_client(**SETTINGS)
    bad = copy.deepcopy(controller_pvc())
    bad["metadata"]["labels"]["agent"] = "Not A Label!"
    assert answer_for(http, bad)["response"]["allowed"] is True
    bad["metadata"]["labels"] = {"app": 1}
    assert answer_for(http, bad)["response"]["allowed"] is True


def test_a_pvc_not_of_the_controller_is_left_as_it_is(make_client: MakeClient) -> None:
    http, _ = make_client(**SETTINGS)
    pvc = controller_pvc()
    pvc["metadata"]["labels"]["app"] = "someone-else"
    answer = answer_for(http, pvc)
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]


def test_with_seed_from_legacy_the_adopted_generation_1_starts_as_a_clone(make_client: MakeClient) -> None:
    # As the webhook's own generation 1 would: the legacy workspace's class and at least its size.
    legacy = old_workspace("workspace-cto")
    legacy["spec"].update({"storageClassName": "legacy-class", "resources": {"requests": {"storage": "20Gi"}}})
    store = MemoryStore(pvcs={("agents", "workspace-cto"): legacy})
    http, _ = make_client(store, seed_from_legacy="clone", **SETTINGS)
    pvc = controller_pvc()
    stored = applied(pvc, answer_for(http, pvc))
    assert stored["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "workspace-cto"}
    assert stored["spec"]["storageClassName"] == "legacy-class"  # a clone stays in its source's class
    assert stored["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert stored["metadata"]["annotations"]["agents.platform/cloned-from"] == "workspace-cto"
