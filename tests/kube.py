"""Small helpers over the official client for tests against the real API server: plain dicts in
and out, warnings kept, manifests applied from YAML files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"


def load_yaml(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            yield doc


def apply(api: client.ApiClient, doc: dict[str, Any]) -> None:
    """Create the object, or replace it if it exists (as `kubectl apply` would end up)."""
    resource = dynamic.DynamicClient(api).resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    namespace = doc["metadata"].get("namespace")
    try:
        resource.create(body=doc, namespace=namespace)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = resource.get(name=doc["metadata"]["name"], namespace=namespace)
        doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current.metadata.resourceVersion}}
        resource.replace(body=doc, namespace=namespace)


def wait_for_crd(api: client.ApiClient, name: str, timeout: float = 30) -> None:
    ext = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
            return
        time.sleep(0.1)
    raise TimeoutError(f"CRD {name} not established after {timeout}s")


def create(
    api: client.ApiClient, namespace: str, body: dict[str, Any], *, dry_run: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """Create a Pod or CodeRun; the object as stored (or as it would be) and the warnings."""
    kwargs: dict[str, Any] = {"_preload_content": False}
    if dry_run:
        kwargs["dry_run"] = "All"
    if body["kind"] == "Pod":
        response = client.CoreV1Api(api).create_namespaced_pod(namespace, body, **kwargs)
    else:
        response = client.CustomObjectsApi(api).create_namespaced_custom_object(
            "agents.platform", "v1", namespace, "coderuns", body, **kwargs
        )
    warnings = response.headers.getlist("Warning") if hasattr(response.headers, "getlist") else []
    return json.loads(response.data), [w.split('"', 1)[-1].rstrip('"') for w in warnings]


def denial(exc: ApiException) -> str:
    """The message a user sees for a rejected create."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc)


def pvcs(api: client.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    response = client.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace, _preload_content=False)
    return {item["metadata"]["name"]: item for item in json.loads(response.data)["items"]}


def claim_of(pod: dict[str, Any]) -> str | None:
    for volume in pod["spec"]["volumes"]:
        if volume["name"] == "workspace":
            return (volume.get("persistentVolumeClaim") or {}).get("claimName")
    return None
