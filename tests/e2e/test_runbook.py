"""docs/runbook.md's break-glass and uninstall sections, run as an operator runs them: their
commands are parsed out of the sections' fenced blocks, so the runbook cannot drift from what
works. Break-glass against the shared cluster's configuration (the manifests' entries, registered
at a URL), uninstall in a cluster of its own with manifests/base applied by kubectl."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE, MANAGED_BY
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import (
    CHART,
    CODERUN_CRD,
    MANIFESTS,
    WEBHOOK_CONFIGURATION,
    WEBHOOK_NAMESPACE,
    register,
)
from agent_workspace_webhook.testing.kube import create, denial, json_body, pvcs
from agent_workspace_webhook.testing.objects import coderun
from agent_workspace_webhook.testing.runs import run_pod
from agent_workspace_webhook.testing.tools import free_port, run, tool

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook.md"
FAILING = "failed calling webhook"  # what the API server says when the webhook cannot answer
Command = list[str]
# A workspace the webhook made, in an agents' namespace: what an uninstall must leave.
WORKSPACE = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "workspace-cto-rex", "labels": dict(MANAGED_BY)},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}


def section(title: str) -> str:
    """The runbook's `## title...` section, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}.*?(?=^## |\Z)", RUNBOOK.read_text(), re.M | re.S)
    assert match is not None, f"docs/runbook.md has no section ## {title}"
    return match.group(0)


def blocks(title: str) -> list[list[Command]]:
    """The commands of each fenced block of the section, split as the shell splits them."""
    found = re.findall(r"^```sh\n(.*?)^```$", section(title), re.M | re.S)
    return [[shlex.split(line) for line in block.splitlines() if line.strip()] for block in found]


def kubectl_as_shown(env: Environment, argv: Command) -> subprocess.CompletedProcess[str]:
    """The runbook's kubectl command, against the environment's cluster, from the checkout."""
    assert argv[0] == "kubectl", argv
    return run(tool("kubectl"), f"--kubeconfig={env.plane.kubeconfig}", *argv[1:], cwd=ROOT, timeout=180)


def helm_as_shown(env: Environment, argv: Command) -> subprocess.CompletedProcess[str]:
    """The runbook's helm command, against the environment's cluster, from the checkout."""
    assert argv[0] == "helm", argv
    return run(tool("helm"), *argv[1:], "--kubeconfig", env.plane.kubeconfig, cwd=ROOT, timeout=180)


def succeed(env: Environment, commands: list[Command]) -> str:
    said = ""
    for argv in commands:
        done = (helm_as_shown if argv[0] == "helm" else kubectl_as_shown)(env, argv)
        assert done.returncode == 0, f"{shlex.join(argv)}:\n{done.stdout}{done.stderr}"
        said += done.stdout
    return said


def until(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.2)


def refused(env: Environment, namespace: str, body: dict[str, Any]) -> bool:
    """A dry run of the create is refused because the webhook cannot answer."""
    try:
        create(env.admin, namespace, body, dry_run=True)
    except ApiException as exc:
        if FAILING in denial(exc):
            return True
        raise
    return False


def point_at(env: Environment, url: str) -> None:
    """Every entry of the configuration at `url`, each failurePolicy as it is."""
    admission = client.AdmissionregistrationV1Api(env.admin)
    config = json_body(admission.read_mutating_webhook_configuration(WEBHOOK_CONFIGURATION, _preload_content=False))
    for hook in config["webhooks"]:
        hook["clientConfig"]["url"] = url
    admission.replace_mutating_webhook_configuration(WEBHOOK_CONFIGURATION, config)


def dead_url() -> str:
    return f"https://127.0.0.1:{free_port()}/mutate"


