"""Small helpers over the official client for the dev harness and the tests: plain dicts in and
out, warnings kept, waits bounded. Every call that a test, the demo or a benchmark makes to the
dev cluster beyond the client's own goes through here."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from agent_workspace_webhook.testing.controlplane import ControlPlane


def admin_client(plane: ControlPlane, pool: int = 64) -> Any:
    """An ApiClient for the plane's admin kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(str(plane.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = pool
    return client.ApiClient(configuration)


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


def create(
    api: Any, namespace: str, body: dict[str, Any], *, dry_run: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """Create a Pod or CodeRun; the object as stored (or as it would be) and the warnings."""
    from kubernetes import client

    kwargs: dict[str, Any] = {"_preload_content": False}
    if dry_run:
        kwargs["dry_run"] = "All"
    response: object
    if body["kind"] == "Pod":
        response = client.CoreV1Api(api).create_namespaced_pod(namespace, body, **kwargs)  # type: ignore[arg-type]
    else:
        response = client.CustomObjectsApi(api).create_namespaced_custom_object(
            "agents.platform", "v1", namespace, "coderuns", body, **kwargs
        )
    headers = cast(Any, response).headers
    warnings = headers.getlist("Warning") if hasattr(headers, "getlist") else []
    return json_body(response), [w.split('"', 1)[-1].rstrip('"') for w in warnings]


def create_job(api: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a Job; the Job as stored."""
    from kubernetes import client

    stored: dict[str, Any] = json_body(
        client.BatchV1Api(api).create_namespaced_job(namespace, body, _preload_content=False)  # type: ignore[arg-type]
    )
    return stored


def denial(exc: Exception) -> str:
    """The message a user sees for a rejected create (an ApiException's body)."""
    try:
        return str(json.loads(cast(Any, exc).body)["message"])
    except (AttributeError, TypeError, ValueError, KeyError):
        return str(exc)


def pvcs(api: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """Every PVC of the namespace, by name."""
    from kubernetes import client

    response = client.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace, _preload_content=False)
    return {item["metadata"]["name"]: item for item in json_body(response)["items"]}


def read_pvc(api: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    found: dict[str, Any] = json_body(
        client.CoreV1Api(api).read_namespaced_persistent_volume_claim(name, namespace, _preload_content=False)
    )
    return found


def wait_bound(api: Any, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """The PVC once Bound (in a living cluster)."""
    deadline = time.monotonic() + timeout
    while True:
        found = read_pvc(api, namespace, name)
        if found.get("status", {}).get("phase") == "Bound":
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"PVC {namespace}/{name} is not Bound after {timeout}s: {found.get('status')}")
        time.sleep(0.1)


def wait_service_account(api: Any, namespace: str, name: str = "default", timeout: float = 30) -> None:
    """Until the ServiceAccount exists (the controller manager makes `default` in a new namespace)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.CoreV1Api(api).read_namespaced_service_account(name, namespace)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def wait_established(api: Any, name: str, timeout: float = 30) -> None:
    """Until the CRD `name` is Established. Not `kubectl wait`: right after a create its
    status.conditions is null, and kubectl's wait fails on that instead of waiting."""
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        crd = json_body(extensions.read_custom_resource_definition(name, _preload_content=False))
        conditions = (crd.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {name} is not Established after {timeout}s: {crd.get('status')}")
        time.sleep(0.1)
