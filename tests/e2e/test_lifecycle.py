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
    Run,
    current,
    expire,
    finish,
    job_status,
    run_pods,
    start_run,
    submit,
    wait_phase,
    wait_running,
)
from agent_workspace_webhook.testing.twin import HEALER_PVC
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


def test_moving_to_per_agent_workspaces_keeps_the_shared_context(cluster: Environment, platform: str) -> None:
    legacy = legacy_workspace(cluster, platform, "cto")
    shared = cluster.volume_dir(platform, "workspace-cto")
    (shared / "CONTEXT.md").write_text("what the team learned so far\n")
    with cluster.webhook(seed_from_legacy="clone"):
        for agent, how in AGENTS:
            pod = wait_running(cluster.admin, start_run(cluster.admin, platform, "cto", f"cto-{agent}", **how))
            assert claim(pod) == f"workspace-cto-{agent}"
    dirs = {}
    for agent, _ in AGENTS:
        pvc = wait_bound(cluster.admin, platform, f"workspace-cto-{agent}")
        source = pvc["spec"]["dataSource"]
        assert (source["kind"], source["name"]) == ("PersistentVolumeClaim", "workspace-cto")
        assert pvc["metadata"]["annotations"]["agents.platform/cloned-from"] == "workspace-cto"
        assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"  # no smaller than the legacy one
        dirs[agent] = cluster.volume_dir(platform, f"workspace-cto-{agent}")
        assert (dirs[agent] / "CONTEXT.md").read_text() == "what the team learned so far\n"
    (dirs["cleo"] / "cleo.md").write_text("Cleo's own\n")
    assert not (dirs["tess"] / "cleo.md").exists() and not (shared / "cleo.md").exists()
    # The legacy PVC is never changed by the webhook. (Its resourceVersion moves: the external
    # provisioner adds a finalizer that protects a clone's source while it has clones to make.)
    after = pvcs(cluster.admin, platform)["workspace-cto"]
    for part in ("spec", "status"):
        assert after[part] == legacy[part]
    for part in ("labels", "annotations"):
        assert after["metadata"].get(part) == legacy["metadata"].get(part), part
    finalizers = set(after["metadata"]["finalizers"]) - {"provisioner.storage.kubernetes.io/cloning-protection"}
    assert finalizers == set(legacy["metadata"]["finalizers"])


def test_a_workspace_deleted_while_its_pod_runs_is_not_handed_out(cluster: Environment, platform: str) -> None:
    core, controller = client.CoreV1Api(cluster.admin), cluster.controller
    assert controller is not None
    first = start_run(cluster.admin, platform, "api", "api-1-rex", githubApp="5DLabs-Rex")
    wait_running(cluster.admin, first)
    controller.stop()  # the next CodeRun is accepted now; the controller takes it up later
    try:
        queued = submit(cluster.admin, platform, "api", "api-2-rex", githubApp="5DLabs-Rex")
        old = wait_bound(cluster.admin, platform, "workspace-api-rex")
        core.delete_namespaced_persistent_volume_claim("workspace-api-rex", platform)  # held: the Pod mounts it
        deadline = time.monotonic() + 10
        while "deletionTimestamp" not in pvcs(cluster.admin, platform)["workspace-api-rex"]["metadata"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)

        with pytest.raises(client.exceptions.ApiException) as refused:  # a new CodeRun is told at once
            submit(cluster.admin, platform, "api", "api-3-rex", githubApp="5DLabs-Rex")
        message = denial(refused.value)
        assert "workspace-api-rex is being deleted, still mounted by a Pod" in message
        assert "admitted with a fresh workspace once it is gone" in message
    finally:
        controller.start()
    second = current(cluster.admin, Run(platform, queued["metadata"]["name"], ""))  # its Job, from the controller
    deadline = time.monotonic() + 30
    said: list[str] = []
    while not said and time.monotonic() < deadline:  # its Pod is refused the same way, in the Job's events
        said = [m for m in job_status(cluster.admin, second) if "is being deleted" in m]
        time.sleep(0.2)
    assert said, job_status(cluster.admin, second)

    finish(cluster.admin, first)  # the first run ends and its Job goes: nothing holds the workspace
    wait_phase(cluster.admin, first, "Succeeded")
    expire(cluster.admin, first)
    pod = wait_running(cluster.admin, second, timeout=120)  # the Job controller's retries recover by themselves
    assert claim(pod) == "workspace-api-rex"
    fresh = wait_bound(cluster.admin, platform, "workspace-api-rex")
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