@pytest.mark.e2e
def test_break_glass_lets_runs_through_and_its_undo_gives_them_workspaces_again(
    cluster: Environment, namespace: str
) -> None:
    on, status, off, reapply = blocks("Break-glass")
    assert [argv[:2] for argv in reapply] == [["kubectl", "apply"], ["helm", "upgrade"]]  # the install's own
    hook = cluster.default
    assert hook is not None
    pod = run_pod(cluster.admin, namespace, "glass", "5dlabs-rex")  # its CodeRun made while the webhook answers
    run = coderun("glass", "5DLabs-Rex", name=f"run-{uuid.uuid4().hex[:8]}")
    try:
        # The webhook down: the install's configuration, at a port nobody listens on.
        register(cluster.admin, dead_url(), cluster.certs.ca.read_bytes())
        until("refused", lambda: refused(cluster, namespace, pod))
        with pytest.raises(ApiException) as err:
            create(cluster.admin, namespace, run)
        assert FAILING in denial(err.value) and "coderuns.workspace.agents.platform" in denial(err.value)

        succeed(cluster, on)
        lines = succeed(cluster, status).splitlines()
        assert lines[:2] == ["pods.workspace.agents.platform Ignore", "coderuns.workspace.agents.platform Ignore"]
        until("let through", lambda: not refused(cluster, namespace, pod))
        stored, _ = create(cluster.admin, namespace, pod)
        assert ANNOTATION_WORKSPACE not in (stored["metadata"].get("annotations") or {})
        claim = next(v for v in stored["spec"]["volumes"] if v["name"] == "workspace")
        assert claim == next(v for v in pod["spec"]["volumes"] if v["name"] == "workspace")  # as the platform made it
        assert pvcs(cluster.admin, namespace) == {}
        create(cluster.admin, namespace, run)  # CodeRuns start too

        # The webhook back, then the runbook's undo: runs get their workspaces.
        point_at(cluster, hook.url)
        cluster.wait_until_called(hook)
        succeed(cluster, off)
        lines = succeed(cluster, status).splitlines()
        assert lines[:2] == ["pods.workspace.agents.platform Fail", "coderuns.workspace.agents.platform Fail"]
        stored, _ = create(cluster.admin, namespace, pod)
        assert stored["metadata"]["annotations"][ANNOTATION_WORKSPACE] == "workspace-glass-rex"
        assert "workspace-glass-rex" in pvcs(cluster.admin, namespace)
        # and with the webhook down again, runs are refused again: the undo really is undone
        point_at(cluster, dead_url())
        until("refused again", lambda: refused(cluster, namespace, pod))
    finally:
        cluster.restore()


def failure_policies(env: Environment, status: list[Command]) -> list[str]:
    """The first two entries' failurePolicy, as the runbook's status command prints them."""
    lines = succeed(env, status).splitlines()
    assert [line.split()[0] for line in lines[:2]] == [
        "pods.workspace.agents.platform",
        "coderuns.workspace.agents.platform",
    ]
    return [line.split()[1] for line in lines[:2]]


def cluster_scoped(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(doc["kind"], doc["metadata"]["name"]) for doc in docs if "namespace" not in doc["metadata"]]


def exists(env: Environment, kind: str, name: str, namespace: str | None = None) -> bool:
    where = ["-n", namespace] if namespace else []
    done = kubectl_as_shown(env, ["kubectl", "get", kind.lower(), name, *where, "-o", "name"])
    assert done.returncode == 0 or "NotFound" in done.stderr, done.stderr
    return done.returncode == 0


