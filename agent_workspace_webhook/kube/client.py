"""The real store: the official Kubernetes client, each blocking call in a bounded thread pool
with the admission's deadline, so that the event loop never waits on it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar, cast

from agent_workspace_webhook.kube.connect import api_client
from agent_workspace_webhook.kube.store import RESOURCES, PvcAction, describe_failure
from agent_workspace_webhook.kube.watch_cache import CallCounter, fresh_run_cache, namespace_cache, pvc_cache
from agent_workspace_webhook.rules.census import Census, census
from agent_workspace_webhook.rules.facts import OwnerKind
from agent_workspace_webhook.rules.generations import FreshRun, Generation, fresh_run_of
from agent_workspace_webhook.rules.labels import LABEL_GENERATION_OF
from agent_workspace_webhook.rules.names import one_line
from agent_workspace_webhook.rules.pvc import PvcState, pvc_state
from agent_workspace_webhook.rules.selector import Selector
from agent_workspace_webhook.rules.workspace import PREFIX
from agent_workspace_webhook.settings import Settings

T = TypeVar("T")


class KubeStore:
    """The real thing: the official client, each call in a worker thread with a timeout."""

    def __init__(self, settings: Settings, count: CallCounter | None = None) -> None:
        from kubernetes import client

        self._settings = settings
        self._count = count or _uncounted
        self._api = api_client(settings)
        self._core = client.CoreV1Api(self._api)
        self._batch = client.BatchV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._version = client.VersionApi(self._api)
        # As many threads as pooled connections: more would only queue inside urllib3.
        self._pool = ThreadPoolExecutor(max_workers=settings.kube_pool_size, thread_name_prefix="kube")
        self._timeout = settings.kube_deadline_seconds
        # Answers "does it exist?" without a call once start() has run and the first list is in.
        self.cache = pvc_cache(self._core, self._count) if settings.watch_caches else None
        self.namespaces = namespace_cache(self._core, self._count) if settings.watch_caches else None
        s = settings
        self.fresh = (
            fresh_run_cache(self._custom, s.coderun_group, s.coderun_version, s.coderun_plural, self._count)
            if settings.watch_caches
            else None
        )

    def _caches(self) -> tuple[tuple[str, Any], ...]:
        return (("PVC", self.cache), ("namespace", self.namespaces), ("CodeRun", self.fresh))

    def start(self) -> None:
        for _, cache in self._caches():
            if cache is not None:
                cache.start()

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
            raise describe_failure("get", what, namespace, name, exc.status, _api_message(exc)) from None
        if isinstance(response, dict):
            return response
        loaded: dict[str, Any] = json.loads(response.data)
        return loaded

    async def namespace_in_scope(self, name: str, selector: Selector) -> bool | None:
        cached = self.namespaces.lookup(name) if self.namespaces is not None else None
        if cached is not None:
            found, labels = cached
        else:
            namespace = await self._get(
                "Namespace",
                "",
                name,
                lambda: self._core.read_namespace(name, _preload_content=False, _request_timeout=self._timeout),
            )
            found, labels = namespace is not None, (namespace or {}).get("metadata", {}).get("labels")
        return selector.matches(labels or {}) if found else None

    async def get_pvc(self, namespace: str, name: str) -> PvcState | None:
        cached = self.cache.lookup((namespace, name)) if self.cache is not None else None
        if cached is not None:
            return cached[1]
        found = await self._get(
            "PersistentVolumeClaim",
            namespace,
            name,
            lambda: self._core.read_namespaced_persistent_volume_claim(
                name, namespace, _preload_content=False, _request_timeout=self._timeout
            ),
        )
        return None if found is None else pvc_state(found)

    async def create_pvc(self, manifest: Mapping[str, Any], *, dry_run: bool) -> PvcAction:
        from kubernetes.client.exceptions import ApiException

        if dry_run:
            return "would-create"
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            response = await self._call(
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
                return "exists"
            raise describe_failure(
                "create", "PersistentVolumeClaim", namespace, name, exc.status, _api_message(exc)
            ) from None
        if self.cache is not None and name.startswith(PREFIX):  # known ahead of its watch event
            self.cache.add((namespace, name), pvc_state(json.loads(cast(Any, response).data)))
        return "created"

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

    async def generations(self, namespace: str, base: str) -> list[Generation]:
        found = self.cache.lookup_group((namespace, base)) if self.cache is not None else None
        if found is None:  # no cache (or not synced): the labelled ones, and generation 1 by name
            listed = await self._list(
                "PersistentVolumeClaim",
                namespace,
                f"(generations of {base})",
                lambda: self._core.list_namespaced_persistent_volume_claim(
                    namespace,
                    label_selector=f"{LABEL_GENERATION_OF}={base}",
                    _preload_content=False,
                    _request_timeout=self._timeout,
                ),
            )
            found = {(namespace, item["metadata"]["name"]): pvc_state(item) for item in listed}
            if (namespace, base) not in found:  # made before generations, or by the platform
                first = await self.get_pvc(namespace, base)
                if first is not None:
                    found[(namespace, base)] = first
        return sorted((Generation(s.generation, key[1], s) for key, s in found.items()), key=lambda g: g.number)

    async def grow_pvc(self, namespace: str, name: str, storage: str) -> None:
        from kubernetes.client.exceptions import ApiException

        patch = {"spec": {"resources": {"requests": {"storage": storage}}}}
        try:
            await self._call(
                "patch",
                "PersistentVolumeClaim",
                namespace,
                name,
                lambda: self._core.patch_namespaced_persistent_volume_claim(
                    name, namespace, patch, _preload_content=False, _request_timeout=self._timeout
                ),
            )
        except ApiException as exc:
            raise describe_failure(
                "patch", "PersistentVolumeClaim", namespace, name, exc.status, _api_message(exc)
            ) from None

    async def storage_class_expands(self, name: str) -> bool | None:
        from kubernetes import client

        storage = client.StorageV1Api(self._api)
        found = await self._get(
            "StorageClass",
            "",
            name,
            lambda: storage.read_storage_class(name, _preload_content=False, _request_timeout=self._timeout),
        )
        return None if found is None else bool(found.get("allowVolumeExpansion"))

    def census(self) -> Census | None:
        groups = self.cache.groups() if self.cache is not None else None
        if groups is None:
            return None
        found = census(
            (base, {key[1]: state for key, state in members.items()}) for (_, base), members in groups.items()
        )
        idle = {what: cache.idle_seconds() for what, cache in self._caches() if cache is not None}
        return replace(found, idle_seconds={what: seconds for what, seconds in idle.items() if seconds is not None})

    async def fresh_runs(self, namespace: str) -> list[FreshRun]:
        found = self.fresh.lookup_group(namespace) if self.fresh is not None else None
        if found is not None:
            return list(found.values())
        s = self._settings
        listed = await self._list(
            "CodeRun",
            namespace,
            "(asking for a fresh workspace)",
            lambda: self._custom.list_namespaced_custom_object(
                s.coderun_group, s.coderun_version, namespace, s.coderun_plural, _request_timeout=self._timeout
            ),
        )
        return [run for item in listed if (run := fresh_run_of(item)) is not None]

    async def _list(self, what: str, namespace: str, name: str, call: Callable[[], Any]) -> list[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException

        try:
            response = await self._call("list", what, namespace, name, call)
        except ApiException as exc:
            raise describe_failure("list", what, namespace, name, exc.status, _api_message(exc)) from None
        listed = response if isinstance(response, dict) else json.loads(response.data)
        items: list[dict[str, Any]] = listed.get("items") or []
        return items

    async def check_ready(self) -> str | None:
        for what, cache in self._caches():
            if cache is not None and not cache.synced:
                return f"{what} cache not synced yet ({cache.last_error or 'first list in progress'})"
        timeout = self._settings.ready_timeout_seconds
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(
                    self._pool, lambda: self._version.get_code(_request_timeout=timeout)
                ),
                timeout,
            )
        except Exception as exc:
            return f"the Kubernetes API is unreachable: {one_line(exc) or type(exc).__name__}"
        return None

    def close(self) -> None:
        for _, cache in self._caches():
            if cache is not None:
                cache.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()


def _api_message(exc: Any) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return one_line(message or f"{exc.status} {exc.reason}")


def _uncounted(verb: str, resource: str, code: str) -> None:
    pass
