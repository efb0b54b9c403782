"""Fresh workspaces through the living cluster (issue 18), with runs made as the platform makes
them and, for a fresh CodeRun, the platform controller's PVC step played first (testing/runs.py:
delete the PVC it computes, wait, re-create that name, then the Job). The webhook's workspaces
live in the Retain class, so whatever anyone deletes keeps its volume."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from agent_workspace_webhook.ops.manifests import load_yaml, manifests_dir
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import apply, create, create_job, denial, pvcs, wait_bound
from agent_workspace_webhook.testing.living import FIXED_CLASS, RETAIN_CLASS, STORAGE_CLASS
from agent_workspace_webhook.testing.objects import (
    applied,
    claim,
    coderun_job,
    controller_pod,
    controller_ref,
    review,
)
from agent_workspace_webhook.testing.runs import (
    Run,
    Submitted,
    cancel,
    controller_pvc_name,
    fresh_pvc_step,
    launch,
    run_pod,
    run_pods,
    start_run,
    submit,
    wait_gone,
    wait_running,
)

pytestmark = pytest.mark.e2e

APPS = {"rex": "5DLabs-Rex", "cleo": "5DLabs-Cleo[bot]"}


def volume_of_pv(cluster: Environment, pv_name: str) -> Path:
    pv = client.CoreV1Api(cluster.admin).read_persistent_volume(pv_name)
    assert pv.spec is not None and pv.spec.csi is not None and cluster.plane.components is not None
    return cluster.plane.components.volume_dir(pv.spec.csi.volume_handle)


def run_and_stop(cluster: Environment, run: Run) -> dict[str, Any]:
    """Wait for the run's Pod, then cancel it (as a finished run): the Pod that mounted what."""
    pod = wait_running(cluster.admin, run, timeout=90)
    cancel(cluster.admin, run)
    wait_gone(cluster.admin, run)
    return pod


def test_a_fresh_run_gets_a_new_empty_generation_and_the_previous_context_is_kept(
    cluster: Environment, namespace: str
) -> None:
    first = {agent: generation_name(f"workspace-api-{agent}", 1) for agent in APPS}
    second = {agent: generation_name(first[agent], 2) for agent in APPS}
    with cluster.webhook(storage_class=RETAIN_CLASS):
        # run 1 of each: their context is written into their workspaces
        volumes = {}
        for agent, app in APPS.items():
            run = start_run(cluster.admin, namespace, "api", f"api-1-{agent}", githubApp=app)
            assert claim(wait_running(cluster.admin, run)) == first[agent]
            (cluster.volume_dir(namespace, first[agent]) / "NOTES.md").write_text(f"what {agent} learned\n")
            volumes[agent] = pvcs(cluster.admin, namespace)[first[agent]]["spec"]["volumeName"]
            cancel(cluster.admin, run)
            wait_gone(cluster.admin, run)

        # a fresh run of each: the platform's controller deletes what it computes (Cleo's own
        # workspace; workspace-api for Rex, its implementation agent) and re-makes that name
        for agent, app in APPS.items():
            fresh = start_run(cluster.admin, namespace, "api", f"api-2-{agent}", githubApp=app, freshWorkspace=True)
            pod = run_and_stop(cluster, fresh)
            assert claim(pod) == second[agent], agent
            made = wait_bound(cluster.admin, namespace, second[agent])
            assert made["spec"]["storageClassName"] == RETAIN_CLASS
            assert made["metadata"]["labels"]["agents.platform/generation"] == "2"
            assert not any(cluster.volume_dir(namespace, second[agent]).iterdir()), "the fresh one is empty"

        # each previous context is still there to restore: Rex's generation 1 as it was, and Cleo's
        # (deleted by the platform's controller) as the Released volume of the Retain class
        found = pvcs(cluster.admin, namespace)
        assert found[first["rex"]]["spec"]["volumeName"] == volumes["rex"]
        assert (volume_of_pv(cluster, volumes["rex"]) / "NOTES.md").read_text() == "what rex learned\n"
        cleo_pv = client.CoreV1Api(cluster.admin).read_persistent_volume(volumes["cleo"])
        assert cleo_pv.status is not None and cleo_pv.status.phase == "Released"
        assert cleo_pv.spec is not None and cleo_pv.spec.claim_ref is not None
        assert cleo_pv.spec.claim_ref.name == first["cleo"]
        assert (volume_of_pv(cluster, volumes["cleo"]) / "NOTES.md").read_text() == "what cleo learned\n"
        assert found[first["cleo"]]["spec"]["volumeName"] != volumes["cleo"]  # the controller's re-made one

        # a plain later run of each uses the new generation; one new generation per fresh run
        for agent, app in APPS.items():
            later = start_run(cluster.admin, namespace, "api", f"api-3-{agent}", githubApp=app)
            assert claim(run_and_stop(cluster, later)) == second[agent]
        ours = [
            p
            for p in pvcs(cluster.admin, namespace).values()
            if "agents.platform/generation" in p["metadata"]["labels"]
        ]
        # the webhook's: Rex's two and Cleo's new one (her first was deleted; its name re-made by the controller)
        assert sorted(p["metadata"]["name"] for p in ours) == sorted([first["rex"], second["rex"], second["cleo"]])


