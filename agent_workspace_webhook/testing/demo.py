"""`agent-workspace-webhook demo`: a living cluster, the webhook registered from manifests/,
three agents' runs (CodeRun + Job, as the platform makes them) Running on their own Bound
workspaces; then one agent cancelled and restarted without touching the others."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_workspace_webhook.ops.workspaces import table
from agent_workspace_webhook.testing.env import Environment
from agent_workspace_webhook.testing.install import WEBHOOK_SERVICE_ACCOUNT
from agent_workspace_webhook.testing.kube import pvcs, wait_bound
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.processes import ControlPlaneError
from agent_workspace_webhook.testing.runs import Run, RunFields, cancel, start_run, wait_gone, wait_running

NAMESPACE = "demo"
SERVICE = "cto"
# (what, CodeRun name, how it names its agent): Rex and Cleo by GitHub App, Tess as today's CRD does.
RUNS: tuple[tuple[str, str, RunFields], ...] = (
    ("Rex", "cto-task-1-rex", {"githubApp": "5DLabs-Rex"}),
    ("Cleo", "cto-task-1-cleo", {"githubApp": "5DLabs-Cleo[bot]"}),
    ("Tess", "cto-task-1-tess", {"implementationAgent": "tess"}),
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


def run(wait: bool = True, say: Callable[[str], None] = print) -> int:
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
        hook = env.serve()
        say(f"webhook serving {hook.url} with fresh certificates, as ServiceAccount {WEBHOOK_SERVICE_ACCOUNT}")
        admin = env.admin
        env.namespace(NAMESPACE)
        say("registered from manifests/webhook.yaml; each run is a CodeRun and a Job, as the platform makes them\n")

        runs: dict[str, Run] = {}
        lines = []
        for what, name, agent in RUNS:
            existed = set(volumes(admin))
            runs[what] = start_run(admin, NAMESPACE, SERVICE, name, **agent)
            lines.append(row(admin, what, runs[what], existed))
        say(table(HEADERS, lines))

        before = volumes(admin)
        others = {what: wait_running(admin, runs[what])["metadata"]["name"] for what in ("Rex", "Tess")}
        say("\ncancelling Cleo (deleting its Job and so its Pod) ...")
        cancel(admin, runs["Cleo"])
        wait_gone(admin, runs["Cleo"])
        untouched = all(wait_running(admin, runs[w])["metadata"]["name"] == pod for w, pod in others.items())
        same = volumes(admin) == before
        say(f"Rex's and Tess's Pods still Running, unchanged: {'yes' if untouched else 'NO'}")
        say(f"all three workspaces still Bound to the same volumes: {'yes' if same else 'NO'}")
        say("starting Cleo again ...\n")
        existed = set(volumes(admin))
        runs["Cleo"] = start_run(admin, NAMESPACE, SERVICE, "cto-task-2-cleo", githubApp="5DLabs-Cleo[bot]")
        say(table(HEADERS, [row(admin, what, runs[what], existed) for what, _, _ in RUNS]))
        kubectl = env.plane.bin_dir / "kubectl"
        say(
            f"\nThe cluster keeps running. In another terminal:\n\n    export KUBECONFIG={env.plane.kubeconfig}\n"
            f"    {kubectl} get pods,pvc,coderuns -n {NAMESPACE} -o wide -L agents.platform/agent\n"
        )
        if wait:
            say("Ctrl-C stops the webhook and the cluster.")
            with contextlib.suppress(KeyboardInterrupt):
                while hook.proc is not None and hook.proc.poll() is None:
                    time.sleep(1)
        return 0 if untouched and same else 1
    except (ControlPlaneError, TimeoutError) as exc:
        say(f"demo failed: {exc}")
        return 1
    finally:
        env.stop()
        shutil.rmtree(env.workdir or "", ignore_errors=True)
        say("stopped.")
