"""Everything that talks to the Kubernetes API, behind one small interface.

``KubeStore`` uses the official client (blocking) in a bounded thread pool so that the event
loop never waits on it; ``MemoryStore`` is its in-memory twin for unit tests and ``review``.
Both only ever get, list or create: an existing PVC is never changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from webhook.facts import OwnerKind
from webhook.metrics import Metrics
from webhook.pvc_cache import PvcCache
from webhook.settings import Settings

MANAGED_BY = {"app.kubernetes.io/managed-by": "agent-workspace-webhook"}
COMPONENT = {"app.kubernetes.io/component": "agent-workspace"}
Ensured = Literal["created", "exists", "would-create"]
T = TypeVar("T")


class ClusterError(Exception):
    """A Kubernetes call failed; the message names the object, the cause and the fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def pvc_manifest(name: str, namespace: str, labels: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    """The PVC the webhook creates. No ownerReferences: a workspace outlives its runs."""
    spec: dict[str, Any] = {
        "accessModes": list(settings.access_modes),
        "resources": {"requests": {"storage": settings.storage_size}},
    }
    if settings.storage_class is not None:
        spec["storageClassName"] = settings.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **COMPONENT, **labels}},
        "spec": spec,
    }


def describe_failure(verb: str, what: str, namespace: str, name: str, status: int | None, detail: str) -> str:
    """One line for a failed call: what was tried, what the API server said, how to fix it."""
    target = f"{what} {namespace}/{name}"
    if status == 403:
        return (
            f"cannot {verb} {target}: forbidden ({detail}); grant the webhook's ServiceAccount "
            f"verb '{verb}' on {_resource(what)} (see manifests/)"
        )
    if status == 422:
        return (
            f"cannot {verb} {target}: the API server rejected it as invalid ({detail}); check the "
            "webhook's storage settings (WEBHOOK_STORAGE_SIZE, WEBHOOK_STORAGE_CLASS, WEBHOOK_ACCESS_MODES)"
        )
    if status is None:
        return f"cannot {verb} {target}: the Kubernetes API is unreachable ({detail})"
    return f"cannot {verb} {target}: HTTP {status} from the Kubernetes API ({detail})"


def _resource(what: str) -> str:
    return {"PersistentVolumeClaim": "persistentvolumeclaims", "Job": "jobs", "CodeRun": "coderuns"}.get(
        what, what.lower() + "s"
    )