def test_runs_of_one_read_write_once_workspace_share_a_node(cluster: Environment, platform: str) -> None:
    assert len(nodes_of_six_rex_runs(cluster, platform)) == 1


def test_a_run_waits_for_its_workspace_s_node_rather_than_run_elsewhere(cluster: Environment, platform: str) -> None:
    first = wait_running(cluster.admin, rex_run(cluster, platform, 1))
    node = first["spec"]["nodeName"]
    with cordoned(cluster, node):
        second = rex_run(cluster, platform, 2)
        assert "affinity" in pending_reason(cluster, second)  # two other nodes are free
    assert wait_running(cluster.admin, second)["spec"]["nodeName"] == node


def test_without_colocation_a_run_goes_to_any_node(cluster: Environment, platform: str) -> None:
    # Deterministic: with the first run's node cordoned, the second can only run elsewhere. (Six
    # runs left to the scheduler may all land on one node: it scores by the load other tests left.)
    with cluster.webhook(colocate="false"):
        first = wait_running(cluster.admin, rex_run(cluster, platform, 1))
        node = first["spec"]["nodeName"]
        with cordoned(cluster, node):
            second = wait_running(cluster.admin, rex_run(cluster, platform, 2))
    assert claim(second) == claim(first) == "workspace-web-rex"
    assert second["spec"]["nodeName"] != node
    assert "podAffinity" not in second["spec"].get("affinity", {})


def test_a_coderun_naming_only_its_implementation_agent(cluster: Environment, platform: str) -> None:
    # Today's CodeRun without a GitHub App: the webhook records its agent's workspace; the
    # platform's controller makes its claim (workspace-docs) but builds no Job for it (resources.rs).
    stored = submit(cluster.admin, platform, "docs", "docs-1", implementationAgent="cleo")
    assert stored["metadata"]["labels"]["agents.platform/workspace"] == "workspace-docs-cleo"
    deadline = time.monotonic() + 10
    while "workspace-docs" not in pvcs(cluster.admin, platform):
        assert time.monotonic() < deadline, "the controller's PVC step did not run"
        time.sleep(0.1)
    time.sleep(2)  # a few of the controller's passes
    assert not client.BatchV1Api(cluster.admin).list_namespaced_job(platform).items
    assert set(pvcs(cluster.admin, platform)) == {"workspace-docs"}  # nothing of the webhook's: no Pod came


def test_a_healer_run_keeps_the_healer_workspace_it_shares_with_the_monitor(
    cluster: Environment, platform: str
) -> None:
    # The platform's healer runs mount healer-workspace, whatever their service: its healer monitor
    # (a Deployment) writes the prompts and logs they work from into it. ArgoCD makes it (the
    # controller's ensure_pvc_exists would, if it were missing).
    healer = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": HEALER_PVC},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    client.CoreV1Api(cluster.admin).create_namespaced_persistent_volume_claim(platform, healer)  # type: ignore[arg-type]
    (cluster.volume_dir(platform, HEALER_PVC) / "PROMPT.md").write_text("fix the failing CI of task 1\n")
    template = {"cliType": "claude", "model": "claude-sonnet", "settings": {"template": "healer/remediation"}}
    with cluster.webhook() as webhook:
        runs = {
            "healer-remediation-t1": start_run(
                cluster.admin, platform, "healer", "healer-remediation-t1", githubApp="5DLabs-Healer"
            ),
            "cto-remediation-t2": start_run(
                cluster.admin, platform, "cto", "cto-remediation-t2", githubApp="5DLabs-Rex", cliConfig=template
            ),
        }
        for run in runs.values():
            assert claim(wait_running(cluster.admin, run, phases=("Running", "Succeeded"))) == HEALER_PVC
        said = [json.loads(line) for line in webhook.log().splitlines() if f'"namespace":"{platform}"' in line]
    assert sorted(pvcs(cluster.admin, platform)) == [HEALER_PVC]
    assert (cluster.volume_dir(platform, HEALER_PVC) / "PROMPT.md").exists()
    coderuns = client.CustomObjectsApi(cluster.admin)
    for name in runs:
        stored: Any = coderuns.get_namespaced_custom_object("agents.platform", "v1", platform, "coderuns", name)
        assert "agents.platform/workspace" not in (stored["metadata"].get("annotations") or {})
    # Each CodeRun and each Pod admitted unchanged, the log saying why.
    left = [(line["kind"], line["message"]) for line in said if "left as it is" in line.get("message", "")]
    assert sorted(kind for kind, _ in left) == ["CodeRun", "CodeRun", "Pod", "Pod"], said
    assert all("healer" in message for _, message in left), left
