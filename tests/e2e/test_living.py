"""Runs through the living cluster (issue 11): CodeRuns and Jobs as the platform makes them, the
Job controller making the Pods, the webhook pointing each at its agent's workspace, the external
provisioner binding it through our CSI driver, simulated nodes running the Pods."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import denial, pvcs, wait_bound
from agent_workspace_webhook.testing.living import DRIVER, NODES
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import (
    Run,
    RunFields,
    cancel,
    job_status,
    launch,
    start_run,
    submit,
    wait_gone,
    wait_running,
)

pytestmark = pytest.mark.e2e

AGENTS: tuple[tuple[str, RunFields], ...] = (
    ("rex", {"githubApp": "5DLabs-Rex"}),
    ("cleo", {"githubApp": "5DLabs-Cleo[bot]"}),
    ("tess", {"implementationAgent": "tess"}),
)


def start_all(cluster: Environment, namespace: str, service: str, suffix: str = "1") -> dict[str, Run]:
    return {
        agent: start_run(cluster.admin, namespace, service, f"{service}-{suffix}-{agent}", **how)
        for agent, how in AGENTS
    }


def test_three_runs_get_three_bound_workspaces_and_running_pods(cluster: Environment, namespace: str) -> None:
    runs = start_all(cluster, namespace, "billing")
    for agent, run in runs.items():
        pod = wait_running(cluster.admin, run)
        assert claim(pod) == f"workspace-billing-{agent}"
        assert pod["spec"]["nodeName"] in NODES
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "Job",
            run.job,
            True,
        )  # made by the Job controller
        pvc = wait_bound(cluster.admin, namespace, f"workspace-billing-{agent}")
        pv = client.CoreV1Api(cluster.admin).read_persistent_volume(pvc["spec"]["volumeName"])
        assert pv.spec is not None and pv.spec.csi is not None and pv.spec.csi.driver == DRIVER
        assert cluster.volume_dir(namespace, f"workspace-billing-{agent}").is_dir()
    assert set(pvcs(cluster.admin, namespace)) == {f"workspace-billing-{a}" for a, _ in AGENTS}


def test_cancelling_one_agent_leaves_the_others_and_its_workspace_keeps_its_context(
    cluster: Environment, namespace: str
) -> None:
    runs = start_all(cluster, namespace, "billing")
    pods = {agent: wait_running(cluster.admin, run)["metadata"]["uid"] for agent, run in runs.items()}
    volumes = {name: p["spec"]["volumeName"] for name, p in pvcs(cluster.admin, namespace).items()}
    assert len(volumes) == 3 and all(volumes.values())
    notes = cluster.volume_dir(namespace, "workspace-billing-cleo") / "NOTES.md"
    notes.write_text("what Cleo learned in run 1\n")  # through the CSI driver's state directory

    cancel(cluster.admin, runs["cleo"])
    wait_gone(cluster.admin, runs["cleo"])
    for agent in ("rex", "tess"):
        assert wait_running(cluster.admin, runs[agent])["metadata"]["uid"] == pods[agent]
    after = pvcs(cluster.admin, namespace)
    assert {name: p["spec"]["volumeName"] for name, p in after.items()} == volumes
    assert all(p["status"]["phase"] == "Bound" for p in after.values())

    again = start_run(cluster.admin, namespace, "billing", "billing-2-cleo", githubApp="5DLabs-Cleo[bot]")
    pod = wait_running(cluster.admin, again)
    assert claim(pod) == "workspace-billing-cleo"
    assert (
        pvcs(cluster.admin, namespace)["workspace-billing-cleo"]["spec"]["volumeName"]
        == volumes["workspace-billing-cleo"]
    )
    assert notes.read_text() == "what Cleo learned in run 1\n"


def test_a_webhook_restart_while_runs_are_in_flight_loses_nothing(cluster: Environment, namespace: str) -> None:
    hook = cluster.default
    assert hook is not None
    submitted = {agent: submit(cluster.admin, namespace, "ledger", f"ledger-{agent}", **how) for agent, how in AGENTS}
    assert pvcs(cluster.admin, namespace) == {}  # verified-runs: each is made at its run's first Pod
    hook.stop()
    try:
        runs = {agent: launch(cluster.admin, s) for agent, s in submitted.items()}  # the controller makes the Jobs
        # failurePolicy Fail: the Job controller's Pod creations are refused, and say why
        deadline = time.monotonic() + 30
        refused: list[Any] = []
        while not refused and time.monotonic() < deadline:
            refused = [m for m in job_status(cluster.admin, runs["rex"]) if "failed calling webhook" in m]
            time.sleep(0.2)
        assert refused, job_status(cluster.admin, runs["rex"])
        with pytest.raises(client.exceptions.ApiException) as late:  # a CodeRun submitted now is refused too
            submit(cluster.admin, namespace, "ledger", "ledger-blaze", githubApp="5DLabs-Blaze")
        assert "failed calling webhook" in denial(late.value)
    finally:
        hook.start()
    for agent, run in runs.items():  # the Job controller retries by itself
        assert claim(wait_running(cluster.admin, run, timeout=90)) == f"workspace-ledger-{agent}"
    before = {name: pvc["metadata"]["uid"] for name, pvc in pvcs(cluster.admin, namespace).items()}
    blaze = launch(cluster.admin, submit(cluster.admin, namespace, "ledger", "ledger-blaze", githubApp="5DLabs-Blaze"))
    assert claim(wait_running(cluster.admin, blaze)) == "workspace-ledger-blaze"  # the platform's retry
    names = {f"workspace-ledger-{a}" for a in ("rex", "cleo", "tess", "blaze")}
    assert set(pvcs(cluster.admin, namespace)) == names
    # The log spans both lives of the process: each PVC created exactly once, none by anyone else
    # (each at its run's first Pod: rex, cleo and tess after the restart, when the Job controller
    # retried, then blaze).
    created = [a["pvc"] for a in hook.admissions() if a.get("pvc_action") == "created" and a["namespace"] == namespace]
    assert sorted(created) == sorted(names), created
    uids = {name: pvc["metadata"]["uid"] for name, pvc in pvcs(cluster.admin, namespace).items()}
    assert uids == before | {"workspace-ledger-blaze": uids["workspace-ledger-blaze"]}, "a PVC was replaced"
