"""What exists in the cluster, kept current by list + watch in a background thread, so that an
admission costs no Kubernetes API call for what the caches already know: the workspace PVCs
(a small PvcState for each PVC named ``workspace-*``: memory grows with the number of
workspaces, not with the cluster), grouped by workspace (its generations), the namespaces with
their labels (for the scope), and the CodeRuns that ask for a fresh workspace.

A watch that expires (410 Gone) or breaks is followed by a fresh list, with a bounded backoff
while the API server is away.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from agent_workspace_webhook import logs
from agent_workspace_webhook.rules.names import one_line

K = TypeVar("K")
V = TypeVar("V")
G = TypeVar("G")
# (verb, resource, code) -> None: told of every Kubernetes call (the metrics count them)
CallCounter = Callable[[str, str, str], None]


class WatchCache(Generic[K, V, G]):
    """The objects `keep` keeps, by key; with `group`, also by group (the generations of one
    workspace, the fresh runs of one namespace), so an admission reads a group without a scan;
    with `section`, the groups also by the part of their key they are counted within (a
    workspace's namespace), so counting one namespace's groups never scans the cluster's."""

    def __init__(
        self,
        list_call: Callable[..., Any],
        resource: str,
        keep: Callable[[Mapping[str, Any]], tuple[K, V] | None],
        count: CallCounter,
        page_size: int = 500,
        watch_seconds: int = 240,
        group: Callable[[K, V], G] | None = None,
        section: Callable[[G], Hashable] | None = None,
        absent_ok: bool = False,
        absent_retry_seconds: float = 10.0,
    ) -> None:
        self._list_call, self._resource, self._keep, self._group = list_call, resource, keep, group
        self._groups: dict[G, dict[K, V]] = {}
        self._section = section
        self._sections: dict[Hashable, set[G]] = {}
        self._count = count
        self._page_size = page_size
        self._watch_seconds = watch_seconds
        self._items: dict[K, V] = {}
        self._last_event = 0.0  # monotonic time of the last list or watch event (bookmarks too)
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None
        self.last_error: str | None = None
        # With absent_ok, a list answered 404 (the resource is not served: its CRD is missing) is
        # an empty, synced cache, listed again every absent_retry_seconds until the CRD appears.
        self._absent_ok, self._absent_retry = absent_ok, absent_retry_seconds
        self.absent = False

    # --- what admissions ask ----------------------------------------------------------------

    def lookup(self, key: K) -> tuple[bool, V | None] | None:
        """(found, value) once the first list has completed; None before (ask the API)."""
        if not self._synced.is_set():
            return None
        with self._lock:
            value = self._items.get(key)
            return (value is not None or key in self._items), value

    def lookup_group(self, group: G) -> dict[K, V] | None:
        """The group's objects (a copy) once the first list has completed; None before."""
        if not self._synced.is_set():
            return None
        with self._lock:
            return dict(self._groups.get(group, {}))

    def groups(self) -> dict[G, dict[K, V]] | None:
        """Every group (a copy, for the gauges) once synced; None before."""
        if not self._synced.is_set():
            return None
        with self._lock:
            return {group: dict(members) for group, members in self._groups.items()}

    def tally(self, section: Hashable, measure: Callable[[G, dict[K, V]], int]) -> int | None:
        """The sum of `measure` over the section's groups (a bool counts the groups that match),
        once synced; None before."""
        if not self._synced.is_set():
            return None
        with self._lock:
            return sum(measure(group, self._groups[group]) for group in self._sections.get(section, ()))

    def idle_seconds(self) -> float | None:
        """Seconds since the cache last heard from the API server; None before its first list."""
        return time.monotonic() - self._last_event if self._synced.is_set() else None

    def add(self, key: K, value: V) -> None:
        """Record an object this process just created (or found by a 409), ahead of its watch event."""
        with self._lock:
            self._put(key, value)

    def _put(self, key: K, value: V) -> None:
        """Under the lock: set one object, moving it between groups if its group changed."""
        self._drop(key)
        self._items[key] = value
        if self._group is not None:
            group = self._group(key, value)
            members = self._groups.get(group)
            if members is None:
                members = self._groups[group] = {}
                if self._section is not None:
                    self._sections.setdefault(self._section(group), set()).add(group)
            members[key] = value

    def _drop(self, key: K) -> None:
        old = self._items.pop(key, None)
        if old is not None and self._group is not None:
            group = self._group(key, old)
            members = self._groups.get(group)
            if members is not None:
                members.pop(key, None)
                if not members:
                    del self._groups[group]
                    self._forget_section(group)

    def _forget_section(self, group: G) -> None:
        if self._section is not None:
            section = self._section(group)
            groups = self._sections.get(section)
            if groups is not None:
                groups.discard(group)
                if not groups:
                    del self._sections[section]

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    # --- keeping it current ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self._resource}-cache", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        backoff = 0.2
        while not self._stop.is_set():
            try:
                version = self._list()
                backoff = 0.2
                self._follow(version)
            except ApiException as exc:  # already counted by the list or watch that failed
                if exc.status == 410:  # our resourceVersion is too old: list again at once
                    continue
                if exc.status == 404 and self._absent_ok:
                    self._not_served()
                    self._stop.wait(self._absent_retry)
                    continue
                self._failed(f"HTTP {exc.status} {exc.reason}")
            except Exception as exc:  # connection refused or reset: the API server is away
                self._failed(one_line(exc))
            else:
                continue  # the watch ended normally (timeout_seconds): list again
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _not_served(self) -> None:
        """The resource is not served (404 on its list or watch): nothing of it exists, so the
        cache is empty and synced; said once, not at every retry."""
        with self._lock:
            self._items, self._groups, self._sections = {}, {}, {}
        if not self.absent:
            said = "resource not served: its CustomResourceDefinition is missing; none of it, until it appears"
            logs.logger().warning(said, extra={"fields": {"resource": self._resource, "retry": self._absent_retry}})
        self.absent, self.last_error, self._last_event = True, None, time.monotonic()
        self._synced.set()

    def _failed(self, error: str) -> None:
        if error != self.last_error:
            logs.logger().warning(
                "list/watch failed, retrying", extra={"fields": {"resource": self._resource, "error": error}}
            )
        self.last_error = error

    def _list(self) -> str:
        """Read every object (in pages), replace the cache; the list's resourceVersion."""
        started = time.monotonic()
        items: dict[K, V] = {}
        token: str | None = None
        listed = 0
        while True:
            kwargs: dict[str, Any] = {"limit": self._page_size, "_preload_content": False, "_request_timeout": 30}
            if token:
                kwargs["_continue"] = token
            with self._counted("list"):
                response = self._list_call(**kwargs)
            page = json.loads(response.data)
            listed += len(page.get("items", []))
            for item in page.get("items", []):
                kept = self._keep(item)
                if kept is not None:
                    items[kept[0]] = kept[1]
            token = page["metadata"].get("continue")
            if not token:
                break
        groups: dict[G, dict[K, V]] = {}
        if self._group is not None:
            for key, value in items.items():
                groups.setdefault(self._group(key, value), {})[key] = value
        sections: dict[Hashable, set[G]] = {}
        if self._section is not None:
            for group in groups:
                sections.setdefault(self._section(group), set()).add(group)
        with self._lock:
            self._items, self._groups, self._sections = items, groups, sections
        self._last_event = time.monotonic()
        self.last_error = None
        first = not self._synced.is_set() or self.absent
        self.absent = False
        self._synced.set()
        logs.logger().info(
            "cache synced" if first else "cache re-listed",
            extra={
                "fields": {
                    "resource": self._resource,
                    "listed": listed,
                    "kept": len(items),
                    "seconds": round(time.monotonic() - started, 3),
                }
            },
        )
        version: str = page["metadata"]["resourceVersion"]
        return version

    def _follow(self, version: str) -> None:
        from kubernetes import watch

        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        stream = self._watch.stream(
            self._list_call,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_seconds,
            _request_timeout=(10, self._watch_seconds + 30),
        )
        with self._counted("watch"):
            self._apply(stream)

    @contextlib.contextmanager
    def _counted(self, verb: str) -> Iterator[None]:
        """Count one list or watch by how it ended: 200, the HTTP status, or unreachable."""
        from kubernetes.client.exceptions import ApiException

        try:
            yield
        except ApiException as exc:
            self._count(verb, self._resource, str(exc.status))
            raise
        except Exception:
            self._count(verb, self._resource, "unreachable")
            raise
        self._count(verb, self._resource, "200")

    def _apply(self, stream: Iterable[dict[str, Any]]) -> None:
        for event in stream:
            if self._stop.is_set():
                return
            kind = event["type"]
            self._last_event = time.monotonic()
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue  # BOOKMARK: only moves the resourceVersion, which Watch tracks
            kept = self._keep(event["raw_object"])
            if kept is None:
                continue
            with self._lock:
                if kind == "DELETED":
                    self._drop(kept[0])
                else:
                    self._put(*kept)
            # Give other threads (the event loop) a turn on a burst of events.
            time.sleep(0)
