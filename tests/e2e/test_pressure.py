"""No flood of clients locks the API server out or takes the webhook past its memory limit (issues
23 and 30): 200, 800 and 5,000 clients that trickle request headers and reconnect the moment they
are dropped hold the webhook's connections (WEBHOOK_MAX_CONNECTIONS=200), while a run is created
through the API server every second.

The webhook runs under the memory limit the manifests give its container, in a memory cgroup of
its own (as a Pod's limit puts it): had it needed more, the kernel would have killed it. Every
run must be admitted and get its workspace; resident memory stays under 70% of the limit,
descriptors under the cap plus a few, and memory comes back after the flood. At the cap the
webhook drops a connection that never served a request (TLS handshakes included) to make room
for the API server's (server/gate.py, accept.py)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from agent_workspace_webhook.rules.quantity import parse_quantity
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import create, denial, pvcs
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import run_pod
from agent_workspace_webhook.testing.usage import MIB, MemoryLimit, Sampler, usage

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUNS = 12
CAP = 200  # WEBHOOK_MAX_CONNECTIONS' default, as the manifests run it
DROPPED = 'agent_workspace_webhook_connections_refused_total{reason="dropped"}'
# Descriptors beyond those open before the flood and the cap: the listening sockets' accepts in
# flight and the Kubernetes client's connections opened meanwhile.
FDS_SLACK = 8
# What the flood may leave resident once it is over (code paths it loaded, caches it filled).
AFTER_SLACK = 16 * MIB


def container_limit() -> int:
    deployment = yaml.safe_load((ROOT / "manifests/base/deployment.yaml").read_text())
    limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    value = parse_quantity(limit)
    assert value is not None, f"the Deployment's memory limit {limit!r} is not a quantity"
    return int(value)


@pytest.fixture(scope="module")
def limited(cluster: Environment) -> Iterator[tuple[LocalWebhook, MemoryLimit]]:
    """A webhook like the default one, under the container's memory limit, serving admissions."""
    limit = MemoryLimit.beside(
        container_limit(), f"agent-workspace-webhook-{cluster.default.port if cluster.default else 0}"
    )
    if reason := limit.unavailable():
        pytest.skip(f"{reason}: the flood needs the webhook under a real memory limit")
    limit.create()
    hook = None
    try:
        hook = cluster.start_webhook(entry=limit.entry())
        hook.wait_ready()
        cluster.register(hook)
        yield hook, limit
    finally:
        cluster.restore()
        if hook is not None:
            hook.stop()
        limit.remove()


@pytest.mark.parametrize("clients", [200, 800, 5000])
def test_a_flood_of_clients_neither_locks_the_api_server_out_nor_passes_the_memory_limit(
    cluster: Environment, namespace: str, limited: tuple[LocalWebhook, MemoryLimit], clients: int
) -> None:
    hook, limit = limited
    assert hook.proc is not None
    pid = hook.proc.pid
    dropped_before = hook.metrics().get(DROPPED, 0.0)
    before = usage(pid)
    seconds = RUNS + 10
    command = [sys.executable, "-m", "tests.e2e.trickle", str(hook.port), str(hook.ca_file)]
    command += ["--clients", str(clients), "--seconds", str(seconds), "--source", "127.0.0.2"]
    failed: list[str] = []
    took: list[float] = []
    with Sampler(pid) as sampled:
        pressure = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            # The clients fill the cap, and the API server's idle connections to the webhook expire
            # (uvicorn closes them after 5 s idle): the first run needs a new connection.
            time.sleep(7)
            for i in range(RUNS):  # a run a second: its CodeRun, then its Pod, each admitted by the webhook
                started = time.monotonic()
                name = f"press{clients}x{i}"
                try:
                    pod, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, name, "5dlabs-rex"))
                    if claim(pod) != f"workspace-{name}-rex":
                        failed.append(f"run {i}: claim {claim(pod)}")
                except ApiException as exc:
                    failed.append(f"run {i}: {denial(exc)}")
                took.append(time.monotonic() - started)
                time.sleep(max(0.0, 1 - took[-1]))
            out, _ = pressure.communicate(timeout=seconds + 60)  # it stops by itself
        finally:
            if pressure.poll() is None:
                pressure.kill()
                pressure.wait(10)
    time.sleep(3)  # the last dropped connections close; their memory is reclaimed as the crowd leaves
    after = usage(pid)
    load = json.loads(out)
    dropped = hook.metrics().get(DROPPED, 0.0) - dropped_before
    print(
        f"\n{clients} trickling clients: {load['connects']} connections made ({load['refused']} failed), "
        f"{dropped:.0f} dropped to make room; {RUNS} runs, {len(failed)} failed; run creation median "
        f"{statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms; RSS {before.rss / MIB:.0f} -> peak "
        f"{sampled.peak_rss / MIB:.0f} -> {after.rss / MIB:.0f} MiB (limit {limit.limit / MIB:.0f} MiB, cgroup peak "
        f"{limit.peak / MIB:.0f} MiB); fds {before.fds} -> peak {sampled.peak_fds} -> {after.fds}"
    )
    assert hook.proc.poll() is None and limit.oom_kills == 0, "the webhook was killed at its memory limit"
    assert failed == []
    # The pressure was real: every client connected at least once, and the cap was reached.
    assert load["connects"] + load["refused"] >= clients and dropped > 0
    assert {f"workspace-press{clients}x{i}-rex" for i in range(RUNS)} <= set(pvcs(cluster.admin, namespace))
    assert sampled.peak_rss < 0.7 * limit.limit
    assert sampled.peak_fds <= before.fds + CAP + FDS_SLACK
    assert after.rss <= before.rss + AFTER_SLACK, "memory did not come back after the flood"
