"""Fresh workspaces through the living cluster (issue 18), with the platform's controller (its twin,
testing/twin) in front: for a fresh CodeRun it deletes the PVC it computes, waits, re-makes that
name, then makes the Job. The webhook's workspaces live in the Retain class (the controller's own
generation 1 adopted into it at its creation), so whatever anyone deletes keeps its volume."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from agent_workspace_webhook.ops.manifests import load_yaml, manifests_dir
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import apply, create, denial, pvcs, wait_bound
from agent_workspace_webhook.testing.living import FIXED_CLASS, RETAIN_CLASS, STORAGE_CLASS
from agent_workspace_webhook.testing.objects import applied, claim, controller_ref, review
from agent_workspace_webhook.testing.runs import (
    Run,
    expire,
    finish,
    run_pod,
    start_run,
    submit,
    wait_phase,
    wait_running,
)
from agent_workspace_webhook.testing.tools import cli

pytestmark = pytest.mark.e2e

APPS = {"rex": "5DLabs-Rex", "cleo": "5DLabs-Cleo[bot]"}


def volume_of_pv(cluster: Environment, pv_name: str) -> Path:
    pv = client.CoreV1Api(cluster.admin).read_persistent_volume(pv_name)
    assert pv.spec is not None and pv.spec.csi is not None and cluster.plane.components is not None
    return cluster.plane.components.volume_dir(pv.spec.csi.volume_handle)


def run_and_stop(cluster: Environment, run: Run) -> dict[str, Any]:
    """Wait for the run's Pod, then let the agent finish (its CodeRun Succeeded) and its Job expire:
    the Pod that mounted what."""
    pod = wait_running(cluster.admin, run, timeout=90)
    finish(cluster.admin, run)
    wait_phase(cluster.admin, run, "Succeeded")
    expire(cluster.admin, run)
    return pod


def test_a_fresh_run_gets_a_new_empty_generation_and_the_previous_context_is_kept(
    cluster: Environment, platform: str
) -> None:
    first = {agent: generation_name(f"workspace-api-{agent}", 1) for agent in APPS}
    second = {agent: generation_name(first[agent], 2) for agent in APPS}
    with cluster.webhook(storage_class=RETAIN_CLASS):
        # run 1 of each: their context is written into their workspaces
        volumes = {}
        for agent, app in APPS.items():
            run = start_run(cluster.admin, platform, "api", f"api-1-{agent}", githubApp=app)
            assert claim(wait_running(cluster.admin, run)) == first[agent]
            (cluster.volume_dir(platform, first[agent]) / "NOTES.md").write_text(f"what {agent} learned\n")
            volumes[agent] = pvcs(cluster.admin, platform)[first[agent]]["spec"]["volumeName"]
            run_and_stop(cluster, run)

        # a fresh run of each: the platform's controller deletes what it computes (Cleo's own
        # workspace; workspace-api for Rex, its implementation agent) and re-makes that name
        for agent, app in APPS.items():
            fresh = start_run(cluster.admin, platform, "api", f"api-2-{agent}", githubApp=app, freshWorkspace=True)
            pod = run_and_stop(cluster, fresh)
            assert claim(pod) == second[agent], agent
            made = wait_bound(cluster.admin, platform, second[agent])
            assert made["spec"]["storageClassName"] == RETAIN_CLASS
            assert made["metadata"]["labels"]["agents.platform/generation"] == "2"
            assert not any(cluster.volume_dir(platform, second[agent]).iterdir()), "the fresh one is empty"

        # each previous context is still there to restore: Rex's generation 1 as it was, and Cleo's
        # (deleted by the platform's controller) as the Released volume of the Retain class
        found = pvcs(cluster.admin, platform)
        assert found[first["rex"]]["spec"]["volumeName"] == volumes["rex"]
        assert (volume_of_pv(cluster, volumes["rex"]) / "NOTES.md").read_text() == "what rex learned\n"
        cleo_pv = client.CoreV1Api(cluster.admin).read_persistent_volume(volumes["cleo"])
        assert cleo_pv.status is not None and cleo_pv.status.phase == "Released"
        assert cleo_pv.spec is not None and cleo_pv.spec.claim_ref is not None
        assert cleo_pv.spec.claim_ref.name == first["cleo"]
        assert (volume_of_pv(cluster, volumes["cleo"]) / "NOTES.md").read_text() == "what cleo learned\n"
        assert found[first["cleo"]]["spec"].get("volumeName") != volumes["cleo"]  # the controller's re-made one

        # a plain later run of each uses the new generation; one new generation per fresh run
        for agent, app in APPS.items():
            later = start_run(cluster.admin, platform, "api", f"api-3-{agent}", githubApp=app)
            assert claim(run_and_stop(cluster, later)) == second[agent]
        ours = [
            p for p in pvcs(cluster.admin, platform).values() if "agents.platform/generation" in p["metadata"]["labels"]
        ]
        # the webhook's: Rex's two and Cleo's new one (her first was deleted; its name re-made by the controller)
        assert sorted(p["metadata"]["name"] for p in ours) == sorted([first["rex"], second["rex"], second["cleo"]])


def test_two_webhook_processes_admitting_one_fresh_run_make_one_generation(cluster: Environment, platform: str) -> None:
    # Two replicas: the API server calls the first for the run's Pod; the same Pod is also sent to
    # each of them at once, as an API server spreading calls over both would.
    hooks = [cluster.start_webhook() for _ in range(2)]
    cluster.register(hooks[0])
    try:
        run = start_run(cluster.admin, platform, "ledger", "ledger-intake", githubApp="5DLabs-Tess", runType="intake")
        job = client.BatchV1Api(cluster.admin).read_namespaced_job(run.job, platform)
        template = job.spec.template if job.spec is not None else None
        assert template is not None and template.metadata is not None and template.spec is not None
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{run.job}-",
                "labels": template.metadata.labels,
                "ownerReferences": [
                    controller_ref(
                        {**cluster.admin.sanitize_for_serialization(job), "apiVersion": "batch/v1", "kind": "Job"}
                    )
                ],
            },
            "spec": cluster.admin.sanitize_for_serialization(template.spec),
        }
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda hook: hook.review(review(pod, namespace=platform)), hooks * 2))
        assert {claim(applied(pod, {"response": answer})) for answer in answers} == {
            generation_name("workspace-ledger-tess", 2)
        }
        running = wait_running(cluster.admin, run, timeout=90)
    finally:
        cluster.restore()
        for hook in hooks:
            hook.stop()
    # the controller re-made workspace-ledger-tess; the run got one generation of the webhook's own
    assert claim(running) == generation_name("workspace-ledger-tess", 2)
    fresh = [
        name
        for name, p in pvcs(cluster.admin, platform).items()
        if "agents.platform/fresh-for" in (p["metadata"].get("annotations") or {})
    ]
    assert fresh == [generation_name("workspace-ledger-tess", 2)]
    created = [
        a
        for hook in hooks
        for a in hook.admissions()
        if a.get("pvc_action") == "created" and a["namespace"] == platform
    ]
    assert len(created) == 1, created
    assert all(any(a.get("namespace") == platform for a in hook.admissions()) for hook in hooks), "both admitted"


def operator(cluster: Environment, *args: str) -> subprocess.CompletedProcess[str]:
    """The console command, as an operator runs it with the cluster's admin kubeconfig."""
    return cli(*args, WEBHOOK_KUBECONFIG=str(cluster.plane.kubeconfig), WEBHOOK_STORAGE_CLASS=RETAIN_CLASS)


