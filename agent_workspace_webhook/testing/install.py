"""Installing the webhook into a dev control plane from manifests/, the way the tests, the demo
and the benchmark all do: apply, register at a local URL, authenticate as its ServiceAccount,
and the objects the platform's controller creates."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any, cast

from agent_workspace_webhook.ops.manifests import load_yaml, manifests_dir
from agent_workspace_webhook.testing.controlplane import ControlPlane, ControlPlaneError, kubeconfig_text
from agent_workspace_webhook.testing.objects import controller_pod

WEBHOOK_NAMESPACE = "agent-workspace-webhook"
# The label that puts a namespace in the webhook's scope (manifests/: WEBHOOK_NAMESPACE_SELECTOR).
IN_SCOPE = {"agents.platform/workspaces": "enabled"}


def workspace_namespace(name: str) -> dict[str, Any]:
    """A Namespace whose runs get workspaces."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(IN_SCOPE)}}


WEBHOOK_SERVICE_ACCOUNT = "agent-workspace-webhook"


MANIFESTS = manifests_dir() / "base"


def json_body(response: object) -> Any:
    """The JSON of a call made with _preload_content=False (the client's types do not say so)."""
    return json.loads(cast(Any, response).data)


def apply(api: Any, doc: dict[str, Any]) -> None:
    """Create the object, or replace it if it exists (where `kubectl apply` would end up)."""
    from kubernetes import dynamic
    from kubernetes.client.exceptions import ApiException

    dynamic_client = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    resource = dynamic_client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    namespace = doc["metadata"].get("namespace")
    try:
        resource.create(body=doc, namespace=namespace)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = resource.get(name=doc["metadata"]["name"], namespace=namespace)
        doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current.metadata.resourceVersion}}
        resource.replace(body=doc, namespace=namespace)


def install(api: Any, files: tuple[str, ...] = ("namespace.yaml", "crd-coderun.yaml", "rbac.yaml")) -> None:
    """Apply manifests/ files and wait for the CodeRun CRD to be served."""
    from kubernetes import client

    for name in files:
        for doc in load_yaml(MANIFESTS / name):
            apply(api, doc)
    extensions = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = extensions.read_custom_resource_definition("coderuns.agents.platform", _preload_content=False)
        conditions = json_body(crd).get("status", {}).get("conditions", [])
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise ControlPlaneError("CRD coderuns.agents.platform not established after 30s")


def register(api: Any, url: str, ca_pem: bytes) -> None:
    """Apply manifests/webhook.yaml with clientConfig pointed at `url` instead of the Service."""
    ca_bundle = base64.b64encode(ca_pem).decode()
    for doc in load_yaml(MANIFESTS / "webhook.yaml"):
        for hook in doc["webhooks"]:
            hook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
        apply(api, doc)


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


def wait_until_mutating(api: Any, namespace: str, mutated: bool = True, timeout: float = 30) -> None:
    """Dry-run an agent Pod until the API server does (or no longer does) call the webhook:
    registering or removing a webhook configuration takes a moment to reach admission."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        probe = controller_pod("probe", "5dlabs-rex", generate_name="probe-")
        stored = json_body(core.create_namespaced_pod(namespace, probe, dry_run="All", _preload_content=False))  # type: ignore[arg-type]
        if ("agents.platform/workspace" in stored["metadata"].get("annotations", {})) == mutated:
            return
        if time.monotonic() > deadline:
            state = "call" if mutated else "stop calling"
            raise ControlPlaneError(f"the API server did not {state} the webhook within {timeout}s")
        time.sleep(0.2)


def admin_client(plane: ControlPlane, pool: int = 64) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(str(plane.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = pool
    return client.ApiClient(configuration)
