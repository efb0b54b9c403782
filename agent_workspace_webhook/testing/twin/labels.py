"""The labels the platform's controller puts on a CodeRun's Job and on its Pod template (pure):
5dlabs/cto crates/controller/src/tasks/code/resources.rs create_task_labels (commit 039c5220).
The webhook reads `service` and `github-user` from the Pod; the finalizer's fallback finds the
Jobs of a run by `app`, `component`, `github-user`, `service` and `cleanup.cto.dev/run`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.testing.twin.claims import container_name_for_cli, extract_agent_name, sanitize_label_value
from agent_workspace_webhook.testing.twin.naming import cli_type


def job_labels(coderun: Mapping[str, Any]) -> dict[str, str]:
    """resources.rs create_task_labels: on the Job and on its Pod template alike."""
    metadata, spec = coderun.get("metadata", {}), coderun.get("spec", {})
    cli, model = cli_type(spec) or "claude", str(spec.get("model", ""))
    app = spec.get("githubApp")
    user = spec.get("githubUser")
    identity = app if isinstance(app, str) else user if isinstance(user, str) else "unknown"
    extracted = extract_agent_name(app) if isinstance(app, str) else None
    agent = extracted or "unknown"
    implementation = spec.get("implementationAgent")
    labels = {
        "app": "controller",
        "component": "code-runner",
        "cleanup.cto.dev/scope": "run",
        "cleanup.cto.dev/run-kind": "coderun",
        "job-type": "code",
        "project-name": sanitize_label_value(str(spec.get("service", ""))),
        "github-user": sanitize_label_value(identity),
        "context-version": str(spec.get("contextVersion", 1)),
        "task-type": str(spec.get("runType", "implementation")),
        "task-id": str(spec.get("taskId") or 0),
        "service": sanitize_label_value(str(spec.get("service", ""))),
        "cli-type": sanitize_label_value(cli),
        "cli-container": sanitize_label_value(container_name_for_cli(cli, model)),
        "agent": sanitize_label_value(agent),
        "implementation-agent": sanitize_label_value(
            implementation.lower() if isinstance(implementation, str) and implementation else agent
        ),
        "tags.datadoghq.com/service": f"cto-coderun-{sanitize_label_value(agent)}",
        "tags.datadoghq.com/env": "production",
        "tags.datadoghq.com/version": cli,
    }
    if metadata.get("name"):
        labels["cleanup.cto.dev/run"] = sanitize_label_value(metadata["name"])
    pr = (spec.get("env") or {}).get("PR_NUMBER")
    if isinstance(pr, str):
        labels["pr-number"] = sanitize_label_value(pr)
    if model.strip():
        labels["cli-model"] = sanitize_label_value(model)
    linear = spec.get("linearIntegration") or {}
    if linear.get("enabled"):
        if isinstance(linear.get("sessionId"), str):
            labels["linear-session"] = sanitize_label_value(linear["sessionId"])
        if isinstance(linear.get("issueId"), str):
            labels["cto.5dlabs.io/linear-issue"] = sanitize_label_value(linear["issueId"])
        if extracted is not None:
            labels["cto.5dlabs.io/agent-type"] = sanitize_label_value(agent)
    return labels


def job_selector(coderun: Mapping[str, Any]) -> str:
    """resources.rs cleanup_old_jobs: the label selector of its fallback, when the Job named in
    the status could not be deleted (or none is named)."""
    spec = coderun.get("spec", {})
    app, user = spec.get("githubApp"), spec.get("githubUser")
    identity = app if isinstance(app, str) else user if isinstance(user, str) else "unknown"
    name = coderun.get("metadata", {}).get("name") or "unknown"
    return (
        f"app=controller,component=code-runner,github-user={sanitize_label_value(identity)},"
        f"service={sanitize_label_value(str(spec.get('service', '')))},"
        f"cleanup.cto.dev/run={sanitize_label_value(name)}"
    )
