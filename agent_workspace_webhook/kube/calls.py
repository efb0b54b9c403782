"""One Kubernetes API call of the webhook: in a bounded thread pool (the event loop never
waits on the blocking client), with the admission's deadline as its timeout, counted by verb,
resource and result code, and its failure described (describe_failure)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from agent_workspace_webhook.kube.store import RESOURCES, describe_failure
from agent_workspace_webhook.kube.watch_cache import CallCounter
from agent_workspace_webhook.rules.names import one_line
from agent_workspace_webhook.settings import Settings

T = TypeVar("T")


class Calls:
    """The calls a store makes; `count` hears of each (the metrics)."""

    def __init__(self, settings: Settings, count: CallCounter | None = None) -> None:
        self._count = count or _uncounted
        # As many threads as pooled connections: more would only queue inside urllib3.
        self._pool = ThreadPoolExecutor(max_workers=settings.kube_pool_size, thread_name_prefix="kube")
        self._timeout = settings.kube_deadline_seconds

    async def _call(self, verb: str, what: str, namespace: str, name: str, call: Callable[[], T]) -> T:
        """One API call in the pool, counted by its result code. An HTTP error is raised as
        ApiException for the caller to interpret; no answer at all becomes a ClusterError."""
        from kubernetes.client.exceptions import ApiException

        resource = RESOURCES[what]
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except ApiException as exc:
            self._count(verb, resource, str(exc.status))
            raise
        except asyncio.CancelledError:  # the admission's deadline passed
            self._count(verb, resource, "timeout")
            raise
        except Exception as exc:  # urllib3: refused, reset, read timeout
            self._count(verb, resource, "unreachable")
            raise describe_failure(verb, what, namespace, name, None, one_line(exc)) from None
        self._count(verb, resource, "201" if verb == "create" else "200")
        return result

    async def _get(self, what: str, namespace: str, name: str, call: Callable[[], Any]) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            response = await self._call("get", what, namespace, name, call)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise describe_failure("get", what, namespace, name, exc.status, api_message(exc)) from None
        if isinstance(response, dict):
            return response
        loaded: dict[str, Any] = json.loads(response.data)
        return loaded

    async def _list(
        self, what: str, namespace: str, name: str, call: Callable[[], Any], *, unserved_is_empty: bool = False
    ) -> list[dict[str, Any]]:
        """The items; with `unserved_is_empty`, none when the resource is not served at all (404: a
        custom resource whose CRD is missing)."""
        from kubernetes.client.exceptions import ApiException

        try:
            response = await self._call("list", what, namespace, name, call)
        except ApiException as exc:
            if exc.status == 404 and unserved_is_empty:
                return []
            raise describe_failure("list", what, namespace, name, exc.status, api_message(exc)) from None
        listed = response if isinstance(response, dict) else json.loads(response.data)
        items: list[dict[str, Any]] = listed.get("items") or []
        return items


def api_message(exc: Any) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return one_line(message or f"{exc.status} {exc.reason}")


def _uncounted(verb: str, resource: str, code: str) -> None:
    pass
