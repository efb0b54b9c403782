"""The real store: the official Kubernetes client, each blocking call in a bounded thread pool
with the admission's deadline, so that the event loop never waits on it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar, cast

from agent_workspace_webhook import logs
from agent_workspace_webhook.kube.caches import fresh_run_cache, namespace_cache, pvc_cache
from agent_workspace_webhook.kube.calls import Calls
from agent_workspace_webhook.kube.connect import api_client
from agent_workspace_webhook.kube.store import PvcAction
from agent_workspace_webhook.kube.watch_cache import CallCounter
from agent_workspace_webhook.rules.census import Census, census
from agent_workspace_webhook.rules.facts import OwnerKind
from agent_workspace_webhook.rules.generations import FreshRun, Generation, fresh_run_of
from agent_workspace_webhook.rules.labels import LABEL_GENERATION_OF
from agent_workspace_webhook.rules.names import one_line
from agent_workspace_webhook.rules.pvc import PvcState, pvc_state
from agent_workspace_webhook.rules.selector import Selector
from agent_workspace_webhook.rules.workspace import is_workspace_name
from agent_workspace_webhook.settings import Settings

T = TypeVar("T")


class KubeStore(Calls):
    """The real thing: the official client, each call in a worker thread with a timeout (calls.py)."""

    def __init__(self, settings: Settings, count: CallCounter | None = None) -> None:
        from kubernetes import client

        super().__init__(settings, count)
        self._settings = settings
        self._api = api_client(settings)
        self._core = client.CoreV1Api(self._api)
        self._batch = client.BatchV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._version = client.VersionApi(self._api)
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

    def in_scope_now(self, name: str, selector: Selector) -> bool | None:
        cached = self.namespaces.lookup(name) if self.namespaces is not None else None
        # A namespace the watch has not told of yet may be one created a moment ago (its first
        # run follows at once): ask the API before calling it missing. Known ones cost nothing.
        return selector.matches(cached[1] or {}) if cached is not None and cached[0] else None

    async def namespace_in_scope(self, name: str, selector: Selector) -> bool | None:
        known = self.in_scope_now(name, selector)
        if known is not None:
            return known
        namespace = await self.read(
            "Namespace",
            "",
            name,
            lambda: self._core.read_namespace(name, _preload_content=False, _request_timeout=self._timeout),
        )
        return None if namespace is None else selector.matches(namespace.get("metadata", {}).get("labels") or {})

    async def get_pvc(self, namespace: str, name: str) -> PvcState | None:
        cached = self.cache.lookup((namespace, name)) if self.cache is not None else None
        if cached is not None:
            return cached[1]
        found = await self.read(
            "PersistentVolumeClaim",
            namespace,
            name,
            lambda: self._core.read_namespaced_persistent_volume_claim(
                name, namespace, _preload_content=False, _request_timeout=self._timeout
            ),
        )
        return None if found is None else pvc_state(found)

    async def create_pvc(self, manifest: Mapping[str, Any], *, dry_run: bool) -> PvcAction:

        if dry_run:
            return "would-create"
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        response = await self.call(
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
            expected={409: None},  # another replica or a concurrent pod created it first
        )
        if response is None:
            return "exists"
        # Written the moment it exists, before the admission's own line: if the answer is then lost
        # (the webhook killed, the API server timed out), the log still says what was made.
        logs.logger().info("pvc created", extra={"fields": {"namespace": namespace, "pvc": name}})
        if self.cache is not None and is_workspace_name(name):  # known ahead of its watch event
            self.cache.add((namespace, name), pvc_state(json.loads(cast(Any, response).data)))
        return "created"

    async def get_owner(self, kind: OwnerKind, namespace: str, name: str) -> Mapping[str, Any] | None:
        if kind == "Job":
            return await self.read(
                "Job",
                namespace,
                name,
                lambda: self._batch.read_namespaced_job(
                    name, namespace, _preload_content=False, _request_timeout=self._timeout
                ),
            )
        s = self._settings
        return await self.read(
            "CodeRun",
            namespace,
            name,
            lambda: self._custom.get_namespaced_custom_object(
                s.coderun_group, s.coderun_version, namespace, s.coderun_plural, name, _request_timeout=self._timeout
            ),
        )

    def generations_now(self, namespace: str, base: str) -> list[Generation] | None:
        found = self.cache.lookup_group((namespace, base)) if self.cache is not None else None
        return None if found is None else _generations(found)

    async def generations(self, namespace: str, base: str) -> list[Generation]:
        known = self.generations_now(namespace, base)
        if known is not None:
            return known
        # No cache (or not synced): the labelled ones, and generation 1 by name.
        listed = await self.items(
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
        return _generations(found)

    async def grow_pvc(self, namespace: str, name: str, storage: str) -> None:

        patch = {"spec": {"resources": {"requests": {"storage": storage}}}}
        await self.call(
            "patch",
            "PersistentVolumeClaim",
            namespace,
            name,
            lambda: self._core.patch_namespaced_persistent_volume_claim(
                name, namespace, patch, _preload_content=False, _request_timeout=self._timeout
            ),
        )

    async def storage_class_expands(self, name: str) -> bool | None:
        from kubernetes import client

        storage = client.StorageV1Api(self._api)
        found = await self.read(
            "StorageClass",
            "",
            name,
            lambda: storage.read_storage_class(name, _preload_content=False, _request_timeout=self._timeout),
        )
        return None if found is None else bool(found.get("allowVolumeExpansion"))

    async def workspace_count(self, namespace: str) -> int:
        def made(_: tuple[str, str], members: dict[tuple[str, str], PvcState]) -> int:
            return sum(1 for s in members.values() if s.generation_of)

        counted = self.cache.tally(namespace, made) if self.cache is not None else None
        if counted is not None:
            return counted
        listed = await self.items(
            "PersistentVolumeClaim",
            namespace,
            "(the webhook's workspaces)",
            lambda: self._core.list_namespaced_persistent_volume_claim(
                namespace, label_selector=LABEL_GENERATION_OF, _preload_content=False, _request_timeout=self._timeout
            ),
        )
        return len(listed)

    def census(self) -> Census | None:
        groups = self.cache.groups() if self.cache is not None else None
        if groups is None:
            return None
        found = census(
            (base, {key[1]: state for key, state in members.items()}) for (_, base), members in groups.items()
        )
        idle = {what: cache.idle_seconds() for what, cache in self._caches() if cache is not None}
        unserved = {what: float(cache.absent) for what, cache in self._caches() if cache is not None}
        return replace(
            found,
            idle_seconds={what: seconds for what, seconds in idle.items() if seconds is not None},
            unserved=unserved,
        )

    def fresh_runs_now(self, namespace: str) -> list[FreshRun] | None:
        found = self.fresh.lookup_group(namespace) if self.fresh is not None else None
        return None if found is None else list(found.values())

    async def fresh_runs(self, namespace: str) -> list[FreshRun]:
        known = self.fresh_runs_now(namespace)
        if known is not None:
            return known
        s = self._settings
        listed = await self.items(
            "CodeRun",
            namespace,
            "(asking for a fresh workspace)",
            lambda: self._custom.list_namespaced_custom_object(
                s.coderun_group, s.coderun_version, namespace, s.coderun_plural, _request_timeout=self._timeout
            ),
            unserved_is_empty=True,  # no CRD, no CodeRun: none asks for a fresh workspace
        )
        return [run for item in listed if (run := fresh_run_of(item)) is not None]

    def degraded(self) -> str | None:
        if self.fresh is not None and self.fresh.absent:
            s = self._settings
            return (
                f"{s.coderun_plural}.{s.coderun_group}/{s.coderun_version} is not served (its CustomResourceDefinition "
                "is missing): no run can ask for a fresh workspace; install the platform's CodeRun CRD"
            )
        return None

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


def _generations(found: Mapping[tuple[str, str], PvcState]) -> list[Generation]:
    return sorted((Generation(s.generation, key[1], s) for key, s in found.items()), key=lambda g: g.number)
