"""Runs through the living cluster (issue 11) with the platform's controller (its twin) in front:
CodeRuns made as users make them, the controller's PVC step and Jobs, the Job controller making
the Pods, the webhook pointing each at its agent's workspace, the external provisioner binding it
through our CSI driver, simulated nodes running the Pods."""

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
    current,
    job_status,
    start_run,
    submit,
    wait_running,
)

pytestmark = pytest.mark.e2e

AGENTS: tuple[tuple[str, RunFields], ...] = (
    ("rex", {"githubApp": "5DLabs-Rex"}),
    ("cleo", {"githubApp": "5DLabs-Cleo[bot]"}),
    ("tess", {"githubApp": "5DLabs-Tess", "implementationAgent": "tess"}),
)


def start_all(cluster: Environment, namespace: str, service: str, suffix: str = "1") -> dict[str, Run]:
    return {
        agent: start_run(cluster.admin, namespace, service, f"{service}-{suffix}-{agent}", **how)
        for agent, how in AGENTS
    }


def test_three_runs_get_three_bound_workspaces_and_running_pods(cluster: Environment, platform: str) -> None:
    runs = start_all(cluster, platform, "billing")
    for agent, run in runs.items():
        pod = wait_running(cluster.admin, run)
        assert claim(pod) == f"workspace-billing-{agent}"
        assert pod["spec"]["nodeName"] in NODES
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("Job", run.job, True)  # the Job controller's
        pvc = wait_bound(cluster.admin, platform, f"workspace-billing-{agent}")
        pv = client.CoreV1Api(cluster.admin).read_persistent_volume(pvc["spec"]["volumeName"])
        assert pv.spec is not None and pv.spec.csi is not None and pv.spec.csi.driver == DRIVER
        assert cluster.volume_dir(platform, f"workspace-billing-{agent}").is_dir()
    # and the controller's own claim for Rex, its implementation agent: the shared one, never mounted
    assert set(pvcs(cluster.admin, platform)) == {"workspace-billing", *(f"workspace-billing-{a}" for a, _ in AGENTS)}


def test_cancelling_one_agent_leaves_the_others_and_its_workspace_keeps_its_context(
    cluster: Environment, platform: str
) -> None:
    runs = start_all(cluster, platform, "billing")
    pods = {agent: wait_running(cluster.admin, run)["metadata"]["uid"] for agent, run in runs.items()}
    volumes = {name: p["spec"]["volumeName"] for name, p in pvcs(cluster.admin, platform).items()}
    assert all(volumes[f"workspace-billing-{agent}"] for agent in runs)
    notes = cluster.volume_dir(platform, "workspace-billing-cleo") / "NOTES.md"
    notes.write_text("what Cleo learned in run 1\n")  # through the CSI driver's state directory

    cancel(cluster.admin, runs["cleo"])  # her CodeRun deleted: the controller's finalizer cleans up
    for agent in ("rex", "tess"):
        assert wait_running(cluster.admin, runs[agent])["metadata"]["uid"] == pods[agent]
    after = pvcs(cluster.admin, platform)
    assert {name: p["spec"]["volumeName"] for name, p in after.items()} == volumes
    assert all(p["status"]["phase"] == "Bound" for p in after.values())

    again = start_run(cluster.admin, platform, "billing", "billing-2-cleo", githubApp="5DLabs-Cleo[bot]")
    pod = wait_running(cluster.admin, again)
    assert claim(pod) == "workspace-billing-cleo"
    assert (
        pvcs(cluster.admin, platform)["workspace-billing-cleo"]["spec"]["volumeName"]
        == volumes["workspace-billing-cleo"]
    )
    assert notes.read_text() == "what Cleo learned in run 1\n"


def test_a_webhook_restart_while_runs_are_in_flight_loses_nothing(cluster: Environment, platform: str) -> None:
    hook, controller = cluster.default, cluster.controller
    assert hook is not None and controller is not None
    controller.stop()  # the CodeRuns are admitted; the controller takes them up while the webhook is down
    try:
        submitted = {
            agent: submit(cluster.admin, platform, "ledger", f"ledger-{agent}", **how) for agent, how in AGENTS
        }
        hook.stop()
        try:
            controller.start()
            runs = {
                agent: current(cluster.admin, Run(platform, s["metadata"]["name"], ""))
                for agent, s in submitted.items()
            }
            # failurePolicy Fail: the Job controller's Pod creations are refused, and say why
            deadline = time.monotonic() + 30
            refused: list[Any] = []
            while not refused and time.monotonic() < deadline:
                refused = [m for m in job_status(cluster.admin, runs["rex"]) if "failed calling webhook" in m]
                time.sleep(0.2)
            assert refused, job_status(cluster.admin, runs["rex"])
            with pytest.raises(client.exceptions.ApiException) as late:  # a CodeRun submitted now is refused too
                submit(cluster.admin, platform, "ledger", "ledger-blaze", githubApp="5DLabs-Blaze")
            assert "failed calling webhook" in denial(late.value)
        finally:
            hook.start()
    finally:
        controller.start()
    for agent, run in runs.items():  # the Job controller retries by itself
        assert claim(wait_running(cluster.admin, run, timeout=90)) == f"workspace-ledger-{agent}"
    before = {name: pvc["metadata"]["uid"] for name, pvc in pvcs(cluster.admin, platform).items()}
    blaze = start_run(cluster.admin, platform, "ledger", "ledger-blaze", githubApp="5DLabs-Blaze")
    assert claim(wait_running(cluster.admin, blaze)) == "workspace-ledger-blaze"  # the platform's retry
    names = {f"workspace-ledger-{a}" for a in ("rex", "cleo", "tess", "blaze")}
    assert set(pvcs(cluster.admin, platform)) == names | {"workspace-ledger"}
    # The log spans both lives of the process: the PVCs the controller made while the webhook was
    # down (its claim for Cleo and Tess; the PVC entry's failurePolicy Ignore let them through as
    # they were) are mounted as they are, and the webhook made the rest once each: Rex's and
    # Blaze's own (the controller's claim for them is the shared workspace-ledger).
    created = [a["pvc"] for a in hook.admissions() if a.get("pvc_action") == "created" and a["namespace"] == platform]
    assert sorted(created) == ["workspace-ledger-blaze", "workspace-ledger-rex"], created
    uids = {name: pvc["metadata"]["uid"] for name, pvc in pvcs(cluster.admin, platform).items()}
    assert uids == before | {"workspace-ledger-blaze": uids["workspace-ledger-blaze"]}, "a PVC was replaced"
