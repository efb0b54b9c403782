"""`agent-workspace-webhook demo`: a living cluster, the webhook registered from manifests/, the
twin of the platform's controller in front (it makes each CodeRun's PVC and Job as the platform
does), three agents' runs Running on their own Bound workspaces; then one agent cancelled and
restarted without touching the others, and a fresh run of it with its earlier context kept."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_workspace_webhook.ops.workspaces import table
from agent_workspace_webhook.testing.env import Environment
from agent_workspace_webhook.testing.install import WEBHOOK_SERVICE_ACCOUNT
from agent_workspace_webhook.testing.kube import pvcs, wait_bound
from agent_workspace_webhook.testing.living import RETAIN_CLASS
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.processes import ControlPlaneError
from agent_workspace_webhook.testing.runs import (
    Run,
    RunFields,
    cancel,
    cleanup_job,
    expire,
    finish,
    start_run,
    wait_phase,
    wait_running,
)

NAMESPACE = "demo"
SERVICE = "cto"
# (what, CodeRun name, how it names its agent): by GitHub App, as the platform's controller needs
# (it makes no Job for a run without one); Tess also with today's implementationAgent.
RUNS: tuple[tuple[str, str, RunFields], ...] = (
    ("Rex", "cto-task-1-rex", {"githubApp": "5DLabs-Rex"}),
    ("Cleo", "cto-task-1-cleo", {"githubApp": "5DLabs-Cleo[bot]"}),
    ("Tess", "cto-task-1-tess", {"githubApp": "5DLabs-Tess", "implementationAgent": "tess"}),
)
HEADERS = ("RUN", "AGENT", "PVC", "WORKSPACE", "PVC PHASE", "SIZE", "NODE", "POD")


def row(admin: Any, what: str, run: Run, existed: set[str]) -> tuple[str, ...]:
    """One line of the table: the run's Pod (Running) and its workspace PVC (Bound)."""
    pod = wait_running(admin, run)
    pvc = claim(pod) or "-"
    bound = wait_bound(admin, NAMESPACE, pvc)
    return (
        what,
        pod["metadata"].get("labels", {}).get("agents.platform/agent", "-"),
        pvc,
        "reused" if pvc in existed else "created",
        bound["status"]["phase"],
        bound["status"].get("capacity", {}).get("storage", "-"),
        pod["spec"].get("nodeName", "-"),
        pod["status"]["phase"],
    )


def volumes(admin: Any) -> dict[str, str]:
    """Each PVC of the demo and its bound volume (the same volume means the same data)."""
    return {name: p["spec"].get("volumeName", "-") for name, p in pvcs(admin, NAMESPACE).items()}


class Interrupted(Exception):
    """SIGTERM or SIGHUP (a closed terminal) while the demo runs: stop everything, as Ctrl-C does."""


