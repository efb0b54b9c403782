"""End to end through a real kube-apiserver: the API server calls the webhook over TLS, the
webhook talks back to it as the manifests' ServiceAccount, and we look at what was stored."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_workspace_webhook.ops.manifests import load_yaml
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import MANIFESTS, WEBHOOK_NAMESPACE
from agent_workspace_webhook.testing.kube import apply, create, create_job, denial, pvcs, wait_bound
from agent_workspace_webhook.testing.objects import claim, coderun, coderun_job, job_pod
from agent_workspace_webhook.testing.runs import Run, current, run_pod, wait_running
from agent_workspace_webhook.testing.tools import free_port

pytestmark = pytest.mark.e2e

MANAGED = {"app.kubernetes.io/managed-by": "agent-workspace-webhook", "app.kubernetes.io/component": "agent-workspace"}


def create_pvc(
    cluster: Environment, namespace: str, name: str, size: str = "1Gi", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels or {"owner": "someone-else"}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}},
    }
    client.CoreV1Api(cluster.admin).create_namespaced_persistent_volume_claim(namespace, body)  # type: ignore[arg-type]
    return wait_bound(cluster.admin, namespace, name)


def first_claim(pod: client.V1Pod) -> str:
    """The claim of the Pod's first volume, as the API server stored it."""
    assert pod.spec is not None and pod.spec.volumes
    source = pod.spec.volumes[0].persistent_volume_claim
    assert source is not None
    return source.claim_name


def test_rex_and_cleo_pods_get_their_own_workspaces(cluster: Environment, namespace: str) -> None:
    rex, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
    cleo, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-cleobot"))
    assert claim(rex) == "workspace-billing-rex"
    assert claim(cleo) == "workspace-billing-cleo"
    assert rex["metadata"]["labels"]["agents.platform/agent"] == "rex"
    assert cleo["metadata"]["annotations"]["agents.platform/workspace"] == "workspace-billing-cleo"
    stored = pvcs(cluster.admin, namespace)
    assert set(stored) == {"workspace-billing-rex", "workspace-billing-cleo"}
    for agent in ("rex", "cleo"):
        pvc = stored[f"workspace-billing-{agent}"]
        assert pvc["metadata"]["labels"] == {
            **MANAGED,
            "agents.platform/service": "billing",
            "agents.platform/agent": agent,
            "agents.platform/workspace": f"workspace-billing-{agent}",
            "service": "billing",
            "agent": agent,
            "component": "agent-workspace",
            "agents.platform/generation": "1",
            "agents.platform/generation-of": f"workspace-billing-{agent}",
        }
        assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert "ownerReferences" not in pvc["metadata"]
    # the API server really stored what it returned
    listed = client.CoreV1Api(cluster.admin).list_namespaced_pod(namespace).items
    assert sorted(first_claim(p) for p in listed) == [
        "workspace-billing-cleo",
        "workspace-billing-rex",
    ]


def test_tess_coderun_is_labelled_and_its_workspace_mounted_by_its_run(cluster: Environment, platform: str) -> None:
    run, warnings = create(cluster.admin, platform, coderun("billing", "5DLabs-Tess", name="task-3-tess"))
    assert run["metadata"]["labels"]["agents.platform/agent"] == "tess"
    assert run["metadata"]["annotations"]["agents.platform/workspace"] == "workspace-billing-tess"
    assert any("workspace-billing-tess is made at its first Pod, or adopted" in w for w in warnings), warnings
    # the platform's controller makes the claim it computes (the webhook adopts it) and the Job
    assert claim(wait_running(cluster.admin, current(cluster.admin, Run(platform, "task-3-tess", "")))) == (
        "workspace-billing-tess"
    )
    adopted = pvcs(cluster.admin, platform)["workspace-billing-tess"]
    assert adopted["metadata"]["labels"]["app"] == "orchestrator"  # the controller's
    assert adopted["metadata"]["labels"]["agents.platform/generation"] == "1"  # and the webhook's


def test_pod_without_labels_is_resolved_through_its_job_and_coderun(cluster: Environment, namespace: str) -> None:
    # A Job some tooling other than the platform's controller (which labels its Pods) makes for a
    # CodeRun: its Pod has no agent labels, so the webhook follows Pod -> Job -> CodeRun.
    run, _ = create(cluster.admin, namespace, coderun("billing", "5DLabs-Cleo[bot]", name="task-4"))
    create_job(cluster.admin, namespace, coderun_job(run, "task-4-job", job_pod(None, None)))
    pod = wait_running(cluster.admin, Run(namespace, "task-4", "task-4-job"))
    assert claim(pod) == "workspace-billing-cleo"
    assert pod["metadata"]["labels"]["agents.platform/agent"] == "cleo"


def test_dry_run_shows_the_claim_and_creates_nothing(cluster: Environment, namespace: str) -> None:
    pod, warnings = create(
        cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-tess"), dry_run=True
    )
    assert claim(pod) == "workspace-billing-tess"
    assert any("would be created" in w for w in warnings), warnings
    assert pvcs(cluster.admin, namespace) == {}


