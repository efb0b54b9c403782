"""`agent-workspace-webhook demo`: a real control plane, the webhook registered from manifests/,
three agents' runs created, and a table of the workspaces they got."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_workspace_webhook.ops.certs import write_certificates
from agent_workspace_webhook.ops.workspaces import table
from agent_workspace_webhook.testing.controlplane import ControlPlane, ControlPlaneError, free_port
from agent_workspace_webhook.testing.install import (
    WEBHOOK_NAMESPACE,
    WEBHOOK_SERVICE_ACCOUNT,
    admin_client,
    install,
    json_body,
    register,
    service_account_kubeconfig,
    wait_until_mutating,
    workspace_namespace,
)
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import controller_pod

NAMESPACE = "demo"
SERVICE = "cto"


def agent_pod(app_label: str) -> dict[str, Any]:
    return controller_pod(SERVICE, app_label, generate_name=f"coderun-{app_label.removeprefix('5dlabs-')}-")


def code_run(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "agents.platform/v1",
        "kind": "CodeRun",
        "metadata": {"name": name},
        "spec": {
            "taskId": 1,
            "service": SERVICE,
            "githubApp": app,
            "repositoryUrl": "https://github.com/5dlabs/cto",
            "docsRepositoryUrl": "https://github.com/5dlabs/docs",
            "workingDirectory": ".",
            "model": "claude-sonnet",
        },
    }


def run(wait: bool = True, say: Callable[[str], None] = print) -> int:
    from kubernetes import client

    plane = ControlPlane(workdir=Path(tempfile.mkdtemp(prefix="agent-workspace-demo-")))
    hook: LocalWebhook | None = None
    say(f"starting etcd and kube-apiserver on 127.0.0.1 (in {plane.workdir}) ...")
    try:
        plane.start()
        admin = admin_client(plane)
        core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
        say("applying manifests/: namespace, CodeRun CRD, ServiceAccount and RBAC ...")
        install(admin)
        certs = write_certificates(plane.workdir / "webhook-certs", ["127.0.0.1"])
        kubeconfig = service_account_kubeconfig(
            plane, admin, plane.workdir / "kubeconfig-webhook", WEBHOOK_SERVICE_ACCOUNT, WEBHOOK_NAMESPACE
        )
        hook = LocalWebhook(free_port(), {"WEBHOOK_KUBECONFIG": str(kubeconfig)}, certs, plane.workdir / "webhook.log")
        hook.start()
        say(f"webhook serving {hook.url} with fresh certificates, as ServiceAccount {WEBHOOK_SERVICE_ACCOUNT}")
        register(admin, hook.url, certs.ca.read_bytes())
        core.create_namespace(workspace_namespace(NAMESPACE))  # type: ignore[arg-type]
        wait_until_mutating(admin, NAMESPACE)
        say("registered from manifests/webhook.yaml; creating runs in namespace 'demo' ...\n")

        lines = []
        runs: list[tuple[str, dict[str, Any]]] = [
            ("Rex pod", agent_pod("5dlabs-rex")),
            ("Cleo pod", agent_pod("5dlabs-cleobot")),
            ("Tess CodeRun", code_run("cto-task-1-tess", "5DLabs-Tess")),
            ("Rex pod, again", agent_pod("5dlabs-rex")),
        ]
        for what, body in runs:
            before = {
                p["metadata"]["name"]
                for p in json_body(core.list_namespaced_persistent_volume_claim(NAMESPACE, _preload_content=False))[
                    "items"
                ]
            }
            if body["kind"] == "Pod":
                stored = json_body(core.create_namespaced_pod(NAMESPACE, body, _preload_content=False))  # type: ignore[arg-type]
            else:
                stored = custom.create_namespaced_custom_object("agents.platform", "v1", NAMESPACE, "coderuns", body)
            labels = stored["metadata"].get("labels", {})
            pvc_name = stored["metadata"].get("annotations", {}).get("agents.platform/workspace", "-")
            pvc = json_body(core.read_namespaced_persistent_volume_claim(pvc_name, NAMESPACE, _preload_content=False))
            lines.append(
                (
                    what,
                    labels.get("agents.platform/service", "-"),
                    labels.get("agents.platform/agent", "-"),
                    pvc_name,
                    pvc["spec"]["resources"]["requests"]["storage"],
                    "reused" if pvc_name in before else "created",
                )
            )
        say(table(("RUN", "SERVICE", "AGENT", "PVC", "SIZE", "WORKSPACE"), lines))
        say(
            f"\nThe cluster keeps running. In another terminal:\n\n    export KUBECONFIG={plane.kubeconfig}\n"
            f"    {plane.bin_dir / 'kubectl'} get pods,pvc,coderuns -n {NAMESPACE} -L agents.platform/agent\n"
        )
        if wait:
            say("Ctrl-C stops the webhook, kube-apiserver and etcd.")
            with contextlib.suppress(KeyboardInterrupt):
                while hook.proc is not None and hook.proc.poll() is None:
                    time.sleep(1)
        return 0
    except ControlPlaneError as exc:
        say(f"demo failed: {exc}")
        return 1
    finally:
        if hook is not None:
            hook.stop()
        plane.remove()
        say("stopped.")
