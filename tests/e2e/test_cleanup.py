"""The platform controller's cleanup after a deleted run, through the living cluster with its twin
in front: the CodeRun deleted, its finalizer deletes the Job and creates the workspace-cleanup Job
on the PVC the controller computes; the API server's call to the webhook points it at the
workspace the run used, and its Pod runs there. Without it the runs' directories would pile up in
the agents' workspaces."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import pvcs
from agent_workspace_webhook.testing.living import RETAIN_CLASS
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import (
    Run,
    cancel,
    cleanup_job,
    expire,
    finish,
    read_coderun,
    start_run,
    wait_phase,
    wait_running,
)

pytestmark = pytest.mark.e2e


def test_a_deleted_runs_cleanup_goes_to_the_workspace_it_used(cluster: Environment, platform: str) -> None:
    # Rex is one of the controller's implementation agents: it computes the shared workspace-cto
    # for his runs, while the webhook gave this one workspace-cto-rex.
    run = start_run(cluster.admin, platform, "cto", "cto-rex-1", githubApp="5DLabs-Rex")
    assert claim(wait_running(cluster.admin, run)) == "workspace-cto-rex"
    uid = read_coderun(cluster.admin, run)["metadata"]["uid"]
    run_dir = cluster.volume_dir(platform, "workspace-cto-rex") / "runs" / f"cto-rex-1-{uid[:8]}"
    run_dir.mkdir(parents=True)
    (run_dir / "session.log").write_text("what run 1 did\n")

    cancel(cluster.admin, run)  # the CodeRun deleted: the controller's finalizer cleans up
    job = cleanup_job(cluster.admin, run)
    assert claim(job["spec"]["template"]) == "workspace-cto-rex"
    assert job["metadata"]["labels"]["cleanup.cto.dev/run"] == "cto-rex-1"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == f"rm -rf /workspace/runs/{run_dir.name}"  # its own command, untouched
    cleanup_pod = wait_running(
        cluster.admin, Run(platform, run.coderun, job["metadata"]["name"]), phases=("Running", "Succeeded")
    )
    assert claim(cleanup_pod) == "workspace-cto-rex"
    made = (
        [a for a in cluster.default.admissions() if a.get("kind") == "Job" and a.get("namespace") == platform]
        if cluster.default
        else []
    )
    assert made and all(a.get("pvc_action") != "created" for a in made)  # the webhook made nothing for it


def test_a_long_named_fresh_runs_cleanup_goes_to_the_generation_it_ran_in(cluster: Environment, platform: str) -> None:
    # The controller cuts the cleanup label to 63 characters; the run worked in a generation of its own.
    name = "cto-cleo-fresh-implementation-of-task-42-for-the-billing-service-attempt-2"
    assert len(name) > 63
    with cluster.webhook(storage_class=RETAIN_CLASS):
        first = start_run(cluster.admin, platform, "cto", "cto-cleo-1", githubApp="5DLabs-Cleo[bot]")
        assert claim(wait_running(cluster.admin, first)) == "workspace-cto-cleo"
        finish(cluster.admin, first)
        wait_phase(cluster.admin, first, "Succeeded")
        expire(cluster.admin, first)
        run = start_run(cluster.admin, platform, "cto", name, githubApp="5DLabs-Cleo[bot]", freshWorkspace=True)
        used = claim(wait_running(cluster.admin, run))
        assert used == generation_name("workspace-cto-cleo", 2)
        cancel(cluster.admin, run)
        job = cleanup_job(cluster.admin, run)
    assert job["metadata"]["labels"]["cleanup.cto.dev/run"] == name[:63]
    assert claim(job["spec"]["template"]) == used  # not the controller's workspace-cto-cleo


def test_a_cleanup_for_a_run_whose_workspace_is_gone_stays_as_the_controller_made_it(
    cluster: Environment, platform: str
) -> None:
    run = start_run(cluster.admin, platform, "cto", "cto-rex-2", githubApp="5DLabs-Rex")
    assert claim(wait_running(cluster.admin, run)) == "workspace-cto-rex"
    core = client.CoreV1Api(cluster.admin)
    core.delete_namespaced_persistent_volume_claim("workspace-cto-rex", platform)  # held: the Pod mounts it
    deadline = time.monotonic() + 10
    while "deletionTimestamp" not in pvcs(cluster.admin, platform)["workspace-cto-rex"]["metadata"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cancel(cluster.admin, run)
    job = cleanup_job(cluster.admin, run)
    assert claim(job["spec"]["template"]) == "workspace-cto"  # the controller's own claim
    assert "affinity" not in job["spec"]["template"]["spec"]


def test_a_finished_runs_ttl_cleanup_goes_to_the_workspace_it_used(cluster: Environment, platform: str) -> None:
    # The controller also cleans up after a run that finished and still exists, once its TTL has
    # passed (cleanup.cto.dev/ttl-seconds overrides the hour): the same Job, the same redirect.
    run = start_run(cluster.admin, platform, "cto", "cto-rex-ttl", githubApp="5DLabs-Rex")
    assert claim(wait_running(cluster.admin, run)) == "workspace-cto-rex"
    patch = {"metadata": {"annotations": {"cleanup.cto.dev/ttl-seconds": "1"}}}
    client.CustomObjectsApi(cluster.admin).patch_namespaced_custom_object(
        "agents.platform", "v1", platform, "coderuns", run.coderun, patch
    )
    finish(cluster.admin, run)
    wait_phase(cluster.admin, run, "Succeeded")
    job = cleanup_job(cluster.admin, run)
    assert claim(job["spec"]["template"]) == "workspace-cto-rex"  # the controller computes workspace-cto
    assert read_coderun(cluster.admin, run)["metadata"].get("deletionTimestamp") is None  # the run stays
