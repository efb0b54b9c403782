"""The calls the platform controller's reconcile makes, in one namespace (its ctx.namespace),
through the official client with plain dicts: the base of the twin's Resources and Reconciler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent_workspace_webhook.testing.kube import json_body
from agent_workspace_webhook.testing.twin.config import TwinConfig

GROUP, VERSION, PLURAL = "agents.platform", "v1", "coderuns"  # crds/coderun.rs #[kube(...)]


class Interrupted(BaseException):
    """Raised by the sleep a reconcile waits with when the twin is stopping: a BaseException, so
    that no `except Exception` on the way swallows it."""


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of an API error (None for any other exception)."""
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


class NamespaceApi:
    """Typed access to the CodeRuns, Jobs and PVCs of one namespace."""

    def __init__(self, api_client: Any, namespace: str, config: TwinConfig, sleep: Callable[[float], None]) -> None:
        from kubernetes import client

        self.namespace, self.config, self.sleep = namespace, config, sleep
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def _opts(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": self.config.request_timeout}

    def _get(self, read: Callable[..., object], name: str) -> dict[str, Any] | None:
        """GET an object; None on 404 (any other error propagates)."""
        try:
            found: dict[str, Any] = json_body(read(name, self.namespace, **self._opts()))
        except Exception as exc:
            if api_status(exc) == 404:
                return None
            raise
        return found

    def _json_patch(self, name: str, ops: list[dict[str, Any]]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            ops,
            _content_type="application/json-patch+json",
            **self._opts(),
        )

    def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, name, {"status": status}, **self._opts()
        )

    def _read_coderun(self, name: str, namespace: str, **opts: Any) -> object:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, **opts)

    def delete_job(self, name: str) -> bool:
        """controller.rs delete_job_with_cascade: background propagation; False if already gone."""
        try:
            self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background", **self._opts())
        except Exception as exc:
            if api_status(exc) == 404:
                return False
            raise
        return True
