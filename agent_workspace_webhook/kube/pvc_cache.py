"""Which workspace PVCs exist, kept current by list + watch in a background thread, so that an
admission whose PVC exists costs no Kubernetes API call at all.

Only the (namespace, name) of PVCs named ``workspace-*`` are kept: memory grows with the
number of workspaces, not with the cluster. A watch that expires (410 Gone) or breaks is
followed by a fresh list, with a bounded backoff while the API server is away.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from agent_workspace_webhook import logs
from agent_workspace_webhook.rules.names import one_line
from agent_workspace_webhook.rules.workspace import PREFIX

Key = tuple[str, str]
# (verb, resource, code) -> None: told of every Kubernetes call (the metrics count them)
CallCounter = Callable[[str, str, str], None]


class PvcCache:
    def __init__(self, core_api: Any, count: CallCounter, page_size: int = 500, watch_seconds: int = 240) -> None:
        self._core = core_api
        self._count = count
        self._page_size = page_size
        self._watch_seconds = watch_seconds
        self._keys: set[Key] = set()
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None
        self.last_error: str | None = None

    # --- what admissions ask ----------------------------------------------------------------

    def contains(self, namespace: str, name: str) -> bool | None:
        """True or False once the first list has completed; None before (ask the API)."""
        if not self._synced.is_set():
            return None
        with self._lock:
            return (namespace, name) in self._keys

    def add(self, namespace: str, name: str) -> None:
        """Record a PVC this process just created (or found by a 409), ahead of its watch event."""
        if name.startswith(PREFIX):
            with self._lock:
                self._keys.add((namespace, name))

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    # --- keeping it current ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pvc-cache", daemon=True)
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
                self._failed(f"HTTP {exc.status} {exc.reason}")
            except Exception as exc:  # connection refused or reset: the API server is away
                self._failed(one_line(exc))
            else:
                continue  # the watch ended normally (timeout_seconds): list again
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _failed(self, error: str) -> None:
        if error != self.last_error:
            logs.logger().warning("PVC cache: list/watch failed, retrying", extra={"fields": {"error": error}})
        self.last_error = error

    def _list(self) -> str:
        """Read every PVC (in pages), replace the cache; the list's resourceVersion."""
        keys: set[Key] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self._page_size, "_preload_content": False, "_request_timeout": 30}
            if token:
                kwargs["_continue"] = token
            with self._counted("list"):
                response = self._core.list_persistent_volume_claim_for_all_namespaces(**kwargs)
            page = json.loads(response.data)
            for item in page.get("items", []):
                metadata = item["metadata"]
                if metadata["name"].startswith(PREFIX):
                    keys.add((metadata["namespace"], metadata["name"]))
            token = page["metadata"].get("continue")
            if not token:
                break
        with self._lock:
            self._keys = keys
        self.last_error = None
        self._synced.set()
        version: str = page["metadata"]["resourceVersion"]
        return version

    def _follow(self, version: str) -> None:
        from kubernetes import watch

        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        stream = self._watch.stream(
            self._core.list_persistent_volume_claim_for_all_namespaces,
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
            self._count(verb, "persistentvolumeclaims", str(exc.status))
            raise
        except Exception:
            self._count(verb, "persistentvolumeclaims", "unreachable")
            raise
        self._count(verb, "persistentvolumeclaims", "200")

    def _apply(self, stream: Iterable[dict[str, Any]]) -> None:
        for event in stream:
            if self._stop.is_set():
                return
            kind = event["type"]
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue  # BOOKMARK: only moves the resourceVersion, which Watch tracks
            metadata = event["raw_object"]["metadata"]
            if not metadata["name"].startswith(PREFIX):
                continue
            key = (metadata["namespace"], metadata["name"])
            with self._lock:
                if kind == "DELETED":
                    self._keys.discard(key)
                else:
                    self._keys.add(key)
            # Give other threads (the event loop) a turn on a burst of events.
            time.sleep(0)