def _interrupted(signum: int, _: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run(wait: bool = True, say: Callable[[str], None] = print) -> int:
    """The demo; every process it started is stopped on the way out, however it ends (Ctrl-C,
    SIGTERM, SIGHUP, a failure)."""
    previous = {signum: signal.signal(signum, _interrupted) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _run(wait, say)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(wait: bool, say: Callable[[str], None]) -> int:
    env = Environment(living=True, workdir=Path(tempfile.mkdtemp(prefix="agent-workspace-demo-")))
    say(
        "starting a cluster on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, "
        f"kwok (3 simulated nodes), csi-provisioner + a CSI driver (in {env.workdir}) ..."
    )
    try:
        started = time.monotonic()
        env.start()
        say(
            f"cluster up in {time.monotonic() - started:.1f} s; applied: manifests/dev (stand-in for the platform's"
            " CodeRun CRD), manifests/ (namespace, RBAC)"
        )
        hook = env.serve(storage_class=RETAIN_CLASS)
        say(
            f"webhook serving {hook.url} with fresh certificates, as ServiceAccount {WEBHOOK_SERVICE_ACCOUNT}; "
            f"workspaces in StorageClass {RETAIN_CLASS} (reclaimPolicy Retain)"
        )
        admin = env.admin
        env.namespace(NAMESPACE, platform=True)
        say(
            "registered from manifests/webhook.yaml; the platform's controller (its twin, testing/twin) makes each "
            "CodeRun's PVC and Job\n"
        )

        runs: dict[str, Run] = {}
        lines = []
        for what, name, agent in RUNS:
            existed = set(volumes(admin))
            runs[what] = start_run(admin, NAMESPACE, SERVICE, name, **agent)
            lines.append(row(admin, what, runs[what], existed))
            (env.volume_dir(NAMESPACE, lines[-1][2]) / "NOTES.md").write_text(f"what {what} learned in run 1\n")
        say(table(HEADERS, lines))

        before = volumes(admin)
        others = {what: wait_running(admin, runs[what])["metadata"]["name"] for what in ("Rex", "Tess")}
        say("\ncancelling Cleo (deleting her CodeRun: the controller deletes its Job, so its Pod) ...")
        cancel(admin, runs["Cleo"])
        # its cleanup Job (on her workspace) finishes; its completed Pod holds the claim until the
        # Job's TTL (300 s), which passes here at once
        expire(admin, Run(NAMESPACE, runs["Cleo"].coderun, cleanup_job(admin, runs["Cleo"])["metadata"]["name"]))
        untouched = all(wait_running(admin, runs[w])["metadata"]["name"] == pod for w, pod in others.items())
        same = volumes(admin) == before
        say(f"Rex's and Tess's Pods still Running, unchanged: {'yes' if untouched else 'NO'}")
        say(f"all workspaces still Bound to the same volumes: {'yes' if same else 'NO'}")
        say("starting Cleo again ...\n")
        existed = set(volumes(admin))
        runs["Cleo"] = start_run(admin, NAMESPACE, SERVICE, "cto-task-2-cleo", githubApp="5DLabs-Cleo[bot]")
        say(table(HEADERS, [row(admin, what, runs[what], existed) for what, _, _ in RUNS]))
        notes = env.volume_dir(NAMESPACE, "workspace-cto-cleo") / "NOTES.md"
        kept = notes.is_file() and notes.read_text() == "what Cleo learned in run 1\n"
        say(f"Cleo's NOTES.md from run 1 still in her workspace: {'yes' if kept else 'NO'}")

        restorable = fresh_run(env, runs, say)
        kubectl = env.plane.bin_dir / "kubectl"
        say(
            f"\nThe cluster keeps running. In another terminal:\n\n    export KUBECONFIG={env.plane.kubeconfig}\n"
            f"    {kubectl} get pods,pvc,coderuns -n {NAMESPACE} -o wide -L agents.platform/agent\n"
        )
        if wait:
            say("Ctrl-C stops the webhook and the cluster.")
            with contextlib.suppress(KeyboardInterrupt, Interrupted):  # the usual way out
                while hook.proc is not None and hook.proc.poll() is None:
                    time.sleep(1)
        return 0 if untouched and same and kept and restorable else 1
    except (ControlPlaneError, TimeoutError) as exc:
        say(f"demo failed: {exc}")
        return 1
    except (Interrupted, KeyboardInterrupt) as exc:
        say(f"interrupted ({exc or 'SIGINT'}): stopping everything the demo started ...")
        return 130
    finally:
        env.stop()
        shutil.rmtree(env.workdir or "", ignore_errors=True)
        say("stopped.")


def fresh_run(env: Environment, runs: dict[str, Run], say: Callable[[str], None]) -> bool:
    """Cleo's run 2 finishes; run 3 asks for a fresh workspace: the platform's controller deletes
    the claim it computes for her (her generation 1), and the webhook gives the run a new, empty
    generation. Her earlier context stays restorable: her generation 1's volume is Released in
    the Retain class, NOTES.md on it. Whether it is."""
    admin = env.admin
    finish(admin, runs["Cleo"])
    wait_phase(admin, runs["Cleo"], "Succeeded")
    expire(admin, runs["Cleo"])  # as the Job's own TTL would: its completed Pod no longer holds the claim
    volume = pvcs(admin, NAMESPACE)["workspace-cto-cleo"]["spec"]["volumeName"]
    say("\nCleo's run 2 is done; her run 3 asks for a fresh workspace (freshWorkspace: true) ...\n")
    existed = set(volumes(admin))
    runs["Cleo"] = start_run(
        admin, NAMESPACE, SERVICE, "cto-task-3-cleo", githubApp="5DLabs-Cleo[bot]", freshWorkspace=True
    )
    line = row(admin, "Cleo", runs["Cleo"], existed)
    say(table(HEADERS, [line]))
    empty = not any(env.volume_dir(NAMESPACE, line[2]).iterdir())
    from kubernetes import client

    deadline = time.monotonic() + 60
    phase = None
    while phase != "Released" and time.monotonic() < deadline:
        pv = client.CoreV1Api(admin).read_persistent_volume(volume)
        phase = pv.status.phase if pv.status is not None else None
        time.sleep(0.2)
    handle = pv.spec.csi.volume_handle if pv.spec is not None and pv.spec.csi is not None else ""
    components = env.plane.components
    notes = components.volume_dir(handle) / "NOTES.md" if components is not None else Path("-")
    kept = phase == "Released" and notes.is_file()
    say(f"her fresh generation {line[2]} is empty: {'yes' if empty else 'NO'}")
    say(
        f"her earlier context (generation 1, deleted by the platform's controller for the fresh run): volume {volume} "
        f"{phase}, NOTES.md on it: {'yes' if kept else 'NO'}; restore it as her current workspace with\n"
        f"    agent-workspace-webhook workspaces restore {NAMESPACE} {SERVICE} cleo --released {volume}"
    )
    return empty and kept
