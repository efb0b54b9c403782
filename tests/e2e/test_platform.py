"""Issue 32, through the living cluster with the platform controller's twin in front: every agent,
isolated (Cleo, Tess: the controller computes their own workspace and makes it, in its own Delete
class) or implementation (Rex, Vex: the controller computes the shared workspace-{service}), keeps
every earlier context across plain, fresh, intake and retried runs, each restorable with
`workspaces restore`; two GitHub Apps the controller's derivation merges get a workspace each."""

from __future__ import annotations

import pytest
from kubernetes import client

from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import json_body, pvcs, wait_bound
from agent_workspace_webhook.testing.living import RETAIN_CLASS, STORAGE_CLASS
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import (
    Run,
    expire,
    fail,
    finish,
    start_run,
    wait_phase,
    wait_running,
)
from tests.e2e.test_generations import operator, volume_of_pv

pytestmark = pytest.mark.e2e

SERVICE = "atlas"
# (Not "5DLabs-Cleo[bot]": the controller names an intake run's Job after the App's last `-` part,
# "cleo[bot]", which no Job may be named, and its reconcile fails: such a run never gets a Job.)
AGENTS = {"rex": "5DLabs-Rex", "vex": "5DLabs-Vex", "cleo": "5DLabs-Cleo", "tess": "5DLabs-Tess"}


def files(cluster: Environment, namespace: str, pvc: str) -> set[str]:
    return {path.name for path in cluster.volume_dir(namespace, pvc).iterdir()}


def mounted(cluster: Environment, run: Run) -> str:
    pvc = claim(wait_running(cluster.admin, run, timeout=90))
    assert pvc is not None
    return pvc


def done(cluster: Environment, run: Run) -> None:
    """The agent finishes, its CodeRun succeeds, its Job goes (as its TTL would have it)."""
    finish(cluster.admin, run)
    wait_phase(cluster.admin, run, "Succeeded")
    expire(cluster.admin, run)


def test_every_agent_keeps_every_context_across_every_kind_of_run(cluster: Environment, platform: str) -> None:
    assert cluster.controller is not None
    cluster.controller.config.storage_class = STORAGE_CLASS  # the controller's own config: a Delete class
    first_volume: dict[str, str] = {}
    try:
        with cluster.webhook(storage_class=RETAIN_CLASS):
            for agent, app in AGENTS.items():
                first_volume[agent] = runs_of(cluster, platform, agent, app)
    finally:
        cluster.controller.config.storage_class = None
    core = client.CoreV1Api(cluster.admin)
    for agent in AGENTS:
        gen = ["-", *(generation_name(f"workspace-{SERVICE}-{agent}", n) for n in range(1, 6))]  # gen[n]: generation n
        found = pvcs(cluster.admin, platform)
        # the contexts the fresh, intake and retried runs replaced are still generations of their own
        assert files(cluster, platform, gen[2]) == {"f1.md"}
        assert files(cluster, platform, gen[3]) == {"i1.md", "r1.md"}
        assert files(cluster, platform, gen[4]) == {"rf.md"}
        pv = core.read_persistent_volume(first_volume[agent])
        assert pv.spec is not None and pv.status is not None
        assert pv.spec.storage_class_name == RETAIN_CLASS, agent  # the controller's own PVC for Cleo and Tess, adopted
        if agent in ("cleo", "tess"):
            # the controller deleted their generation 1 (the claim it computes) at the first fresh run
            assert pv.status.phase == "Released", agent
            assert found[gen[1]]["spec"].get("volumeName") != first_volume[agent]  # the controller's re-made one
            restore = ("--released", first_volume[agent])
        else:  # theirs is the shared workspace-atlas: their generation 1 is untouched
            assert found[gen[1]]["spec"]["volumeName"] == first_volume[agent]
            restore = ("--generation", "1")
        assert (volume_of_pv(cluster, first_volume[agent]) / "p1.md").read_text() == "p1\n"
        done_restore = operator(cluster, "workspaces", "restore", platform, SERVICE, agent, *restore)
        assert done_restore.returncode == 0, done_restore.stderr
        assert files(cluster, platform, wait_bound(cluster.admin, platform, gen[5])["metadata"]["name"]) == {"p1.md"}
    # the restored generation is what the agent's next run mounts
    later = start_run(cluster.admin, platform, SERVICE, "cleo-after-restore", githubApp=AGENTS["cleo"])
    assert mounted(cluster, later) == generation_name(f"workspace-{SERVICE}-cleo", 5)