def test_two_webhook_processes_admitting_one_fresh_run_make_one_generation(
    cluster: Environment, namespace: str
) -> None:
    # Two replicas: the API server calls the first for the Job's Pods; the same Pod is also sent
    # to each of them at once, as an API server spreading calls over both would.
    hooks = [cluster.start_webhook() for _ in range(2)]
    cluster.register(hooks[0])
    run = Run(namespace, "ledger-intake", "ledger-intake-job")
    try:
        submitted = submit(cluster.admin, namespace, "ledger", run.coderun, githubApp="5DLabs-Tess", runType="intake")
        fresh_pvc_step(cluster.admin, namespace, controller_pvc_name(submitted.coderun["spec"]))
        job = coderun_job(submitted.coderun, run.job, controller_pod("ledger", "5dlabs-tess"))
        job["spec"].update({"parallelism": 6, "completions": 6})  # six Pods at once, over both processes
        stored_job = create_job(cluster.admin, namespace, job)
        # The same run's Pod reviewed by each process at once, as two replicas would be called
        pod = controller_pod("ledger", "5dlabs-tess", generate_name=f"{run.job}-")
        pod["metadata"]["ownerReferences"] = [controller_ref(stored_job)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda hook: hook.review(review(pod, namespace=namespace)), hooks * 2))
        assert {claim(applied(pod, {"response": answer})) for answer in answers} == {
            generation_name("workspace-ledger-tess", 2)
        }
        deadline = time.monotonic() + 90
        while len(running := [p for p in run_pods(cluster.admin, run) if p["status"].get("phase") == "Running"]) < 6:
            assert time.monotonic() < deadline, [p["status"] for p in run_pods(cluster.admin, run)]
            time.sleep(0.2)
    finally:
        cluster.restore()
        for hook in hooks:
            hook.stop()
    # the controller re-made workspace-ledger-tess; the run got one generation of the webhook's own
    assert {claim(pod) for pod in running} == {generation_name("workspace-ledger-tess", 2)}
    fresh = [
        name
        for name, p in pvcs(cluster.admin, namespace).items()
        if "agents.platform/fresh-for" in p["metadata"]["annotations"]
    ]
    assert fresh == [generation_name("workspace-ledger-tess", 2)]
    created = [
        a
        for hook in hooks
        for a in hook.admissions()
        if a.get("pvc_action") == "created" and a["namespace"] == namespace
    ]
    assert len(created) == 1, created
    assert all(any(a.get("namespace") == namespace for a in hook.admissions()) for hook in hooks), "both admitted"


