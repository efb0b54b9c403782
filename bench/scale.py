"""Flat as the cluster grows (bench/run --scale): the webhook against a real kube-apiserver that
holds 1,000, 10,000 and 50,000 workspace PVCs, and a burst of 500 new agent runs.

For each size: a fresh webhook process lists and watches them all; reported are its cache's
first sync (the list, from its "cache synced" log line), the time from process start to
/readyz, its RSS once synced, and the admission p50/p99 of a cache hit under wrk. Bytes per
cached workspace come from the RSS difference between the largest and the smallest size.

The burst: 500 agent Pods, each for a workspace of its own, created through kube-apiserver at
once (50 client threads) against two webhook processes sharing one port (SO_REUSEPORT): the
time until all are admitted, the create latency's p50/p99, errors, and PVCs created.

No scheduler or provisioner runs here (the PVCs stay Pending): nothing would provision 50,000
volumes on this machine, and admission is what is measured.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

from agent_workspace_webhook.ops.workspaces import table
from agent_workspace_webhook.testing.env import Environment
from agent_workspace_webhook.testing.kube import json_body
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import review
from agent_workspace_webhook.testing.tools import free_port
from bench import NAMESPACE, pod, rss_and_fds, wrk


class Burst(TypedDict):
    """What `Scale.burst` reports: figures, and the PVCs each webhook process created."""

    runs: int
    wall: float
    p50: float
    p99: float
    errors: int
    pvcs: int
    created: float
    per_process: list[float]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def in_parallel(count: int, work: Callable[[int], Any], threads: int) -> tuple[list[float], int]:
    """Run work(0..count-1) on `threads` threads: each call's seconds, and how many raised."""
    seconds: list[float] = []
    errors = 0

    def one(i: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            work(i)
        except Exception as exc:  # counted and shown, never hidden
            errors += 1
            if errors <= 3:
                print(f"  error: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        seconds.append(time.perf_counter() - started)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return seconds, errors


class Scale:
    def __init__(self) -> None:
        self.env = Environment()
        self.made = 0

    def start(self) -> None:
        from kubernetes import client

        env = self.env.start()
        assert env.workdir is not None
        self.workdir, self.admin = env.workdir, env.admin
        self.core = client.CoreV1Api(self.admin)
        for name in (NAMESPACE, "burst"):
            env.namespace(name)
        body = {
            "metadata": {"name": "workspace-hot-rex"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
        self.core.create_namespaced_persistent_volume_claim(NAMESPACE, body)  # type: ignore[arg-type]
        self.body = self.workdir / "b.json"
        self.body.write_text(json.dumps(review(pod("hot"), namespace=NAMESPACE)))

    def grow_to(self, size: int) -> float:
        """Create workspace PVCs until the API server holds `size`; seconds it took."""

        def create(i: int) -> None:
            body = {
                "metadata": {"name": f"workspace-svc{self.made + i}-rex", "labels": {"agents.platform/agent": "rex"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
            self.core.create_namespaced_persistent_volume_claim(NAMESPACE, body, _preload_content=False)  # type: ignore[arg-type]

        started = time.monotonic()
        _, errors = in_parallel(size - self.made, create, threads=32)
        assert errors == 0, f"{errors} PVC creates failed"
        self.made = size
        return time.monotonic() - started

    def webhook(self, port: int | None = None, reuse_port: bool = False) -> LocalWebhook:
        # The burst's Pods are bare (no CodeRun behind them): create_for=any, the create path alone.
        return self.env.start_webhook({"create_for": "any"}, port=port, reuse_port=reuse_port, timeout=120)

    def measure(self, size: int) -> dict[str, float]:
        started = time.monotonic()
        hook = self.webhook()
        try:
            while hook.get("/readyz")[0] != 200:
                assert time.monotonic() - started < 300, "webhook not ready"
                time.sleep(0.05)
            ready = time.monotonic() - started
            synced = next(
                json.loads(line)
                for line in hook.log().splitlines()
                if '"cache synced"' in line and '"persistentvolumeclaims"' in line
            )
            assert hook.proc is not None
            rss, _ = rss_and_fds(hook.proc.pid)
            run = wrk(hook.port, self.body, connections=16, seconds=5)
            return {
                "pvcs": synced["kept"],
                "sync": synced["seconds"],
                "ready": ready,
                "rss": rss,
                "p50": run["p50"],
                "p99": run["p99"],
                "rps": run["rps"],
                "errors": run["errors"],
            }
        finally:
            hook.stop()

    def burst(self, runs: int = 500, threads: int = 50) -> Burst:
        port = free_port()
        hooks = [self.webhook(port, reuse_port=True) for _ in range(2)]
        try:
            self.env.register(*hooks)

            def create(i: int) -> None:
                self.core.create_namespaced_pod("burst", pod(f"burst{i}"), _preload_content=False)  # type: ignore[arg-type]

            started = time.monotonic()
            seconds, errors = in_parallel(runs, create, threads)
            wall = time.monotonic() - started
            listed = self.core.list_namespaced_persistent_volume_claim("burst", _preload_content=False)
            pvcs = [p["metadata"]["name"] for p in json_body(listed)["items"]]
            created = sum(h.metrics().get("agent_workspace_webhook_pvcs_created_total", 0.0) for h in hooks)
            return {
                "runs": runs,
                "wall": wall,
                "p50": statistics.median(seconds) * 1000,
                "p99": percentile(seconds, 0.99) * 1000,
                "errors": errors,
                "pvcs": len(pvcs),
                "created": created,
                "per_process": [h.metrics().get("agent_workspace_webhook_pvcs_created_total", 0.0) for h in hooks],
            }
        finally:
            for hook in hooks:
                hook.stop()

    def stop(self) -> None:
        self.env.stop()


def main(quick: bool) -> int:
    sizes = [200, 1000] if quick else [1000, 10000, 50000]
    scale = Scale()
    lines = []
    try:
        scale.start()
        for size in sizes:
            grown = scale.grow_to(size)
            print(f"  {size} PVCs in the API server ({grown:.0f} s to create)", file=sys.stderr, flush=True)
            lines.append(scale.measure(size))
        burst = scale.burst(100 if quick else 500)
    finally:
        scale.stop()
    print(
        table(
            ("workspace PVCs", "first sync s", "ready s", "RSS MB", "hit p50 ms", "hit p99 ms", "hit req/s", "errors"),
            [
                (
                    f"{m['pvcs']:.0f}",
                    f"{m['sync']:.2f}",
                    f"{m['ready']:.2f}",
                    f"{m['rss']:.1f}",
                    f"{m['p50']:.2f}",
                    f"{m['p99']:.2f}",
                    f"{m['rps']:.0f}",
                    f"{m['errors']:.0f}",
                )
                for m in lines
            ],
        )
    )
    small, large = lines[0], lines[-1]
    per = (large["rss"] - small["rss"]) * 2**20 / max(large["pvcs"] - small["pvcs"], 1)
    print(f"\nbytes per cached workspace: {per:.0f} (RSS {small['rss']:.1f} -> {large['rss']:.1f} MB)")
    print(
        f"burst: {burst['runs']:.0f} agent Pods for {burst['runs']:.0f} new workspaces at once, two webhook "
        f"processes: all admitted in {burst['wall']:.2f} s, create p50 {burst['p50']:.0f} ms, p99 "
        f"{burst['p99']:.0f} ms, errors {burst['errors']:.0f}, PVCs {burst['pvcs']:.0f} "
        f"(created by the processes: {' + '.join(f'{c:.0f}' for c in burst['per_process'])})"
    )
    return 0 if burst["errors"] == 0 and burst["pvcs"] == burst["runs"] else 1


if __name__ == "__main__":
    sys.exit(main("--quick" in sys.argv))
