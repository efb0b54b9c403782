"""Runs made as the platform makes them (a CodeRun; the platform controller's twin makes its Job,
whose Pod the Job controller creates), one every 200 ms in a thread, while something happens to
the webhook; then the count of what failed: CodeRun creations refused, and Pod creations the Job
controller reported failed (its FailedCreate events), and Jobs left without a Pod that has its
workspace."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE
from agent_workspace_webhook.testing.kube import json_body
from agent_workspace_webhook.testing.runs import Run, current, run_pods, submit

from .conftest import ready_replicas, replica_names, wait_rolled_out

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
                submit(self.admin, self.namespace, f"svc{n % 4}", f"run-{n}", githubApp=APPS[n % len(APPS)])
                self.runs.append(Run(self.namespace, f"run-{n}", ""))
            except ApiException as exc:
                self.refused.append(f"run-{n}: {exc.status} {exc.body}")
            next_at += INTERVAL
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def failed_pod_creations(self, timeout: float = 90) -> list[str]:
        """FailedCreate events of the runs' Jobs, and Jobs whose Pod never got its workspace."""
        from kubernetes import client

        deadline = time.monotonic() + timeout
        missing = [current(self.admin, run, timeout) for run in self.runs]  # each with its Job
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


def counted(traffic: Traffic, what: str) -> list[str]:
    """Every failure of the traffic (refused runs, failed Pod creations), the counts printed."""
    failed = traffic.failed_pod_creations()
    print(f"{what}: {len(traffic.runs)} runs made, {len(traffic.refused)} refused, {len(failed)} failed Pod creations")
    return traffic.refused + failed


def replaced_under_traffic(env: Any, namespace: str, what: str, change: Callable[[], object]) -> None:
    """`change()` while runs are made: both replicas replaced by new Ready ones, no run failed;
    returns once the old replicas are gone. Until then an old one, in its preStop sleep, still
    answers on the API server's open connections, with the old settings."""
    before = {pod["metadata"]["name"] for pod in ready_replicas(env)}
    with Traffic(env.admin, namespace) as traffic:
        time.sleep(2)
        change()
        seconds = wait_rolled_out(env)
        time.sleep(3)
    print(f"{what}: two new Ready replicas in {seconds:.1f} s")
    after = {pod["metadata"]["name"] for pod in ready_replicas(env)}
    assert len(after) == 2 and not after & before
    assert counted(traffic, what) == []
    deadline = time.monotonic() + 90
    while before & replica_names(env):
        assert time.monotonic() < deadline, f"old replicas {sorted(before & replica_names(env))} still there after 90 s"
        time.sleep(0.5)