def fresh_run(cluster: Environment, namespace: str, agent: str, n: int) -> str:
    """Run n of the agent, fresh; the PVC it mounted."""
    app = {**APPS, "tess": "5DLabs-Tess"}[agent]
    run = start_run(cluster.admin, namespace, "docs", f"docs-{n}-{agent}", githubApp=app, freshWorkspace=True)
    return str(claim(run_and_stop(cluster, run)))


def test_restore_brings_back_a_released_volume_or_an_older_generation(cluster: Environment, platform: str) -> None:
    first = "workspace-docs-cleo"
    with cluster.webhook(storage_class=RETAIN_CLASS):
        run = start_run(cluster.admin, platform, "docs", "docs-1-cleo", githubApp=APPS["cleo"])
        assert claim(run_and_stop(cluster, run)) == first
        (cluster.volume_dir(platform, first) / "NOTES.md").write_text("run 1\n")
        released = pvcs(cluster.admin, platform)[first]["spec"]["volumeName"]
        second = fresh_run(cluster, platform, "cleo", 2)  # the controller deletes generation 1: Released
        (cluster.volume_dir(platform, second) / "NOTES.md").write_text("run 2\n")

        planned = operator(
            cluster, "workspaces", "restore", platform, "docs", "cleo", "--released", released, "--dry-run"
        )
        assert planned.returncode == 0, planned.stderr
        third = generation_name(first, 3)
        assert (
            f"would create PersistentVolumeClaim {platform}/{third} (generation 3) bound to volume {released}"
            in planned.stdout
        )
        assert third not in pvcs(cluster.admin, platform)  # a dry run changes nothing

        done = operator(cluster, "workspaces", "restore", platform, "docs", "cleo", "--released", released)
        assert done.returncode == 0, done.stderr
        assert wait_bound(cluster.admin, platform, third)["spec"]["volumeName"] == released
        assert (volume_of_pv(cluster, released) / "NOTES.md").read_text() == "run 1\n"
        later = start_run(cluster.admin, platform, "docs", "docs-3-cleo", githubApp=APPS["cleo"])
        assert claim(run_and_stop(cluster, later)) == third  # the restored life is current

        cloned = operator(cluster, "workspaces", "restore", platform, "docs", "cleo", "--generation", "2")
        assert cloned.returncode == 0, cloned.stderr
        fourth = generation_name(first, 4)
        assert (cluster.volume_dir(platform, fourth) / "NOTES.md").read_text() == "run 2\n"
        assert pvcs(cluster.admin, platform)[fourth]["metadata"]["annotations"]["agents.platform/made-from"] == (
            f"restore of generation 2 ({second})"
        )

        for args, says in (
            (("--generation", "9"), "has no generation 9"),
            (("--released", "pv-nope"), "PersistentVolume pv-nope is not a Released volume"),
            ((), "give one of --generation N"),
        ):
            refused = operator(cluster, "workspaces", "restore", platform, "docs", "cleo", *args)
            assert refused.returncode == 2 and says in refused.stderr, refused.stderr


