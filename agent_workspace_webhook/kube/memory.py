"""The in-memory twin of KubeStore, for unit tests and offline `review` / `serve --store memory`.

Bounded, since `serve --store memory` may still face hostile callers: it keeps at most
MAX_PVCS PVCs and the last MAX_CALLS calls.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_workspace_webhook.kube.store import ClusterError, PvcAction, describe_failure
from agent_workspace_webhook.rules.census import Census, census
from agent_workspace_webhook.rules.facts import OwnerKind
from agent_workspace_webhook.rules.generations import FreshRun, Generation, fresh_run_of
from agent_workspace_webhook.rules.pvc import PvcState, pvc_state
from agent_workspace_webhook.rules.selector import Selector

MAX_PVCS = 10_000
MAX_CALLS = 1_000


@dataclass
class MemoryStore:
    pvcs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    owners: dict[tuple[str, str, str], Mapping[str, Any]] = field(default_factory=dict)
    # verb ("get", "create") -> (the HTTP status, None for no answer; the API server's message):
    # those calls fail as KubeStore reports such an answer (describe_failure). Or answer slowly.
    failures: dict[str, tuple[int | None, str]] = field(default_factory=dict)
    delay: float = 0.0
    # Known namespaces and their labels; None: every name exists, labelled `labels_everywhere`, or
    # (that None too) in scope whatever the selector, as offline `review` assumes.
    namespaces: dict[str, dict[str, str]] | None = None
    labels_everywhere: dict[str, str] | None = None
    # StorageClass name -> allows volume expansion
    storage_classes: dict[str, bool] = field(default_factory=dict)
    calls: collections.deque[tuple[str, str]] = field(default_factory=lambda: collections.deque(maxlen=MAX_CALLS))
    # As a KubeStore whose watch caches have not synced (or are off): nothing is answered "now",
    # every answer is a call, which the failures and the delay above reach.
    cold: bool = False

    async def _call(self, verb: str, what: str, namespace: str, name: str) -> None:
        self.calls.append((verb, name))
        if self.delay:
            await asyncio.sleep(self.delay)
        failure = self.failures.get(verb)
        if failure is not None:
            raise describe_failure(verb, what, namespace, name, *failure)

    async def get_pvc(self, namespace: str, name: str) -> PvcState | None:
        await self._call("get", "PersistentVolumeClaim", namespace, name)
        found = self.pvcs.get((namespace, name))
        return None if found is None else pvc_state(found)

    async def create_pvc(self, manifest: Mapping[str, Any], *, dry_run: bool) -> PvcAction:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        if dry_run:
            return "would-create"
        await self._call("create", "PersistentVolumeClaim", namespace, name)
        if (namespace, name) in self.pvcs:
            return "exists"  # what the API server's 409 means
        if len(self.pvcs) >= MAX_PVCS:
            raise ClusterError(
                f"cannot create PersistentVolumeClaim {namespace}/{name}: the in-memory store is full "
                f"({MAX_PVCS} PVCs); it is for debugging: restart it, or use the Kubernetes store",
                507,
            )
        stored = copy.deepcopy(dict(manifest))
        # As the API server stamps it (what a fresh run's generation is compared with).
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        stored["metadata"] = {**stored["metadata"], "uid": str(uuid.uuid4()), "creationTimestamp": now}
        self.pvcs[(namespace, name)] = stored
        return "created"

    async def get_owner(self, kind: OwnerKind, namespace: str, name: str) -> Mapping[str, Any] | None:
        await self._call("get", kind, namespace, name)
        return self.owners.get((kind, namespace, name))

    def generations_now(self, namespace: str, base: str) -> list[Generation] | None:
        # As a cache would, unless cold or a failure or a delay is injected: those the call must meet.
        if self.cold or self.delay or "get" in self.failures:
            return None
        self.calls.append(("get", base))
        return self._generations(namespace, base)

    async def generations(self, namespace: str, base: str) -> list[Generation]:
        await self._call("get", "PersistentVolumeClaim", namespace, base)  # KubeStore: one cache read
        return self._generations(namespace, base)

    def _generations(self, namespace: str, base: str) -> list[Generation]:
        found = []
        for (pvc_namespace, name), pvc in self.pvcs.items():
            state = pvc_state(pvc)
            if pvc_namespace == namespace and (state.generation_of or name) == base:
                found.append(Generation(state.generation, name, state))
        return sorted(found, key=lambda generation: generation.number)

    async def grow_pvc(self, namespace: str, name: str, storage: str) -> None:
        await self._call("patch", "PersistentVolumeClaim", namespace, name)
        self.pvcs[(namespace, name)]["spec"]["resources"]["requests"]["storage"] = storage

    async def storage_class_expands(self, name: str) -> bool | None:
        await self._call("get", "StorageClass", "", name)
        return self.storage_classes.get(name)

    async def workspace_count(self, namespace: str) -> int:
        states = (pvc_state(pvc) for (ns, _), pvc in self.pvcs.items() if ns == namespace)
        return sum(1 for s in states if s.generation_of)

    def census(self) -> Census | None:
        groups: dict[tuple[str, str], dict[str, PvcState]] = {}
        for (namespace, name), pvc in self.pvcs.items():
            state = pvc_state(pvc)
            groups.setdefault((namespace, state.generation_of or name), {})[name] = state
        return census((base, members) for (_, base), members in groups.items())

    def fresh_runs_now(self, namespace: str) -> list[FreshRun] | None:
        # Not counted as a call: the real store answers this from its CodeRun watch.
        return None if self.cold else self._fresh_runs(namespace)

    def _fresh_runs(self, namespace: str) -> list[FreshRun]:
        found = []
        for (kind, run_namespace, _), run in self.owners.items():
            metadata = {"namespace": run_namespace, **(run.get("metadata") or {})}
            fresh = fresh_run_of({**run, "metadata": metadata}) if kind == "CodeRun" else None
            if fresh is not None and run_namespace == namespace:
                found.append(fresh)
        return found

    async def fresh_runs(self, namespace: str) -> list[FreshRun]:
        await self._call("list", "CodeRun", namespace, "")
        return self._fresh_runs(namespace)

    async def namespace_in_scope(self, name: str, selector: Selector) -> bool | None:
        await self._call("get", "Namespace", "", name)
        return self._in_scope(name, selector)

    def in_scope_now(self, name: str, selector: Selector) -> bool | None:
        # Not counted as a call: the real store answers this from its namespace watch. A missing
        # one (None) is asked again through namespace_in_scope, as KubeStore does.
        return None if self.cold else self._in_scope(name, selector)

    def _in_scope(self, name: str, selector: Selector) -> bool | None:
        if self.namespaces is not None:
            labels = self.namespaces.get(name)
            return None if labels is None else selector.matches(labels)
        return True if self.labels_everywhere is None else selector.matches(self.labels_everywhere)

    def degraded(self) -> str | None:
        return None

    async def check_ready(self) -> str | None:
        # As KubeStore's: an API server that answers is ready, whatever it answers.
        away = [detail for status, detail in self.failures.values() if status is None]
        return f"the Kubernetes API is unreachable: {away[0]}" if away else None

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass
