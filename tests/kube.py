"""Small helpers over the official client for tests against the real API server: plain dicts in
and out, warnings kept."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_workspace_webhook.ops.manifests import load_yaml
from agent_workspace_webhook.testing.install import MANIFESTS, apply

__all__ = ["MANIFESTS", "apply", "create", "create_job", "denial", "load_yaml", "pvcs"]


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


def create_job(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a Job; the Job as stored."""
    response = client.BatchV1Api(api).create_namespaced_job(namespace, body, _preload_content=False)  # type: ignore[arg-type]
    stored: dict[str, Any] = json.loads(response.data)
    return stored


def denial(exc: ApiException) -> str:
    """The message a user sees for a rejected create."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc)


def pvcs(api: client.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    response = client.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace, _preload_content=False)
    return {item["metadata"]["name"]: item for item in json.loads(response.data)["items"]}