class WorkspaceStore(Protocol):
    async def pvc_exists(self, namespace: str, name: str) -> bool: ...

    async def ensure_pvc(self, manifest: Mapping[str, Any], *, dry_run: bool) -> Ensured:
        """Create the PVC unless it exists; 409 AlreadyExists counts as success."""
        ...

    async def get_owner(self, kind: OwnerKind, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    async def check_ready(self) -> str | None:
        """None when the API answers, else the reason it does not."""
        ...

    def start(self) -> None:
        """Begin background work (the KubeStore's PVC watch); called once the app runs."""
        ...

    def close(self) -> None: ...


@dataclass
class MemoryStore:
    """In-memory twin of KubeStore with the same behaviour, for tests and offline `review`."""

    pvcs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    owners: dict[tuple[str, str, str], Mapping[str, Any]] = field(default_factory=dict)
    # Set to make every call fail as the API server would (403, 422, unreachable, ...),
    # or answer slowly.
    failure: ClusterError | None = None
    delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def _call(self, verb: str, name: str) -> None:
        self.calls.append((verb, name))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure

    async def pvc_exists(self, namespace: str, name: str) -> bool:
        await self._call("get", name)
        return (namespace, name) in self.pvcs

    async def ensure_pvc(self, manifest: Mapping[str, Any], *, dry_run: bool) -> Ensured:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        if await self.pvc_exists(namespace, name):
            return "exists"
        if dry_run:
            return "would-create"
        await self._call("create", name)
        self.pvcs[(namespace, name)] = json.loads(json.dumps(manifest))
        return "created"

    async def get_owner(self, kind: OwnerKind, namespace: str, name: str) -> Mapping[str, Any] | None:
        await self._call("get", name)
        return self.owners.get((kind, namespace, name))

    async def check_ready(self) -> str | None:
        return None if self.failure is None else str(self.failure)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class KubeStore:
    """The real thing: the official client, each call in a worker thread with a timeout."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        from kubernetes import client

        self._settings = settings
        self._metrics = metrics
        self._api = api_client(settings)
        self._core = client.CoreV1Api(self._api)
        self._batch = client.BatchV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._version = client.VersionApi(self._api)
        # As many threads as pooled connections: more would only queue inside urllib3.
        self._pool = ThreadPoolExecutor(max_workers=settings.kube_pool_size, thread_name_prefix="kube")
        self._timeout = settings.kube_deadline_seconds
        # Answers "does it exist?" without a call once start() has run and the first list is in.
        self.cache = PvcCache(self._core, self._count) if settings.pvc_cache else None

    def start(self) -> None:
        if self.cache is not None:
            self.cache.start()

    async def _call(self, verb: str, what: str, namespace: str, name: str, call: Callable[[], T]) -> T:
        """One API call in the pool, counted by its result code. An HTTP error is raised as
        ApiException for the caller to interpret; no answer at all becomes a ClusterError."""
        from kubernetes.client.exceptions import ApiException

        resource = _resource(what)
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
            raise ClusterError(describe_failure(verb, what, namespace, name, None, _short(exc))) from None
        self._count(verb, resource, "201" if verb == "create" else "200")
        return result

    def _count(self, verb: str, resource: str, code: str) -> None:
        if self._metrics is not None:
            self._metrics.kube_call(verb, resource, code)

    async def _get(self, what: str, namespace: str, name: str, call: Callable[[], Any]) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            response = await self._call("get", what, namespace, name, call)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ClusterError(
                describe_failure("get", what, namespace, name, exc.status, _api_message(exc)), exc.status
            ) from None
        if isinstance(response, dict):
            return response
        loaded: dict[str, Any] = json.loads(response.data)
        return loaded

    def _cached(self, namespace: str, name: str) -> bool | None:
        return self.cache.contains(namespace, name) if self.cache is not None else None

    async def pvc_exists(self, namespace: str, name: str) -> bool:
        cached = self._cached(namespace, name)
        if cached is not None:
            return cached
        found = await self._get(
            "PersistentVolumeClaim",
            namespace,
            name,
            lambda: self._core.read_namespaced_persistent_volume_claim(
                name, namespace, _preload_content=False, _request_timeout=self._timeout
            ),
        )
        return found is not None

    async def ensure_pvc(self, manifest: Mapping[str, Any], *, dry_run: bool) -> Ensured:
        from kubernetes.client.exceptions import ApiException

        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        # A cache miss goes straight to create: one call, and a 409 if the watch lags behind.
        if await self.pvc_exists(namespace, name):
            return "exists"
        if dry_run:
            return "would-create"
        try:
            await self._call(
                "create",
                "PersistentVolumeClaim",
                namespace,
                name,
                lambda: self._core.create_namespaced_persistent_volume_claim(
                    namespace,
                    manifest,  # type: ignore[arg-type]  # a plain dict is serialised as it is
                    _preload_content=False,
                    _request_timeout=self._timeout,
                ),
            )
        except ApiException as exc:
            if exc.status == 409:  # another replica or a concurrent pod created it first
                self._remember(namespace, name)
                return "exists"
            message = describe_failure(
                "create", "PersistentVolumeClaim", namespace, name, exc.status, _api_message(exc)
            )
            raise ClusterError(message, exc.status) from None
        self._remember(namespace, name)
        return "created"

    def _remember(self, namespace: str, name: str) -> None:
        if self.cache is not None:
            self.cache.add(namespace, name)

    async def get_owner(self, kind: OwnerKind, namespace: str, name: str) -> Mapping[str, Any] | None:
        if kind == "Job":
            return await self._get(
                "Job",
                namespace,
                name,
                lambda: self._batch.read_namespaced_job(
                    name, namespace, _preload_content=False, _request_timeout=self._timeout
                ),
            )
        s = self._settings
        return await self._get(
            "CodeRun",
            namespace,
            name,
            lambda: self._custom.get_namespaced_custom_object(
                s.coderun_group, s.coderun_version, namespace, s.coderun_plural, name, _request_timeout=self._timeout
            ),
        )

    async def check_ready(self) -> str | None:
        if self.cache is not None and not self.cache.synced:
            return f"PVC cache not synced yet ({self.cache.last_error or 'first list in progress'})"
        timeout = self._settings.ready_timeout_seconds
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(
                    self._pool, lambda: self._version.get_code(_request_timeout=timeout)
                ),
                timeout,
            )
        except Exception as exc:
            return f"the Kubernetes API is unreachable: {_short(exc) or type(exc).__name__}"
        return None

    def close(self) -> None:
        if self.cache is not None:
            self.cache.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()


def api_client(settings: Settings) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if settings.kubeconfig is not None:
            config.load_kube_config(config_file=str(settings.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as exc:
        raise ClusterError(
            f"no Kubernetes API to talk to ({_short(exc)}): run in a cluster, set WEBHOOK_KUBECONFIG, "
            "or use the in-memory store (--store memory) for local debugging"
        ) from None
    configuration.connection_pool_maxsize = settings.kube_pool_size
    configuration.retries = False  # the deadline is ours to spend, not urllib3's
    return client.ApiClient(configuration)


def _api_message(exc: Any) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return _short(message or f"{exc.status} {exc.reason}")


def _short(value: object, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."


def make_store(settings: Settings, metrics: Metrics | None = None) -> WorkspaceStore:
    if settings.store == "memory":
        return MemoryStore()
    return KubeStore(settings, metrics)
