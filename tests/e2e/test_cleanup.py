"""The platform controller's cleanup after a deleted run, through the living cluster: its
workspace-cleanup Job (made from the CodeRun's finalizer, on the PVC the controller computes) is
pointed by the API server's call to the webhook at the workspace the run used, and its Pod runs
there. Without it the runs' directories would pile up in the agents' workspaces."""

from __future__ import annotations

import pytest
from kubernetes import client

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import create_job, pvcs
from agent_workspace_webhook.testing.objects import claim, cleanup_job
from agent_workspace_webhook.testing.runs import (
    FINALIZER,
    Run,
    clean_up_deleted,
    finalize,
    start_run,
    wait_running,
)

pytestmark = pytest.mark.e2e


def test_a_deleted_runs_cleanup_goes_to_the_workspace_it_used(cluster: Environment, namespace: str) -> None:
    # Rex is one of the controller's implementation agents: it computes the shared workspace-cto
    # for his runs, while the webhook gave this one workspace-cto-rex.
    run = start_run(cluster.admin, namespace, "cto", "cto-rex-1", githubApp="5DLabs-Rex")
    assert claim(wait_running(cluster.admin, run)) == "workspace-cto-rex"
    stored = finalize(cluster.admin, run, [FINALIZER])
    run_dir = cluster.volume_dir(namespace, "workspace-cto-rex") / "runs" / f"cto-rex-1-{stored['metadata']['uid'][:8]}"
    run_dir.mkdir(parents=True)
    (run_dir / "session.log").write_text("what run 1 did\n")
    coderuns = client.CustomObjectsApi(cluster.admin)
    coderuns.delete_namespaced_custom_object("agents.platform", "v1", namespace, "coderuns", run.coderun)

    job = clean_up_deleted(cluster.admin, run)  # the controller computes workspace-cto
    assert claim(job["spec"]["template"]) == "workspace-cto-rex"
    assert job["metadata"]["labels"]["cleanup.cto.dev/run"] == "cto-rex-1"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == f"rm -rf /workspace/runs/{run_dir.name}"  # its own command, untouched
    cleanup_pod = wait_running(cluster.admin, Run(namespace, run.coderun, job["metadata"]["name"]))
    assert claim(cleanup_pod) == "workspace-cto-rex"
    finalize(cluster.admin, run, [])  # the controller's cleanup is done: the CodeRun goes
    assert "workspace-cto" not in pvcs(cluster.admin, namespace)  # the webhook made nothing


def test_a_cleanup_for_a_run_it_cannot_place_stays_as_the_controller_made_it(
    cluster: Environment, namespace: str
) -> None:
    gone = {"metadata": {"name": "cto-rex-0", "uid": "0a1b2c3d-0000-4000-8000-000000000000"}}
    job = create_job(cluster.admin, namespace, cleanup_job(gone, "workspace-cto"))
    assert claim(job["spec"]["template"]) == "workspace-cto"
    assert "affinity" not in job["spec"]["template"]["spec"]