def runs_of(cluster: Environment, namespace: str, agent: str, app: str) -> str:
    """Plain, plain, fresh, intake, retried plain, retried fresh runs of one agent, each checked:
    the generation it mounts and what it finds there. The volume of its generation 1."""
    gen = ["-", *(generation_name(f"workspace-{SERVICE}-{agent}", n) for n in range(1, 5))]  # gen[n]: generation n

    def run(name: str, **fields: object) -> tuple[Run, str]:
        started = start_run(cluster.admin, namespace, SERVICE, f"{agent}-{name}", githubApp=app, **fields)  # type: ignore[arg-type]
        return started, mounted(cluster, started)

    def write(pvc: str, name: str) -> None:
        (cluster.volume_dir(namespace, pvc) / f"{name}.md").write_text(f"{name}\n")

    p1, pvc = run("p1")
    assert pvc == gen[1], agent
    write(pvc, "p1")
    volume = pvcs(cluster.admin, namespace)[gen[1]]["spec"]["volumeName"]
    done(cluster, p1)
    p2, pvc = run("p2")
    assert (pvc, files(cluster, namespace, pvc)) == (gen[1], {"p1.md"}), agent  # its context continues
    done(cluster, p2)
    f1, pvc = run("f1", freshWorkspace=True)
    assert (pvc, files(cluster, namespace, pvc)) == (gen[2], set()), agent  # fresh: a new, empty generation
    write(pvc, "f1")
    done(cluster, f1)
    i1, pvc = run("i1", runType="intake")
    assert (pvc, files(cluster, namespace, pvc)) == (gen[3], set()), agent  # intake is fresh too
    write(pvc, "i1")
    done(cluster, i1)
    r1, pvc = run("r1")
    assert (pvc, files(cluster, namespace, pvc)) == (gen[3], {"i1.md"}), agent
    write(pvc, "r1")
    retried = fail(cluster.admin, r1)  # its Pod dies: the controller retries with its next Job
    assert retried.job.endswith("-v2") and mounted(cluster, retried) == gen[3], agent
    done(cluster, retried)
    rf, pvc = run("rf", freshWorkspace=True)
    assert pvc == gen[4], agent
    write(pvc, "rf")
    retried = fail(cluster.admin, rf)  # the controller deletes its claim again, and retries
    assert mounted(cluster, retried) == gen[4] and files(cluster, namespace, gen[4]) == {"rf.md"}, agent
    done(cluster, retried)
    return str(volume)


def test_apps_the_controller_merges_get_a_workspace_each(cluster: Environment, platform: str) -> None:
    # The controller's (?i)5dlabs[_-]?(\w+) reads both as "code": it computes workspace-atlas-code
    # for both. The webhook keeps them apart; the controller's claim is made and never mounted.
    runs = {
        app: start_run(cluster.admin, platform, SERVICE, f"run-{app.lower()}", githubApp=app)
        for app in ("5DLabs-Code-Reviewer", "5DLabs-Code-Writer")
    }
    claims = {app: mounted(cluster, run) for app, run in runs.items()}
    assert claims == {
        "5DLabs-Code-Reviewer": f"workspace-{SERVICE}-code-reviewer",
        "5DLabs-Code-Writer": f"workspace-{SERVICE}-code-writer",
    }
    assert set(pvcs(cluster.admin, platform)) == {f"workspace-{SERVICE}-code", *claims.values()}
    pods = client.CoreV1Api(cluster.admin).list_namespaced_pod(platform, _preload_content=False)
    assert f"workspace-{SERVICE}-code" not in {claim(pod) for pod in json_body(pods)["items"]}
