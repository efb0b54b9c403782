"""A workspace's whole life through the living cluster (issue 12): per-agent workspaces cloned
from the legacy one by the real external provisioner, a dying workspace never handed out, the
runs of one ReadWriteOnce workspace on one node, and today's CodeRun."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import denial, pvcs, wait_bound
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import job_status, launch, start_run, submit, wait_running
from tests.e2e.test_living import AGENTS

pytestmark = pytest.mark.e2e


def legacy_workspace(cluster: Environment, namespace: str, service: str) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"workspace-{service}"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
    }
    client.CoreV1Api(cluster.admin).create_namespaced_persistent_volume_claim(namespace, body)  # type: ignore[arg-type]
    return wait_bound(cluster.admin, namespace, f"workspace-{service}")


def test_moving_to_per_agent_workspaces_keeps_the_shared_context(cluster: Environment, namespace: str) -> None:
    legacy = legacy_workspace(cluster, namespace, "cto")
    shared = cluster.volume_dir(namespace, "workspace-cto")
    (shared / "CONTEXT.md").write_text("what the team learned so far\n")
    with cluster.webhook(seed_from_legacy="clone"):
        for agent, how in AGENTS:
            pod = wait_running(cluster.admin, start_run(cluster.admin, namespace, "cto", f"cto-{agent}", **dict(how)))
            assert claim(pod) == f"workspace-cto-{agent}"
    dirs = {}
    for agent, _ in AGENTS:
        pvc = wait_bound(cluster.admin, namespace, f"workspace-cto-{agent}")
        source = pvc["spec"]["dataSource"]
        assert (source["kind"], source["name"]) == ("PersistentVolumeClaim", "workspace-cto")
        assert pvc["metadata"]["annotations"]["agents.platform/cloned-from"] == "workspace-cto"
        assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"  # no smaller than the legacy one
        dirs[agent] = cluster.volume_dir(namespace, f"workspace-cto-{agent}")
        assert (dirs[agent] / "CONTEXT.md").read_text() == "what the team learned so far\n"
    (dirs["cleo"] / "cleo.md").write_text("Cleo's own\n")
    assert not (dirs["tess"] / "cleo.md").exists() and not (shared / "cleo.md").exists()
    # The legacy PVC is never changed by the webhook. (Its resourceVersion moves: the external
    # provisioner adds a finalizer that protects a clone's source while it has clones to make.)
    after = pvcs(cluster.admin, namespace)["workspace-cto"]
    for part in ("spec", "status"):
        assert after[part] == legacy[part]
    for part in ("labels", "annotations"):
        assert after["metadata"].get(part) == legacy["metadata"].get(part), part
    finalizers = set(after["metadata"]["finalizers"]) - {"provisioner.storage.kubernetes.io/cloning-protection"}
    assert finalizers == set(legacy["metadata"]["finalizers"])


def test_a_workspace_deleted_while_its_pod_runs_is_not_handed_out(cluster: Environment, namespace: str) -> None:
    core = client.CoreV1Api(cluster.admin)
    first = start_run(cluster.admin, namespace, "api", "api-1-rex", githubApp="5DLabs-Rex")
    wait_running(cluster.admin, first)
    queued = submit(cluster.admin, namespace, "api", "api-2-rex", githubApp="5DLabs-Rex")  # accepted before
    old = wait_bound(cluster.admin, namespace, "workspace-api-rex")
    core.delete_namespaced_persistent_volume_claim("workspace-api-rex", namespace)  # held: the Pod mounts it
    deadline = time.monotonic() + 10
    while "deletionTimestamp" not in pvcs(cluster.admin, namespace)["workspace-api-rex"]["metadata"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)

    with pytest.raises(client.exceptions.ApiException) as refused:  # a new CodeRun is told at once
        submit(cluster.admin, namespace, "api", "api-3-rex", githubApp="5DLabs-Rex")
    message = denial(refused.value)
    assert "workspace-api-rex is being deleted, still mounted by a Pod" in message
    assert "admitted with a fresh workspace once it is gone" in message
    second = launch(cluster.admin, queued)  # its Job: the Pod is refused the same way, in the Job's events
    deadline = time.monotonic() + 30
    said: list[str] = []
    while not said and time.monotonic() < deadline:
        said = [m for m in job_status(cluster.admin, second) if "is being deleted" in m]
        time.sleep(0.2)
    assert said, job_status(cluster.admin, second)

    client.BatchV1Api(cluster.admin).delete_namespaced_job(first.job, namespace, propagation_policy="Foreground")
    pod = wait_running(cluster.admin, second, timeout=120)  # the Job controller's retries recover by themselves
    assert claim(pod) == "workspace-api-rex"
    fresh = wait_bound(cluster.admin, namespace, "workspace-api-rex")
    assert fresh["metadata"]["uid"] != old["metadata"]["uid"]


def nodes_of_six_rex_runs(cluster: Environment, namespace: str) -> set[str]:
    runs = [start_run(cluster.admin, namespace, "web", f"web-{i}-rex", githubApp="5DLabs-Rex") for i in range(6)]
    return {wait_running(cluster.admin, run)["spec"]["nodeName"] for run in runs}


def test_runs_of_one_read_write_once_workspace_share_a_node(cluster: Environment, namespace: str) -> None:
    assert len(nodes_of_six_rex_runs(cluster, namespace)) == 1


def test_without_colocation_the_scheduler_spreads_them(cluster: Environment, namespace: str) -> None:
    with cluster.webhook(colocate="false"):
        assert len(nodes_of_six_rex_runs(cluster, namespace)) > 1


def test_a_coderun_naming_only_its_implementation_agent(cluster: Environment, namespace: str) -> None:
    run = start_run(cluster.admin, namespace, "docs", "docs-1", implementationAgent="cleo")
    stored = client.CustomObjectsApi(cluster.admin).get_namespaced_custom_object(
        "agents.platform", "v1", namespace, "coderuns", run.coderun
    )
    assert stored["metadata"]["labels"]["agents.platform/workspace"] == "workspace-docs-cleo"  # type: ignore[index]
    assert claim(wait_running(cluster.admin, run)) == "workspace-docs-cleo"