def test_prune_removes_only_the_oldest_retained_copies_the_webhook_made(cluster: Environment, platform: str) -> None:
    with cluster.webhook(storage_class=RETAIN_CLASS):
        run = start_run(cluster.admin, platform, "docs", "docs-1-tess", githubApp="5DLabs-Tess")
        run_and_stop(cluster, run)
        old_volume = pvcs(cluster.admin, platform)["workspace-docs-tess"]["spec"]["volumeName"]
        mounted = [fresh_run(cluster, platform, "tess", n) for n in range(2, 6)]  # four fresh runs
    assert mounted == [generation_name("workspace-docs-tess", g) for g in range(2, 6)]
    # a PVC made by hand in the Retain class, named like a workspace, then deleted: its Released
    # volume is someone else's, and prune never deletes it (the report calls it LEGACY)
    hand_made = {
        "metadata": {"name": "workspace-docs", "labels": {"team": "legacy"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": RETAIN_CLASS,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    client.CoreV1Api(cluster.admin).create_namespaced_persistent_volume_claim(platform, hand_made)  # type: ignore[arg-type]
    hand_volume = wait_bound(cluster.admin, platform, "workspace-docs")["spec"]["volumeName"]
    client.CoreV1Api(cluster.admin).delete_namespaced_persistent_volume_claim("workspace-docs", platform)
    deadline = time.monotonic() + 60
    while (pv := client.CoreV1Api(cluster.admin).read_persistent_volume(hand_volume)).status is None or (
        pv.status.phase != "Released"
    ):
        assert time.monotonic() < deadline, "the hand-made claim's volume is not Released"
        time.sleep(0.2)
    assert "app.kubernetes.io/managed-by" not in (pv.metadata.labels or {} if pv.metadata else {})
    old_pv = client.CoreV1Api(cluster.admin).read_persistent_volume(old_volume)
    assert old_pv.metadata is not None and (old_pv.metadata.labels or {}).get("app.kubernetes.io/managed-by") == (
        "agent-workspace-webhook"
    )  # the webhook's mark, put on as the volume was made
    before = set(pvcs(cluster.admin, platform))
    report = operator(cluster, "workspaces", "-n", platform)
    assert report.returncode == 0, report.stderr
    print("\n" + report.stdout)  # the closing note of issue 18 quotes this table

    looked = operator(cluster, "workspaces", "prune", "--keep", "3", "-n", platform)
    assert looked.returncode == 0, looked.stderr
    assert (
        f"would delete Released volume {old_volume}" in looked.stdout
        and "would free 10.0 GiB in 1 copies" in looked.stdout
    )
    assert set(pvcs(cluster.admin, platform)) == before
    client.CoreV1Api(cluster.admin).read_persistent_volume(old_volume)  # still there

    pruned = operator(cluster, "workspaces", "prune", "--keep", "3", "-n", platform, "--yes")
    assert pruned.returncode == 0, pruned.stderr
    deadline = time.monotonic() + 60
    # (a PV without metadata, which the API server never sends, would count as the pruned one still there)
    while any(
        pv.metadata is None or pv.metadata.name == old_volume
        for pv in client.CoreV1Api(cluster.admin).list_persistent_volume().items
    ):
        assert time.monotonic() < deadline, "the pruned volume was not deleted by its class"
        time.sleep(0.2)
    # nothing else: every generation, and the PVC the platform's controller re-made, are still there
    assert set(pvcs(cluster.admin, platform)) == before
    client.CoreV1Api(cluster.admin).read_persistent_volume(hand_volume)  # someone else's: still there
    everything = operator(cluster, "workspaces", "prune", "--keep", "0", "-n", platform)
    assert everything.returncode == 0 and hand_volume not in everything.stdout, everything.stdout


def test_an_operator_grows_workspaces_in_place(cluster: Environment, platform: str) -> None:
    rbac = client.RbacAuthorizationV1Api(cluster.admin)
    grow_rights = load_yaml(manifests_dir() / "grow" / "rbac.yaml")  # what manifests/grow adds
    for doc in grow_rights:
        apply(cluster.admin, doc)
    try:
        for agent, storage_class in (("rex", STORAGE_CLASS), ("cleo", FIXED_CLASS)):
            with cluster.webhook(storage_class=storage_class):
                run = start_run(cluster.admin, platform, "grow", f"grow-1-{agent}", githubApp=APPS[agent])
                run_and_stop(cluster, run)
        # their next runs' CodeRuns, before the operator turns growing on (a CodeRun's admission grows too)
        # their next runs' Pods, made by hand from here on (the controller would race them)
        assert cluster.controller is not None
        cluster.controller.release(platform)
        rex, cleo = (run_pod(cluster.admin, platform, "grow", app) for app in ("5dlabs-rex", "5dlabs-cleobot"))
        with cluster.webhook(grow_existing="true", storage_size="20Gi") as hook:
            _, warnings = create(cluster.admin, platform, rex, dry_run=True)
            assert any("would grow from 10Gi to 20Gi" in w for w in warnings)
            assert (
                pvcs(cluster.admin, platform)["workspace-grow-rex"]["spec"]["resources"]["requests"]["storage"]
                == "10Gi"
            )
            _, warnings = create(cluster.admin, platform, rex)
            assert "PersistentVolumeClaim" in " ".join(warnings) and any(
                "grows from 10Gi to 20Gi" in w for w in warnings
            )
            _, warnings = create(cluster.admin, platform, cleo)
            assert any(f"StorageClass {FIXED_CLASS} does not allow volume expansion" in w for w in warnings)
            assert hook.metrics().get("agent_workspace_webhook_pvcs_grown_total") == 1.0
        deadline = time.monotonic() + 60
        while (grown := pvcs(cluster.admin, platform)["workspace-grow-rex"])["status"]["capacity"]["storage"] != "20Gi":
            assert time.monotonic() < deadline, grown["status"]  # csi-resizer -> our driver's ControllerExpandVolume
            time.sleep(0.2)
        kept = pvcs(cluster.admin, platform)["workspace-grow-cleo"]
        assert kept["spec"]["resources"]["requests"]["storage"] == "10Gi" == kept["status"]["capacity"]["storage"]
    finally:
        rbac.delete_cluster_role_binding("agent-workspace-webhook-grow")
        rbac.delete_cluster_role("agent-workspace-webhook-grow")


def test_the_namespace_ceiling_denies_the_next_new_workspace(cluster: Environment, platform: str) -> None:
    with cluster.webhook(max_workspaces_per_namespace="2"):
        for agent in ("rex", "cleo"):
            run = start_run(cluster.admin, platform, "cap", f"cap-1-{agent}", githubApp=APPS[agent])
            assert claim(run_and_stop(cluster, run)) == f"workspace-cap-{agent}"
        assert cluster.controller is not None
        cluster.controller.release(platform)  # the next run's Pod made by hand (the controller would race it)
        with pytest.raises(client.exceptions.ApiException) as refused:
            create(cluster.admin, platform, run_pod(cluster.admin, platform, "cap", "5dlabs-tess"))
    message = denial(refused.value)
    assert "has 2 workspace PVCs made by the webhook" in message and "WEBHOOK_MAX_WORKSPACES_PER_NAMESPACE=2" in message
    assert "workspace-cap-tess" not in pvcs(cluster.admin, platform)


def test_the_rate_of_fresh_generations_refuses_a_runaway_until_lifted(cluster: Environment, platform: str) -> None:
    gen1 = "workspace-gens-rex"
    gen2, gen3 = generation_name(gen1, 2), generation_name(gen1, 3)

    def rex(n: int, fresh: bool = False) -> Run:
        return start_run(cluster.admin, platform, "gens", f"gens-{n}-rex", githubApp=APPS["rex"], freshWorkspace=fresh)

    def ours() -> list[str]:
        return sorted(name for name in pvcs(cluster.admin, platform) if name.startswith(gen1))

    with cluster.webhook(max_fresh_per_hour="2"):
        assert claim(run_and_stop(cluster, rex(1))) == gen1
        assert claim(run_and_stop(cluster, rex(2, fresh=True))) == gen2
        with pytest.raises(client.exceptions.ApiException) as refused:
            submit(cluster.admin, platform, "gens", "gens-3-rex", githubApp=APPS["rex"], freshWorkspace=True)
        message = denial(refused.value)
        assert f"workspace {platform}/{gen1} has had 2 new generations in the last hour, its limit" in message
        assert "WEBHOOK_MAX_FRESH_PER_HOUR=2" in message and "raise the setting if this rate is routine" in message
        assert ours() == sorted([gen1, gen2])
        assert claim(run_and_stop(cluster, rex(4))) == gen2  # a run that is not fresh goes on with the current one
    with cluster.webhook(max_fresh_per_hour="3"):  # the operator lifts it (or waits out the hour)
        assert claim(run_and_stop(cluster, rex(5, fresh=True))) == gen3
    assert ours() == sorted([gen1, gen2, gen3])


def test_thirty_intake_runs_in_a_row_for_one_agent_are_all_admitted(cluster: Environment, platform: str) -> None:
    # Every intake run is fresh: each gets a new generation, and none is refused (a count ceiling
    # refused the 20th: a routine operation of the platform became an outage).
    mounted = []
    for n in range(1, 31):
        run = start_run(cluster.admin, platform, "intake", f"intake-{n}", githubApp="5DLabs-Morgan", runType="intake")
        mounted.append(claim(run_and_stop(cluster, run)))
    base = "workspace-intake-morgan"
    assert mounted == [generation_name(base, n) for n in range(2, 32)]