@pytest.mark.e2e
def test_uninstall_with_kustomize_removes_the_webhook_and_keeps_the_workspaces(tmp_path: Path) -> None:
    kustomize, helm, removal = blocks("Uninstall")
    # the configuration first, in both
    assert kustomize[0] == helm[0] == ["kubectl", "delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION]
    built = run(tool("kubectl"), "kustomize", MANIFESTS)  # what `kubectl apply -k` applies
    assert built.returncode == 0, built.stderr
    installed = cluster_scoped([doc for doc in yaml.safe_load_all(built.stdout) if doc])
    assert ("MutatingWebhookConfiguration", WEBHOOK_CONFIGURATION) in installed
    assert ("Namespace", WEBHOOK_NAMESPACE) in installed
    with Environment(living=True, workdir=tmp_path / "env") as env:
        agents = env.namespace("agents")
        core = client.CoreV1Api(env.admin)
        core.create_namespaced_persistent_volume_claim(agents, WORKSPACE)  # type: ignore[arg-type]
        succeed(env, [["kubectl", "apply", "-k", str(MANIFESTS)]])
        assert all(exists(env, kind, name) for kind, name in installed)

        # Break-glass on, then undone by applying the install again (the runbook's kustomization
        # is certs/generated; this cluster's install is manifests/base).
        on, status, _, reapply = blocks("Break-glass")
        succeed(env, on)
        assert failure_policies(env, status) == ["Ignore", "Ignore"]
        assert reapply[0] == ["kubectl", "apply", "-k", "certs/generated"]
        succeed(env, [[*reapply[0][:-1], str(MANIFESTS)]])
        assert failure_policies(env, status) == ["Fail", "Fail"]

        succeed(env, kustomize)
        for kind, name in installed:
            assert not exists(env, kind, name), f"{kind} {name} outlived the uninstall"
        kept = json_body(
            core.read_namespaced_persistent_volume_claim("workspace-cto-rex", agents, _preload_content=False)
        )
        assert "deletionTimestamp" not in kept["metadata"]  # there, and not being deleted
        assert exists(env, "CustomResourceDefinition", CODERUN_CRD)  # the platform's

        listed = succeed(env, removal[:1])  # and only if really wanted: the workspaces go too
        assert "workspace-cto-rex" in listed
        succeed(env, removal[1:])
        assert not exists(env, "PersistentVolumeClaim", "workspace-cto-rex", agents)


@pytest.mark.e2e
def test_with_helm_the_upgrade_undoes_break_glass_and_the_uninstall_keeps_the_workspaces(tmp_path: Path) -> None:
    """The runbook's helm commands as written (release agent-workspace-webhook in the namespace
    agent-workspace-webhook), on a release installed as the README's Helm install does."""
    on, status, _, reapply = blocks("Break-glass")
    _, helm, _ = blocks("Uninstall")
    with Environment(workdir=tmp_path / "env") as env:
        # The environment's own install of the namespace's identity and rights: the release's now.
        core, rbac = client.CoreV1Api(env.admin), client.RbacAuthorizationV1Api(env.admin)
        core.delete_namespaced_service_account(WEBHOOK_CONFIGURATION, WEBHOOK_NAMESPACE)
        rbac.delete_cluster_role_binding(WEBHOOK_CONFIGURATION)
        rbac.delete_cluster_role(WEBHOOK_CONFIGURATION)
        agents = env.namespace("agents")
        core.create_namespaced_persistent_volume_claim(agents, WORKSPACE)  # type: ignore[arg-type]
        tls = f"tls.cert={env.certs.cert},tls.key={env.certs.key},tls.caBundle={env.certs.ca}"
        succeed(env, [["helm", "install", "agent-workspace-webhook", "charts/agent-workspace-webhook",
                       "-n", WEBHOOK_NAMESPACE, "--set", "namespace.create=false",
                       "--set", "tls.source=inline", "--set-file", tls]])  # fmt: skip
        assert failure_policies(env, status) == ["Fail", "Fail"]

        succeed(env, on)
        assert failure_policies(env, status) == ["Ignore", "Ignore"]
        assert reapply[1][:2] == ["helm", "upgrade"]
        succeed(env, reapply[1:])  # as written: --reuse-values
        assert failure_policies(env, status) == ["Fail", "Fail"]
        config = json_body(
            client.AdmissionregistrationV1Api(env.admin).read_mutating_webhook_configuration(
                WEBHOOK_CONFIGURATION, _preload_content=False
            )
        )
        assert config["webhooks"][0]["clientConfig"]["caBundle"]  # the values it was installed with

        succeed(env, helm)
        assert not exists(env, "MutatingWebhookConfiguration", WEBHOOK_CONFIGURATION)
        for kind in ("Deployment", "Service", "ServiceAccount", "Secret"):
            name = f"{WEBHOOK_CONFIGURATION}-tls" if kind == "Secret" else WEBHOOK_CONFIGURATION
            assert not exists(env, kind, name, WEBHOOK_NAMESPACE), f"{kind} {name} outlived the uninstall"
        assert not exists(env, "ClusterRole", WEBHOOK_CONFIGURATION)
        assert exists(env, "PersistentVolumeClaim", "workspace-cto-rex", agents)
        assert exists(env, "CustomResourceDefinition", CODERUN_CRD)


@pytest.mark.tools
def test_the_runbooks_helm_commands_name_the_releases_configuration() -> None:
    _, helm, _ = blocks("Uninstall")
    release, namespace = helm[1][2], helm[1][helm[1].index("-n") + 1]
    done = run(tool("helm"), "template", release, CHART, "--namespace", namespace)
    assert done.returncode == 0, done.stderr
    config = next(d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "MutatingWebhookConfiguration")
    assert config["metadata"]["name"] == WEBHOOK_CONFIGURATION
    # the entries the break-glass patch tests by name, in its order, and the only ones that Fail
    assert [(h["name"], h["failurePolicy"]) for h in config["webhooks"][:2]] == [
        ("pods.workspace.agents.platform", "Fail"),
        ("coderuns.workspace.agents.platform", "Fail"),
    ]
    assert all(h["failurePolicy"] == "Ignore" for h in config["webhooks"][2:])
