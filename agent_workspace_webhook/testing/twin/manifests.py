"""The objects the platform's controller creates for a CodeRun (pure): its workspace PVC, its
Job and its workspace-cleanup Job, as 5dlabs/cto crates/controller/src/tasks/code/resources.rs
(commit 039c5220) builds them in build_pvc_spec, build_job_spec / create_task_labels and
cleanup_workspace_subdir.

Kept: names, labels, owner, TTL and deadline, security contexts, every container that mounts the
workspace claim (with its mounts and the meaning of its command), the emptyDir volumes they share.
Left out (docs/design.md, "The platform controller's twin"): ConfigMap and Secret volumes and env
(task files, templates, GitHub App keys, API keys), the init containers that mount no workspace (fix-openclaw-deps,
write-promtail-config, gateway-stagger), Datadog annotations. Every image is `busybox`: the nodes
are simulated, nothing is pulled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.testing.twin.claims import (
    IMPLEMENTATION_AGENTS,
    claim_for_spec,
    container_name_for_cli,
    extract_agent_name,
    run_dir,
    run_subdir,
    sanitize_label_value,
)
from agent_workspace_webhook.testing.twin.decisions import has_workflow_owner
from agent_workspace_webhook.testing.twin.labels import job_labels
from agent_workspace_webhook.testing.twin.naming import cleanup_job_name, cli_type, job_name

IMAGE = "busybox"
WORKSPACE_MOUNT = {"name": "workspace", "mountPath": "/workspace"}  # copied into each container
AGENT_DONE = "/workspace/.agent_done"  # the main container's last act; the sidecars wait for it
# The per-CLI directories whose logs/ (opencode: log/) setup-workspace makes in the run's directory.
LOG_DIRS = ".claude .codex .factory .gemini .cursor-agent .kimi .local/share/opencode .copilot .pi"


class ConfigError(ValueError):
    """resources.rs Error::ConfigError: the reconcile fails (and, as every failure, is not
    retried until the CodeRun or its Job changes)."""


def pvc_manifest(name: str, spec: Mapping[str, Any], storage_class: str | None, size: str) -> dict[str, Any]:
    """resources.rs build_pvc_spec: ReadWriteOnce, the configured size and class, labels for the
    service and (when the githubApp yields an agent) the agent and its workspace type."""
    labels = {"app": "orchestrator", "component": "code-runner", "service": str(spec.get("service", ""))}
    app = spec.get("githubApp")
    agent = extract_agent_name(app) if isinstance(app, str) else None
    if agent is not None:
        implementation = spec.get("implementationAgent")
        labels["agent"] = agent
        labels["implementation-agent"] = (
            implementation.lower() if isinstance(implementation, str) and implementation else agent
        )
        labels["workspace-type"] = "shared" if agent in IMPLEMENTATION_AGENTS else "isolated"
    body: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        body["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels},
        "spec": body,
    }


def _until_done(what: str) -> dict[str, list[str]]:
    """A sidecar's command, meaning kept: run until the agent writes /workspace/.agent_done."""
    return {"command": ["/bin/sh", "-c"], "args": [f"echo '{what}'; while [ ! -f {AGENT_DONE} ]; do sleep 5; done"]}