def test_second_pod_reuses_and_existing_pvcs_are_never_changed(cluster: Environment, namespace: str) -> None:
    create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
    first = wait_bound(cluster.admin, namespace, "workspace-billing-rex")
    again, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
    assert claim(again) == "workspace-billing-rex"
    assert (
        pvcs(cluster.admin, namespace)["workspace-billing-rex"]["metadata"]["resourceVersion"]
        == first["metadata"]["resourceVersion"]
    )

    theirs = create_pvc(cluster, namespace, "workspace-billing-cleo", size="3Gi")
    pod, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-cleobot"))
    assert claim(pod) == "workspace-billing-cleo"
    after = pvcs(cluster.admin, namespace)["workspace-billing-cleo"]
    assert after["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
    assert after["metadata"]["labels"] == {"owner": "someone-else"}
    assert after["spec"]["resources"]["requests"]["storage"] == "3Gi"


def test_legacy_mode_keeps_everyone_on_the_shared_workspace(cluster: Environment, namespace: str) -> None:
    legacy = create_pvc(cluster, namespace, "workspace-billing")
    with cluster.webhook(naming_mode="legacy"):
        rex, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
        cleo, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-cleobot"))
    assert claim(rex) == claim(cleo) == "workspace-billing"
    assert set(pvcs(cluster.admin, namespace)) == {"workspace-billing"}
    assert (
        pvcs(cluster.admin, namespace)["workspace-billing"]["metadata"]["resourceVersion"]
        == legacy["metadata"]["resourceVersion"]
    )


def test_dual_mode_with_a_legacy_owner(cluster: Environment, namespace: str) -> None:
    legacy = create_pvc(cluster, namespace, "workspace-billing")
    with cluster.webhook(naming_mode="dual", legacy_owner="rex"):
        rex, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
        cleo, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-cleobot"))
        odd, warnings = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "octocat"))
    assert claim(rex) == "workspace-billing"  # Rex keeps its accumulated context
    assert claim(cleo) == "workspace-billing-cleo"
    assert claim(odd) == "workspace-billing"  # no agent: the shared one, with a warning
    assert any("'octocat'" in w for w in warnings), warnings
    stored = pvcs(cluster.admin, namespace)
    assert set(stored) == {"workspace-billing", "workspace-billing-cleo"}
    assert stored["workspace-billing"]["metadata"]["resourceVersion"] == legacy["metadata"]["resourceVersion"]


def test_binding_without_create_is_a_clear_denial_not_a_hang(cluster: Environment, namespace: str) -> None:
    rules = next(doc for doc in load_yaml(MANIFESTS / "rbac.yaml") if doc["kind"] == "ClusterRole")["rules"]
    for rule in rules:
        rule["verbs"] = [verb for verb in rule["verbs"] if verb != "create"]
    name = "webhook-without-create"
    apply(
        cluster.admin,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": WEBHOOK_NAMESPACE}},
    )
    apply(
        cluster.admin,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
    )
    apply(
        cluster.admin,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": WEBHOOK_NAMESPACE}],
        },
    )
    with cluster.webhook(service_account=name):
        started = time.monotonic()
        with pytest.raises(ApiException) as err:
            create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
        elapsed = time.monotonic() - started
    message = denial(err.value)
    assert f"PersistentVolumeClaim {namespace}/workspace-billing-rex" in message
    assert "forbidden" in message and "verb 'create'" in message
    assert elapsed < 5  # the configuration's timeoutSeconds: an answer, not a timeout
    assert pvcs(cluster.admin, namespace) == {}


def test_concurrent_pods_against_two_webhook_processes(cluster: Environment, namespace: str) -> None:
    port = free_port()  # two processes on one port (SO_REUSEPORT), like two replicas behind a Service
    first = cluster.start_webhook(port=port, reuse_port=True)
    second = cluster.start_webhook(port=port, reuse_port=True)
    cluster.register(first, second)
    pairs = [
        (service, agent)
        for service, agent in [
            ("alpha", "rex"),
            ("alpha", "cleo"),
            ("beta", "rex"),
            ("beta", "tess"),
            ("gamma", "blaze"),
        ]
    ]
    jobs = [pairs[i % 5] for i in range(50)]
    try:

        def make(pair: tuple[str, str]) -> tuple[tuple[str, str], str | None]:
            pod, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, pair[0], f"5dlabs-{pair[1]}"))
            return pair, claim(pod)

        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(make, jobs))
    finally:
        cluster.restore()
        first.stop()
        second.stop()
    assert all(claim == f"workspace-{service}-{agent}" for (service, agent), claim in results)
    assert set(pvcs(cluster.admin, namespace)) == {f"workspace-{s}-{a}" for s, a in pairs}
    served = [
        len([a for a in p.admissions() if a.get("namespace") == namespace and a.get("kind") == "Pod"])
        for p in (first, second)
    ]
    assert sum(served) == 50 and min(served) > 0, served


def test_unparseable_github_app_in_agent_mode_names_field_and_value(cluster: Environment, namespace: str) -> None:
    with cluster.webhook(naming_mode="agent"), pytest.raises(ApiException) as err:
        create(cluster.admin, namespace, coderun("billing", "Octo Cat!", name="bad-app"))
    message = denial(err.value)
    assert "denied the request" in message
    assert "spec.githubApp" in message and "'Octo Cat!'" in message
    assert pvcs(cluster.admin, namespace) == {}
