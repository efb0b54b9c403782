"""A workspace's whole life through the living cluster (issue 12): per-agent workspaces cloned
from the legacy one by the real external provisioner, a dying workspace never handed out, the
runs of one ReadWriteOnce workspace on one node, and today's CodeRun."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import denial, pvcs, wait_bound
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import (
    HEALER_PVC,
    Run,
    job_status,
    launch,
    run_pods,
    start_run,
    submit,
    wait_running,
)
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
            pod = wait_running(cluster.admin, start_run(cluster.admin, namespace, "cto", f"cto-{agent}", **how))
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


def rex_run(cluster: Environment, namespace: str, i: int) -> Run:
    """Rex's run number i on service web: each mounts workspace-web-rex (ReadWriteOnce)."""
    return start_run(cluster.admin, namespace, "web", f"web-{i}-rex", githubApp="5DLabs-Rex")


def nodes_of_six_rex_runs(cluster: Environment, namespace: str) -> set[str]:
    runs = [rex_run(cluster, namespace, i) for i in range(6)]
    return {wait_running(cluster.admin, run)["spec"]["nodeName"] for run in runs}


@contextmanager
def cordoned(cluster: Environment, node: str) -> Iterator[None]:
    """The node takes no new Pods (as `kubectl cordon`) until the block ends, even on a failure."""
    core = client.CoreV1Api(cluster.admin)
    core.patch_node(node, {"spec": {"unschedulable": True}})
    try:
        yield
    finally:
        core.patch_node(node, {"spec": {"unschedulable": None}})


def pending_reason(cluster: Environment, run: Run, timeout: float = 30) -> str:
    """The scheduler's message once it has found no node for the run's Pod."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in run_pods(cluster.admin, run):
            for condition in pod["status"].get("conditions", []):
                if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
                    return str(condition.get("message", ""))
        time.sleep(0.1)
    raise TimeoutError(f"the Pod of Job {run.job} was not found unschedulable in {timeout}s")


def test_runs_of_one_read_write_once_workspace_share_a_node(cluster: Environment, namespace: str) -> None:
    assert len(nodes_of_six_rex_runs(cluster, namespace)) == 1


def test_a_run_waits_for_its_workspace_s_node_rather_than_run_elsewhere(cluster: Environment, namespace: str) -> None:
    first = wait_running(cluster.admin, rex_run(cluster, namespace, 1))
    node = first["spec"]["nodeName"]
    with cordoned(cluster, node):
        second = rex_run(cluster, namespace, 2)
        assert "affinity" in pending_reason(cluster, second)  # two other nodes are free
    assert wait_running(cluster.admin, second)["spec"]["nodeName"] == node


def test_without_colocation_a_run_goes_to_any_node(cluster: Environment, namespace: str) -> None:
    # Deterministic: with the first run's node cordoned, the second can only run elsewhere. (Six
    # runs left to the scheduler may all land on one node: it scores by the load other tests left.)
    with cluster.webhook(colocate="false"):
        first = wait_running(cluster.admin, rex_run(cluster, namespace, 1))
        node = first["spec"]["nodeName"]
        with cordoned(cluster, node):
            second = wait_running(cluster.admin, rex_run(cluster, namespace, 2))
    assert claim(second) == claim(first) == "workspace-web-rex"
    assert second["spec"]["nodeName"] != node
    assert "podAffinity" not in second["spec"].get("affinity", {})


def test_a_coderun_naming_only_its_implementation_agent(cluster: Environment, namespace: str) -> None:
    run = start_run(cluster.admin, namespace, "docs", "docs-1", implementationAgent="cleo")
    stored = client.CustomObjectsApi(cluster.admin).get_namespaced_custom_object(
        "agents.platform", "v1", namespace, "coderuns", run.coderun
    )
    assert stored["metadata"]["labels"]["agents.platform/workspace"] == "workspace-docs-cleo"  # type: ignore[index]
    assert claim(wait_running(cluster.admin, run)) == "workspace-docs-cleo"


def test_a_healer_run_keeps_the_healer_workspace_it_shares_with_the_monitor(
    cluster: Environment, namespace: str
) -> None:
    # The platform's healer runs mount healer-workspace, whatever their service: its healer monitor
    # (a Deployment) writes the prompts and logs they work from into it. Made here as the
    # controller's ensure_pvc_exists makes it.
    healer = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": HEALER_PVC},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    client.CoreV1Api(cluster.admin).create_namespaced_persistent_volume_claim(namespace, healer)  # type: ignore[arg-type]
    (cluster.volume_dir(namespace, HEALER_PVC) / "PROMPT.md").write_text("fix the failing CI of task 1\n")
    template = {"cliType": "claude", "model": "claude-sonnet", "settings": {"template": "healer/remediation"}}
    with cluster.webhook() as webhook:
        runs = {
            "healer-remediation-t1": start_run(
                cluster.admin, namespace, "healer", "healer-remediation-t1", githubApp="5DLabs-Healer"
            ),
            "cto-remediation-t2": start_run(
                cluster.admin, namespace, "cto", "cto-remediation-t2", githubApp="5DLabs-Rex", cliConfig=template
            ),
        }
        for run in runs.values():
            assert claim(wait_running(cluster.admin, run, phases=("Running", "Succeeded"))) == HEALER_PVC
        said = [json.loads(line) for line in webhook.log().splitlines() if f'"namespace":"{namespace}"' in line]
    assert sorted(pvcs(cluster.admin, namespace)) == [HEALER_PVC]
    assert (cluster.volume_dir(namespace, HEALER_PVC) / "PROMPT.md").exists()
    coderuns = client.CustomObjectsApi(cluster.admin)
    for name in runs:
        stored: Any = coderuns.get_namespaced_custom_object("agents.platform", "v1", namespace, "coderuns", name)
        assert "agents.platform/workspace" not in (stored["metadata"].get("annotations") or {})
    # Each CodeRun and each Pod admitted unchanged, the log saying why.
    left = [(line["kind"], line["message"]) for line in said if "left as it is" in line.get("message", "")]
    assert sorted(kind for kind, _ in left) == ["CodeRun", "CodeRun", "Pod", "Pod"], said
    assert all("healer" in message for _, message in left), left