def cli(cluster: Environment, *args: str) -> subprocess.CompletedProcess[str]:
    """The console command, as an operator runs it with the cluster's admin kubeconfig."""
    env = {**os.environ, "WEBHOOK_KUBECONFIG": str(cluster.plane.kubeconfig), "WEBHOOK_STORAGE_CLASS": RETAIN_CLASS}
    return subprocess.run(
        [sys.executable, "-m", "agent_workspace_webhook", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def fresh_run(cluster: Environment, namespace: str, agent: str, n: int) -> str:
    """Run n of the agent, fresh; the PVC it mounted."""
    app = {**APPS, "tess": "5DLabs-Tess"}[agent]
    run = start_run(cluster.admin, namespace, "docs", f"docs-{n}-{agent}", githubApp=app, freshWorkspace=True)
    return str(claim(run_and_stop(cluster, run)))


def test_restore_brings_back_a_released_volume_or_an_older_generation(cluster: Environment, namespace: str) -> None:
    first = "workspace-docs-cleo"
    with cluster.webhook(storage_class=RETAIN_CLASS):
        run = start_run(cluster.admin, namespace, "docs", "docs-1-cleo", githubApp=APPS["cleo"])
        assert claim(run_and_stop(cluster, run)) == first
        (cluster.volume_dir(namespace, first) / "NOTES.md").write_text("run 1\n")
        released = pvcs(cluster.admin, namespace)[first]["spec"]["volumeName"]
        second = fresh_run(cluster, namespace, "cleo", 2)  # the controller deletes generation 1: Released
        (cluster.volume_dir(namespace, second) / "NOTES.md").write_text("run 2\n")

        planned = cli(cluster, "workspaces", "restore", namespace, "docs", "cleo", "--released", released, "--dry-run")
        assert planned.returncode == 0, planned.stderr
        third = generation_name(first, 3)
        assert (
            f"would create PersistentVolumeClaim {namespace}/{third} (generation 3) bound to volume {released}"
            in planned.stdout
        )
        assert third not in pvcs(cluster.admin, namespace)  # a dry run changes nothing

        done = cli(cluster, "workspaces", "restore", namespace, "docs", "cleo", "--released", released)
        assert done.returncode == 0, done.stderr
        assert wait_bound(cluster.admin, namespace, third)["spec"]["volumeName"] == released
        assert (volume_of_pv(cluster, released) / "NOTES.md").read_text() == "run 1\n"
        later = start_run(cluster.admin, namespace, "docs", "docs-3-cleo", githubApp=APPS["cleo"])
        assert claim(run_and_stop(cluster, later)) == third  # the restored life is current

        cloned = cli(cluster, "workspaces", "restore", namespace, "docs", "cleo", "--generation", "2")
        assert cloned.returncode == 0, cloned.stderr
        fourth = generation_name(first, 4)
        assert (cluster.volume_dir(namespace, fourth) / "NOTES.md").read_text() == "run 2\n"
        assert pvcs(cluster.admin, namespace)[fourth]["metadata"]["annotations"]["agents.platform/made-from"] == (
            f"restore of generation 2 ({second})"
        )

        for args, says in (
            (("--generation", "9"), "has no generation 9"),
            (("--released", "pv-nope"), "PersistentVolume pv-nope is not a Released volume"),
            ((), "give one of --generation N"),
        ):
            refused = cli(cluster, "workspaces", "restore", namespace, "docs", "cleo", *args)
            assert refused.returncode == 2 and says in refused.stderr, refused.stderr


def test_prune_removes_only_the_oldest_retained_copies_the_webhook_made(cluster: Environment, namespace: str) -> None:
    with cluster.webhook(storage_class=RETAIN_CLASS):
        run = start_run(cluster.admin, namespace, "docs", "docs-1-tess", githubApp="5DLabs-Tess")
        run_and_stop(cluster, run)
        old_volume = pvcs(cluster.admin, namespace)["workspace-docs-tess"]["spec"]["volumeName"]
        mounted = [fresh_run(cluster, namespace, "tess", n) for n in range(2, 6)]  # four fresh runs
    assert mounted == [generation_name("workspace-docs-tess", g) for g in range(2, 6)]
    before = set(pvcs(cluster.admin, namespace))
    report = cli(cluster, "workspaces", "-n", namespace)
    assert report.returncode == 0, report.stderr
    print("\n" + report.stdout)  # the closing note of issue 18 quotes this table

    looked = cli(cluster, "workspaces", "prune", "--keep", "3", "-n", namespace)
    assert looked.returncode == 0, looked.stderr
    assert (
        f"would delete Released volume {old_volume}" in looked.stdout
        and "would free 10.0 GiB in 1 copies" in looked.stdout
    )
    assert set(pvcs(cluster.admin, namespace)) == before
    client.CoreV1Api(cluster.admin).read_persistent_volume(old_volume)  # still there

    pruned = cli(cluster, "workspaces", "prune", "--keep", "3", "-n", namespace, "--yes")
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
    assert set(pvcs(cluster.admin, namespace)) == before


def test_an_operator_grows_workspaces_in_place(cluster: Environment, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(cluster.admin)
    grow_rights = load_yaml(manifests_dir() / "grow" / "rbac.yaml")  # what manifests/grow adds
    for doc in grow_rights:
        apply(cluster.admin, doc)
    try:
        for agent, storage_class in (("rex", STORAGE_CLASS), ("cleo", FIXED_CLASS)):
            with cluster.webhook(storage_class=storage_class):
                run = start_run(cluster.admin, namespace, "grow", f"grow-1-{agent}", githubApp=APPS[agent])
                run_and_stop(cluster, run)
        # their next runs' CodeRuns, before the operator turns growing on (a CodeRun's admission grows too)
        rex, cleo = (run_pod(cluster.admin, namespace, "grow", app) for app in ("5dlabs-rex", "5dlabs-cleobot"))
        with cluster.webhook(grow_existing="true", storage_size="20Gi") as hook:
            _, warnings = create(cluster.admin, namespace, rex, dry_run=True)
            assert any("would grow from 10Gi to 20Gi" in w for w in warnings)
            assert (
                pvcs(cluster.admin, namespace)["workspace-grow-rex"]["spec"]["resources"]["requests"]["storage"]
                == "10Gi"
            )
            _, warnings = create(cluster.admin, namespace, rex)
            assert "PersistentVolumeClaim" in " ".join(warnings) and any(
                "grows from 10Gi to 20Gi" in w for w in warnings
            )
            _, warnings = create(cluster.admin, namespace, cleo)
            assert any(f"StorageClass {FIXED_CLASS} does not allow volume expansion" in w for w in warnings)
            assert hook.metrics().get("agent_workspace_webhook_pvcs_grown_total") == 1.0
        deadline = time.monotonic() + 60
        while (grown := pvcs(cluster.admin, namespace)["workspace-grow-rex"])["status"]["capacity"][
            "storage"
        ] != "20Gi":
            assert time.monotonic() < deadline, grown["status"]  # csi-resizer -> our driver's ControllerExpandVolume
            time.sleep(0.2)
        kept = pvcs(cluster.admin, namespace)["workspace-grow-cleo"]
        assert kept["spec"]["resources"]["requests"]["storage"] == "10Gi" == kept["status"]["capacity"]["storage"]
    finally:
        rbac.delete_cluster_role_binding("agent-workspace-webhook-grow")
        rbac.delete_cluster_role("agent-workspace-webhook-grow")


def test_the_namespace_ceiling_denies_the_next_new_workspace(cluster: Environment, namespace: str) -> None:
    with cluster.webhook(max_workspaces_per_namespace="2"):
        for agent in ("rex", "cleo"):
            run = start_run(cluster.admin, namespace, "cap", f"cap-1-{agent}", githubApp=APPS[agent])
            assert claim(run_and_stop(cluster, run)) == f"workspace-cap-{agent}"
        with pytest.raises(client.exceptions.ApiException) as refused:
            create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "cap", "5dlabs-tess"))
    message = denial(refused.value)
    assert "has 2 workspaces made by the webhook" in message and "WEBHOOK_MAX_WORKSPACES_PER_NAMESPACE=2" in message
    assert "workspace-cap-tess" not in pvcs(cluster.admin, namespace)


def test_the_generations_ceiling_refuses_a_fresh_run_until_old_generations_go(
    cluster: Environment, namespace: str
) -> None:
    gen1 = "workspace-gens-rex"
    gen2, gen3 = generation_name(gen1, 2), generation_name(gen1, 3)

    def rex(n: int, fresh: bool = False) -> Submitted:
        return submit(cluster.admin, namespace, "gens", f"gens-{n}-rex", githubApp=APPS["rex"], freshWorkspace=fresh)

    def mounted(submitted: Submitted) -> str | None:
        return claim(run_and_stop(cluster, launch(cluster.admin, submitted)))

    def ours() -> list[str]:
        return sorted(name for name in pvcs(cluster.admin, namespace) if name.startswith(gen1))

    with cluster.webhook(max_generations_per_workspace="2"):
        assert mounted(rex(1)) == gen1
        assert mounted(rex(2, fresh=True)) == gen2
        with pytest.raises(client.exceptions.ApiException) as refused:
            rex(3, fresh=True)
        message = denial(refused.value)
        assert f"workspace {namespace}/{gen1} has 2 generations, its ceiling" in message
        assert "WEBHOOK_MAX_GENERATIONS_PER_WORKSPACE=2" in message
        assert ours() == sorted([gen1, gen2])
        assert mounted(rex(4)) == gen2  # a run that is not fresh goes on with the current generation

        # the operator deletes the oldest generation: the next fresh run gets its own (once the
        # webhook's watch has seen the deletion: until then it still counts two, and says so)
        client.CoreV1Api(cluster.admin).delete_namespaced_persistent_volume_claim(gen1, namespace)
        deadline = time.monotonic() + 30
        while True:
            try:
                fifth = rex(5, fresh=True)
                break
            except client.exceptions.ApiException as exc:
                assert "generations, its ceiling" in denial(exc) and time.monotonic() < deadline, denial(exc)
                time.sleep(0.2)
        assert mounted(fifth) == gen3
        assert ours() == sorted([gen2, gen3])
