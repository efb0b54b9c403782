"""Every Kubernetes API call, the webhook's and the operator commands': one blocking call
(`attempt`) whose failure is described one way (`failure`: a ClusterError naming the object, the
cause and the fix), and for the webhook the same in a bounded thread pool (`Calls.call`: the
event loop never waits on the blocking client) with the admission's deadline as its timeout,
counted by verb, resource and result code. A status a caller expects (404 for a get, 409 for a
create) is answered with the stand-in it names instead of a failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from agent_workspace_webhook.kube.store import RESOURCES, ClusterError, describe_failure
from agent_workspace_webhook.kube.watch_cache import CallCounter
from agent_workspace_webhook.rules.names import one_line
from agent_workspace_webhook.settings import Settings

T = TypeVar("T")
# HTTP status -> what the call answers instead of failing (None for a GET's 404, say)
Expected = Mapping[int, Any]


def failure(verb: str, what: str, namespace: str, name: str, exc: Exception, *, operator: bool = False) -> ClusterError:
    """The one description of a failed call: the API server's answer (its own message quoted), or
    no answer at all. `operator`: run with an operator's credentials, not the webhook's."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return describe_failure(verb, what, namespace, name, exc.status, api_message(exc), operator=operator)
    return describe_failure(verb, what, namespace, name, None, one_line(exc), operator=operator)


def attempt(
    verb: str,
    what: str,
    namespace: str,
    name: str,
    call: Callable[[], T],
    *,
    expected: Expected | None = None,
    operator: bool = False,
) -> Any:
    """One blocking call: its answer, an expected status's stand-in, or a ClusterError."""
    from kubernetes.client.exceptions import ApiException

    try:
        return call()
    except ApiException as exc:
        if expected and exc.status in expected:
            return expected[exc.status]
        raise failure(verb, what, namespace, name, exc, operator=operator) from None
    except Exception as exc:  # urllib3: refused, reset, read timeout
        raise failure(verb, what, namespace, name, exc, operator=operator) from None


class Calls:
    """The calls a store makes; `count` hears of each (the metrics)."""

    def __init__(self, settings: Settings, count: CallCounter | None = None) -> None:
        self._count = count or _uncounted
        # As many threads as pooled connections: more would only queue inside urllib3.
        self._pool = ThreadPoolExecutor(max_workers=settings.kube_pool_size, thread_name_prefix="kube")
        self._timeout = settings.kube_deadline_seconds

    async def call(
        self,
        verb: str,
        what: str,
        namespace: str,
        name: str,
        call: Callable[[], Any],
        *,
        expected: Expected | None = None,
    ) -> Any:
        """One API call in the pool, counted by its result code: its answer, an expected status's
        stand-in, or a ClusterError (failure())."""
        from kubernetes.client.exceptions import ApiException

        resource = RESOURCES[what]
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except ApiException as exc:
            self._count(verb, resource, str(exc.status))
            if expected and exc.status in expected:
                return expected[exc.status]
            raise failure(verb, what, namespace, name, exc) from None
        except asyncio.CancelledError:  # the admission's deadline passed
            self._count(verb, resource, "timeout")
            raise
        except Exception as exc:
            self._count(verb, resource, "unreachable")
            raise failure(verb, what, namespace, name, exc) from None
        self._count(verb, resource, "201" if verb == "create" else "200")
        return result

    async def read(self, what: str, namespace: str, name: str, call: Callable[[], Any]) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        return body(await self.call("get", what, namespace, name, call, expected={404: None}))

    async def items(
        self, what: str, namespace: str, name: str, call: Callable[[], Any], *, unserved_is_empty: bool = False
    ) -> list[dict[str, Any]]:
        """The items; with `unserved_is_empty`, none when the resource is not served at all (404: a
        custom resource whose CRD is missing)."""
        expected = {404: None} if unserved_is_empty else None
        listed = body(await self.call("list", what, namespace, name, call, expected=expected))
        found: list[dict[str, Any]] = (listed or {}).get("items") or []
        return found


def body(response: Any) -> dict[str, Any] | None:
    """A response read as JSON: the client's unparsed answer (_preload_content=False), or a dict."""
    if response is None or isinstance(response, dict):
        return response
    loaded: dict[str, Any] = json.loads(response.data)
    return loaded


def api_message(exc: Any) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return one_line(message or f"{exc.status} {exc.reason}")


def _uncounted(verb: str, resource: str, code: str) -> None:
    pass