def job_manifest(coderun: Mapping[str, Any]) -> dict[str, Any]:
    """resources.rs build_job_spec for a stored CodeRun whose spec is already merged with its
    agent's CLI defaults; raises ConfigError without a githubApp, as the controller does (after
    it has made the PVC: the caller's order)."""
    metadata, spec = coderun.get("metadata", {}), coderun.get("spec", {})
    app = spec.get("githubApp")
    if not isinstance(app, str) or not app:
        raise ConfigError("GitHub App is required for CodeRun authentication and cannot be empty")
    labels, docker = job_labels(coderun), spec.get("enableDocker", True) is not False
    cli, model, workdir = cli_type(spec) or "claude", str(spec.get("model", "")), run_dir(coderun)
    env = [
        {"name": "CODERUN_NAME", "value": metadata.get("name", "")},
        {"name": "CLI_TYPE", "value": cli},
        {"name": "CLI_MODEL", "value": model},
        {"name": "CLI_CONTAINER_NAME", "value": container_name_for_cli(cli, model)},
        {"name": "MCP_CLIENT_CONFIG", "value": "/workspace/client-config.json"},
        {"name": "PROGRESS_FILE", "value": "/workspace/progress.jsonl"},
        {"name": "WORKSPACE_DIR", "value": workdir},  # one directory per CodeRun on a shared claim
        {"name": "TASK_ID", "value": str(spec.get("taskId") or 0)},
        {"name": "PROJECT_ID", "value": spec.get("projectId") or ""},
    ]
    mounts = [dict(WORKSPACE_MOUNT), {"name": "github-app-key", "mountPath": "/var/run/secrets/github-app-key"}]
    volumes: list[dict[str, Any]] = [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": claim_for_spec(spec)}}
    ]
    if docker:
        mounts.append({"name": "docker-sock-dir", "mountPath": "/var/run"})
        volumes += [{"name": "docker-sock-dir", "emptyDir": {}}, {"name": "docker-data", "emptyDir": {}}]
        env.append({"name": "DOCKER_HOST", "value": "unix:///var/run/docker/docker.sock"})
    volumes.append({"name": "github-app-key", "emptyDir": {}})
    main: dict[str, Any] = {
        "name": container_name_for_cli(cli, model),
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "command": ["/bin/sh", "-c"],  # the real one runs /bin/bash /task-files/container.sh
        "args": [f"echo 'agent (twin stand-in for /task-files/container.sh)'; touch {AGENT_DONE}"],
        "workingDir": workdir,
        "volumeMounts": mounts,
    }
    containers = [main]
    if docker:
        main["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"add": ["KILL"]}}
        containers.append(
            {
                "name": "docker-daemon",
                "image": IMAGE,  # docker:dind, stopped when the agent is done
                **_until_done("dockerd (twin stand-in)"),
                "securityContext": {
                    "privileged": True,
                    "allowPrivilegeEscalation": True,
                    "runAsUser": 0,
                    "runAsGroup": 0,
                    "runAsNonRoot": False,
                },
                "env": [{"name": "DOCKER_TLS_CERTDIR", "value": ""}],
                "volumeMounts": [
                    {"name": "docker-sock-dir", "mountPath": "/var/run"},
                    {"name": "docker-data", "mountPath": "/var/lib/docker"},
                    dict(WORKSPACE_MOUNT),
                ],
            }
        )
    volumes += [{"name": "promtail-config", "emptyDir": {}}, {"name": "promtail-positions", "emptyDir": {}}]
    containers.append(
        {
            "name": "promtail",
            "image": IMAGE,  # grafana/promtail, shipping the run's CLI logs until the agent is done
            **_until_done("promtail (twin stand-in)"),
            "volumeMounts": [
                {**WORKSPACE_MOUNT, "readOnly": True},
                {"name": "promtail-config", "mountPath": "/etc/promtail"},
                {"name": "promtail-positions", "mountPath": "/run/promtail"},
            ],
        }
    )
    subdir = run_subdir(coderun)
    logs = " ".join(
        f"/workspace/{subdir}/{path}/{'log' if 'opencode' in path else 'logs'}" for path in LOG_DIRS.split()
    )
    setup = {
        "name": "setup-workspace",
        "image": IMAGE,
        "command": [
            "/bin/sh",
            "-lc",
            f"mkdir -p /workspace/{subdir} && mkdir -p {logs} && "
            "chown -R 1000:1000 /workspace/runs && chmod -R ug+rwX /workspace/runs",
        ],
        "securityContext": {"runAsUser": 0, "runAsGroup": 0, "allowPrivilegeEscalation": False},
        "volumeMounts": [
            dict(WORKSPACE_MOUNT),
            {"name": "github-app-key", "mountPath": "/var/run/secrets/github-app-key", "readOnly": False},
        ],
    }
    pod: dict[str, Any] = {
        "shareProcessNamespace": True,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 60,
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "fsGroupChangePolicy": "OnRootMismatch",
        },
        "initContainers": [setup],
        "containers": containers,
        "volumes": volumes,
        "hostname": f"t{spec.get('taskId') or 0}-{(metadata.get('uid') or 'x')[:6]}",
    }
    if cli == "codex":  # Codex's sandbox needs root: the whole pod context is replaced, no fsGroup
        pod["securityContext"] = {"runAsUser": 0, "runAsGroup": 0, "fsGroupChangePolicy": "OnRootMismatch"}
    account = spec.get("serviceAccountName")
    if isinstance(account, str) and account.strip():
        pod["serviceAccountName"] = account
    owner = {
        "apiVersion": "agents.platform/v1",
        "kind": "CodeRun",
        "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "activeDeadlineSeconds": 86400,  # hard-coded 24 h, not config.rs job.activeDeadlineSeconds
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }
    if not has_workflow_owner(coderun):  # an Argo Workflow cleans up its own
        job_spec["ttlSecondsAfterFinished"] = 3600
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(coderun), "labels": labels, "ownerReferences": [owner]},
        "spec": job_spec,
    }


def cleanup_job_manifest(coderun: Mapping[str, Any]) -> dict[str, Any]:
    """resources.rs cleanup_workspace_subdir, for the CodeRun as stored (its spec NOT merged
    with the agent's CLI defaults, unlike the Job's): removes the run's directory from the claim
    computed again; labels on the Job only, TTL 300, no owner."""
    metadata = coderun.get("metadata", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": cleanup_job_name(coderun),
            "namespace": metadata.get("namespace") or "default",
            "labels": {
                "cleanup.cto.dev/scope": "run",
                "cleanup.cto.dev/run": sanitize_label_value(str(metadata.get("name", ""))),
                "cleanup.cto.dev/run-kind": "workspace-cleanup",
            },
        },
        "spec": {
            "ttlSecondsAfterFinished": 300,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "cleanup",
                            "image": IMAGE,  # busybox:1.36
                            "command": ["/bin/sh", "-c", f"rm -rf /workspace/{run_subdir(coderun)}"],
                            "volumeMounts": [dict(WORKSPACE_MOUNT)],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "workspace",
                            "persistentVolumeClaim": {"claimName": claim_for_spec(coderun.get("spec", {}))},
                        }
                    ],
                }
            },
        },
    }
