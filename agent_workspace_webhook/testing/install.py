"""The webhook's cluster-wide objects installed into a dev control plane, from manifests/ or from
the Helm chart, as an operator's install would leave them, but with the webhook itself running
as a local process: the MutatingWebhookConfiguration is pointed at its URL, and it
authenticates as the manifests' ServiceAccount with a bound token. A dev cluster does not run
the platform, so it first gets the stand-in for the platform's CodeRun CRD (manifests/dev/),
which no install of the webhook contains."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any, Literal

import yaml

from agent_workspace_webhook.ops.manifests import load_yaml, manifests_dir
from agent_workspace_webhook.testing.controlplane import ControlPlane
from agent_workspace_webhook.testing.kube import apply, json_body, wait_established
from agent_workspace_webhook.testing.processes import ControlPlaneError
from agent_workspace_webhook.testing.tools import kubeconfig_text

WEBHOOK_NAMESPACE = "agent-workspace-webhook"
WEBHOOK_SERVICE_ACCOUNT = "agent-workspace-webhook"
WEBHOOK_CONFIGURATION = "agent-workspace-webhook"
# The label that puts a namespace in the webhook's scope (manifests/: WEBHOOK_NAMESPACE_SELECTOR).
IN_SCOPE = {"agents.platform/workspaces": "enabled"}
MANIFESTS = manifests_dir() / "base"
CHART = manifests_dir().parent / "charts" / "agent-workspace-webhook"
CODERUN_CRD = "coderuns.agents.platform"
# The stand-in for the platform's CodeRun CRD, for clusters without the platform.
PLATFORM_CRD_STAND_IN = manifests_dir() / "dev" / "crd-coderun.yaml"
# What a local webhook process needs of an install: its namespace, identity and rights. The
# Deployment, Service and webhook configuration belong to an in-cluster webhook.
INSTALLED_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
Source = Literal["manifests", "chart"]


def compose(out: Path, *components: str, over: Path | None = None) -> Path:
    """`out`, made a kustomization as an operator writes one: `over` (manifests/base unless
    given) with the named Components of manifests/ (manifests.COMPONENTS)."""
    out.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(over or MANIFESTS, out)],
        "components": [os.path.relpath(manifests_dir() / name, out) for name in components],
    }
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return out


def workspace_namespace(name: str) -> dict[str, Any]:
    """A Namespace whose runs get workspaces."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(IN_SCOPE)}}


def rendered(source: Source, helm: Path | None = None) -> list[dict[str, Any]]:
    """The objects of the install: manifests/base as it is, or the chart rendered with its defaults."""
    if source == "manifests":
        return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in load_yaml(path)]
    if helm is None:
        raise ControlPlaneError("installing from the chart needs the helm binary (controlplane/build.sh)")
    done = subprocess.run(
        [str(helm), "template", WEBHOOK_NAMESPACE, str(CHART), "--namespace", WEBHOOK_NAMESPACE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise ControlPlaneError(f"helm template {CHART} failed: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def install(api: Any, source: Source = "manifests", helm: Path | None = None) -> None:
    """Apply the stand-in for the platform's CodeRun CRD, then the install's namespace,
    ServiceAccount and RBAC; wait for the CRD to be served."""
    install_platform_crd(api)
    for doc in rendered(source, helm):
        if doc["kind"] in INSTALLED_KINDS:
            apply(api, doc)


def install_platform_crd(api: Any) -> None:
    """The stand-in for the platform's CodeRun CRD, served before this returns."""
    for doc in load_yaml(PLATFORM_CRD_STAND_IN):
        apply(api, doc)
    wait_established(api, CODERUN_CRD)


def register(api: Any, url: str, ca_pem: bytes) -> None:
    """Apply manifests/webhook.yaml with clientConfig pointed at `url` instead of the Service."""
    ca_bundle = base64.b64encode(ca_pem).decode()
    for doc in load_yaml(MANIFESTS / "webhook.yaml"):
        for hook in doc["webhooks"]:
            hook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
        apply(api, doc)


def unregister(api: Any) -> None:
    """Delete the webhook configuration (a cluster without the webhook)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION)
    except ApiException as exc:
        if exc.status != 404:
            raise


def service_account_kubeconfig(plane: ControlPlane, api: Any, path: Path, name: str, namespace: str) -> Path:
    """A kubeconfig that authenticates as that ServiceAccount, with a bound token."""
    from kubernetes import client

    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}}
    response = client.CoreV1Api(api).create_namespaced_service_account_token(
        name,
        namespace,
        request,  # type: ignore[arg-type]  # a plain dict is serialised as it is
        _preload_content=False,
    )
    token = json_body(response)["status"]["token"]
    path.write_text(kubeconfig_text(plane.server, plane.ca_file, token, name))
    path.chmod(0o600)
    return path
