"""No caller can lock the API server out (issue 23): 200 and 800 clients that trickle request
headers and reconnect the moment they are dropped hold the default webhook's connections
(WEBHOOK_MAX_CONNECTIONS=200), while a run is created through the API server every second.
Every run must be admitted and get its workspace: at the cap the webhook drops a connection
that never served a request to make room for the API server's (server/connections.py)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import create, denial, pvcs
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import run_pod

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUNS = 12
DROPPED = 'agent_workspace_webhook_connections_refused_total{reason="dropped"}'


@pytest.mark.parametrize("clients", [200, 800])
def test_trickling_clients_cannot_lock_the_api_server_out(cluster: Environment, namespace: str, clients: int) -> None:
    hook = cluster.default
    assert hook is not None
    dropped_before = hook.metrics().get(DROPPED, 0.0)
    seconds = RUNS + 10
    command = [sys.executable, "-m", "tests.e2e.trickle", str(hook.port), str(hook.certs.ca)]
    command += ["--clients", str(clients), "--seconds", str(seconds), "--source", "127.0.0.2"]
    pressure = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    failed: list[str] = []
    took: list[float] = []
    try:
        # The clients fill the cap, and the API server's idle connections to the webhook expire
        # (uvicorn closes them after 5 s idle): the first run needs a new connection.
        time.sleep(7)
        for i in range(RUNS):  # a run a second: its CodeRun, then its Pod, each admitted by the webhook
            started = time.monotonic()
            try:
                pod, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, f"press{i}", "5dlabs-rex"))
                if claim(pod) != f"workspace-press{i}-rex":
                    failed.append(f"run {i}: claim {claim(pod)}")
            except ApiException as exc:
                failed.append(f"run {i}: {denial(exc)}")
            took.append(time.monotonic() - started)
            time.sleep(max(0.0, 1 - took[-1]))
        out, _ = pressure.communicate(timeout=seconds + 30)  # it stops by itself
    finally:
        if pressure.poll() is None:
            pressure.kill()
            pressure.wait(10)
    load = json.loads(out)
    dropped = hook.metrics().get(DROPPED, 0.0) - dropped_before
    print(
        f"\n{clients} trickling clients: {load['connects']} connections made ({load['refused']} failed), "
        f"{dropped:.0f} dropped to make room; {RUNS} runs, {len(failed)} failed; run creation median "
        f"{statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms"
    )
    assert failed == []
    assert load["connects"] >= clients and dropped > 0  # the pressure was real: the cap was reached
    assert {f"workspace-press{i}-rex" for i in range(RUNS)} <= set(pvcs(cluster.admin, namespace))
