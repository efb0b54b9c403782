"""Runs made as the platform makes them (CodeRun, then its Job, whose Pod the Job controller
creates), one every 200 ms in a thread, while something happens to the webhook; then the count of
what failed: CodeRun creations refused, and Pod creations the Job controller reported failed
(its FailedCreate events), and Jobs left without a Pod that has its workspace."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE
from agent_workspace_webhook.testing.kube import json_body
from agent_workspace_webhook.testing.runs import Run, run_pods, start_run

APPS = ("5DLabs-Rex", "5DLabs-Cleo[bot]", "5DLabs-Tess")
INTERVAL = 0.2


@dataclass
class Traffic:
    admin: Any
    namespace: str
    runs: list[Run] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        from kubernetes.client.exceptions import ApiException

        n, next_at = 0, time.monotonic()
        while not self._stop.is_set():
            n += 1
            try:
                self.runs.append(
                    start_run(self.admin, self.namespace, f"svc{n % 4}", f"run-{n}", githubApp=APPS[n % len(APPS)])
                )
            except ApiException as exc:
                self.refused.append(f"run-{n}: {exc.status} {exc.body}")
            next_at += INTERVAL
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def failed_pod_creations(self, timeout: float = 90) -> list[str]:
        """FailedCreate events of the runs' Jobs, and Jobs whose Pod never got its workspace."""
        from kubernetes import client

        deadline, missing = time.monotonic() + timeout, list(self.runs)
        while missing and time.monotonic() < deadline:
            missing = [run for run in missing if not _has_workspace(self.admin, run)]
            time.sleep(0.5)
        events = client.CoreV1Api(self.admin).list_namespaced_event(
            self.namespace, field_selector="reason=FailedCreate", _preload_content=False
        )
        failed = [
            f"{e['involvedObject']['name']} x{e.get('count', 1)}: {e['message']}" for e in json_body(events)["items"]
        ]
        return failed + [f"{run.job}: no Pod with a workspace after {timeout}s" for run in missing]


def _has_workspace(admin: Any, run: Run) -> bool:
    return any(ANNOTATION_WORKSPACE in (p["metadata"].get("annotations") or {}) for p in run_pods(admin, run))
