"""Load benchmark of /mutate against a real control plane, and its baseline, side by side.

Scenarios, each driven by wrk from a second process over TLS, one server process each (the
count the README recommends: one per pod, scale with replicas):
  (a) baseline: the same server stack answering a fixed AdmissionReview, no parsing or logic
  (f) serve's own stack answering (b)'s first answer again, no admission (fixed.py)
  (b0) (b) served bare: the same /mutate handler with no FastAPI in front (bare.py)
  (b) /mutate, an agent Pod whose PVC exists (the watch-backed cache answers)
  (c) /mutate, a Pod with no workspace volume (not an agent's)
  (d) /mutate, every request a new service, so every admission creates a PVC
and, through kube-apiserver, the time to create a Pod with the webhook registered and without.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent_workspace_webhook.ops.workspaces import table
from agent_workspace_webhook.testing.env import Environment
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import controller_pod, review
from agent_workspace_webhook.testing.tools import free_port
from agent_workspace_webhook.testing.usage import MIB, usage

NAMESPACE = "bench"


# (d)'s reviews name made-up services with no run behind them, thousands of them in one namespace:
# create_for=any measures the create path itself (a verified run adds the GET of its CodeRun, or
# of its Job and CodeRun), and the per-namespace ceiling is lifted so that every one is created.
SETTINGS = {"create_for": "any", "max_workspaces_per_namespace": "1000000"}


def pod(service: str, app: str = "5dlabs-rex", workspace: bool = True) -> dict[str, Any]:
    volume = None if workspace else {"name": "scratch", "emptyDir": {}}  # None: the controller's workspace claim
    return controller_pod(service, app, volume=volume, generate_name="bench-")


def review_body(obj: dict[str, Any]) -> str:
    return json.dumps(review(obj, namespace=NAMESPACE, user="system:serviceaccount:kube-system:job-controller"))


@dataclass
class Result:
    scenario: str
    connections: int
    rps: float
    p50: float
    p99: float
    max: float
    errors: int
    calls_per_admission: float | None
    rss_mb: float


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[match.group(2)]


def wrk(port: int, body: Path, connections: int, seconds: int, unique: bool = False) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    args += ["-s", str(Path(__file__).with_name("post.lua")), f"https://127.0.0.1:{port}/mutate", "--", str(body)]
    if unique:
        args += ["unique", f"r{uuid.uuid4().hex[:6]}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    out = done.stdout
    latency = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)\s*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", out, re.MULTILINE)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    answers = re.search(r"ANSWER_ERRORS (\d+)", out)
    assert latency and p50 and p99 and rps and answers, out
    errors = int(answers.group(1)) + (sum(int(g) for g in socket.groups()) if socket else 0)
    requests = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "max": _ms(latency.group(3)),
        "errors": errors,
        "requests": float(requests.group(1)) if requests else 0.0,
    }


def peak_rss_mb(pid: int) -> float:
    return usage(pid).peak_rss / MIB


def rss_and_fds(pid: int) -> tuple[float, int]:
    now = usage(pid)
    return now.rss / MIB, now.fds


def api_calls(hook: LocalWebhook) -> float:
    return sum(
        value
        for name, value in hook.metrics().items()
        if name.startswith("agent_workspace_webhook_kube_requests_total{") and re.search(r'verb="(get|create)"', name)
    )


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.env = Environment()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.hook: LocalWebhook | None = None

    def start(self) -> None:
        from kubernetes import client

        env = self.env.start()
        assert env.workdir is not None
        self.workdir, self.admin, self.certs = env.workdir, env.admin, env.certs
        self.core = client.CoreV1Api(self.admin)
        env.namespace(NAMESPACE)
        # The log level of production (INFO): each admission's JSON line is part of its cost.
        started = time.monotonic()
        self.hook = env.start_webhook(SETTINGS).wait_ready()
        assert self.hook.proc is not None
        # Cost per replica: from exec to /readyz 200 (imports, caches' first lists), RSS at rest.
        self.ready_seconds = time.monotonic() - started
        self.rest_rss_mb = rss_and_fds(self.hook.proc.pid)[0]
        bare = (str(Path(__file__).with_name("bare.py")),)
        self.bare = env.start_webhook(SETTINGS, entry=bare).wait_ready()
        self.fixed = env.start_webhook(SETTINGS, entry=(str(Path(__file__).with_name("fixed.py")),)).wait_ready()
        # (b)'s workspace exists before the run
        self.core.create_namespaced_persistent_volume_claim(
            NAMESPACE,
            {  # type: ignore[arg-type]
                "metadata": {"name": "workspace-hot-rex"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        )
        time.sleep(0.5)  # let the watch deliver it
        bodies = self.workdir / "bodies"
        bodies.mkdir()
        self.body_b = bodies / "b.json"
        self.body_b.write_text(review_body(pod("hot")))
        self.body_c = bodies / "c.json"
        self.body_c.write_text(review_body(pod("hot", workspace=False)))
        self.body_d = bodies / "d.json"
        self.body_d.write_text(review_body(pod("SERVICE_PLACEHOLDER")))
        answer = httpx.post(self.hook.url, content=self.body_b.read_bytes(), verify=str(self.certs.ca)).json()
        first = httpx.post(self.fixed.url, content=self.body_b.read_bytes(), verify=str(self.certs.ca)).json()
        assert first["response"]["patch"] == answer["response"]["patch"], first  # (f) answers as (b) does
        self.body_a_answer = bodies / "a-answer.json"
        self.body_a_answer.write_text(json.dumps(answer))
        self.baseline_port = free_port()
        log = (self.workdir / "baseline.log").open("wb")
        command = [sys.executable, str(Path(__file__).with_name("baseline.py")), "--port", str(self.baseline_port)]
        command += ["--cert-file", str(self.certs.cert), "--key-file", str(self.certs.key)]
        command += ["--answer", str(self.body_a_answer)]
        self.baseline = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        self.procs.append(self.baseline)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"https://127.0.0.1:{self.baseline_port}/mutate", content=b"{}", verify=str(self.certs.ca))
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "baseline server did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=20)
        self.env.stop()

    def scenario(self, name: str, connections: int, seconds: int) -> Result:
        body, unique = {"b": (self.body_b, False), "c": (self.body_c, False), "d": (self.body_d, True)}.get(
            name, (self.body_b, False)
        )
        hook: LocalWebhook | None = None
        if name == "a":
            port, pid = self.baseline_port, self.baseline.pid
        else:  # (b0) and (f) have processes of their own; (b), (c) and (d) share serve's
            hook = {"b0": self.bare, "f": self.fixed}.get(name, self.hook)
            assert hook is not None and hook.proc is not None
            port, pid = hook.port, hook.proc.pid
        before = api_calls(hook) if hook else 0.0
        run = wrk(port, body, connections, seconds, unique)
        calls = None
        if hook is not None:
            calls = (api_calls(hook) - before) / max(run["requests"], 1)
        return Result(
            name,
            connections,
            run["rps"],
            run["p50"],
            run["p99"],
            run["max"],
            int(run["errors"]),
            calls,
            peak_rss_mb(pid),
        )

    def pod_creation(self, per_arm: int) -> dict[str, list[float]]:
        """Create Pods through kube-apiserver with and without the webhook registered, in
        alternating rounds; milliseconds per create."""
        assert self.hook is not None
        times: dict[str, list[float]] = {"without": [], "with": []}
        for arm in ["without", "with", "without", "with"]:
            if arm == "with":
                self.env.register(self.hook)
            else:
                self.env.unregister()
            for _ in range(per_arm // 2):
                started = time.perf_counter()
                self.core.create_namespaced_pod(NAMESPACE, pod("hot"), _preload_content=False)  # type: ignore[arg-type]
                times[arm].append((time.perf_counter() - started) * 1000)
        return times

    def soak(self, seconds: int, connections: int) -> None:
        assert self.hook is not None and self.hook.proc is not None
        pid = self.hook.proc.pid
        wrk(self.hook.port, self.body_b, connections, 5)  # warm up
        rss0, fds0 = rss_and_fds(pid)
        print(
            f"soak: {seconds}s of (b) at {connections} connections; start RSS {rss0:.1f} MB, {fds0} open fds",
            flush=True,
        )
        samples = []
        left = seconds
        while left > 0:
            chunk = min(30, left)
            run = wrk(self.hook.port, self.body_b, connections, chunk)
            rss, fds = rss_and_fds(pid)
            samples.append((rss, fds, run["rps"], run["errors"]))
            elapsed = seconds - left + chunk
            print(f"  +{elapsed:>4}s {run['rps']:8.0f} req/s, errors {int(run['errors'])}, RSS {rss:.1f} MB, fds {fds}")
            left -= chunk
        rss1, fds1 = rss_and_fds(pid)
        errors = sum(sample[3] for sample in samples)
        growth = f"{rss1 - rss0:+.1f} MB, {fds1 - fds0:+d} fds"
        print(f"soak: end RSS {rss1:.1f} MB, {fds1} open fds ({growth}); errors {errors:.0f}")


COMPARED = ("a", "f", "b0", "b")
ROUNDS = 5


def median_result(runs: list[Result]) -> Result:
    """One scenario's rounds as one row: the median of each figure, the worst max, every error."""

    def median(figure: str) -> float:
        return float(statistics.median(getattr(run, figure) for run in runs))

    calls = [run.calls_per_admission for run in runs if run.calls_per_admission is not None]
    return Result(
        runs[0].scenario,
        runs[0].connections,
        median("rps"),
        median("p50"),
        median("p99"),
        max(run.max for run in runs),
        sum(run.errors for run in runs),
        statistics.median(calls) if calls else None,
        max(run.rss_mb for run in runs),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one concurrency, short runs")
    parser.add_argument("--soak", type=int, metavar="SECONDS", help="steady load on (b) instead, reporting RSS and fds")
    args = parser.parse_args()
    bench = Bench(args.quick)
    try:
        bench.start()
        if args.soak:
            bench.soak(args.soak, connections=16)
            return 0
        concurrencies, seconds, per_arm = ([16], 4, 40) if args.quick else ([4, 16, 64], 10, 200)
        results: list[Result] = []
        for connections in concurrencies:
            # a, f, b0 and b in rounds, back to back: their ratios side by side, and a slow spell
            # of the machine (they come and go here) spoils one round of each, not one scenario.
            rounds: dict[str, list[Result]] = {name: [] for name in COMPARED}
            for _ in range(ROUNDS):
                for name in COMPARED:
                    rounds[name].append(bench.scenario(name, connections, max(2, seconds * 2 // ROUNDS)))
            results += [median_result(runs) for runs in rounds.values()]
            for name in ("c", "d"):
                results.append(bench.scenario(name, connections, seconds))
            print(f"  done at {connections} connections", file=sys.stderr, flush=True)
        pods = bench.pod_creation(per_arm)
    finally:
        bench.stop()

    labels = {
        "a": "(a) baseline",
        "f": "(f) fixed, serve",
        "b0": "(b0) bare /mutate",
        "b": "(b) PVC exists",
        "c": "(c) not an agent",
        "d": "(d) new PVC each",
    }
    header = ("scenario", "conns", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "API calls/adm", "peak RSS MB")
    rows = [
        (
            labels[r.scenario],
            str(r.connections),
            f"{r.rps:.0f}",
            f"{r.p50:.2f}",
            f"{r.p99:.2f}",
            f"{r.max:.1f}",
            str(r.errors),
            "-" if r.calls_per_admission is None else f"{r.calls_per_admission:.2f}",
            f"{r.rss_mb:.1f}",
        )
        for r in results
    ]
    print(table(header, rows))
    by = {(r.scenario, r.connections): r for r in results}
    print()
    for connections in concurrencies:
        a, f, b0, b = (by[(name, connections)] for name in ("a", "f", "b0", "b"))
        print(
            f"at {connections:>3} connections: (b)/(a) throughput {b.rps / a.rps:.2f}, p99 {b.p99 / a.p99:.2f}x; "
            f"(b)/(b0) throughput {b.rps / b0.rps:.2f}, p99 {b.p99 / b0.p99:.2f}x; "
            f"(f)/(a) throughput {f.rps / a.rps:.2f}, p99 {f.p99 / a.p99:.2f}x"
        )
    with_, without = statistics.median(pods["with"]), statistics.median(pods["without"])
    print(
        f"\nPod create through kube-apiserver ({len(pods['with'])} each): median {without:.2f} ms without the "
        f"webhook, {with_:.2f} ms with (+{with_ - without:.2f} ms); p99 {percentile(pods['without'], 0.99):.2f} / "
        f"{percentile(pods['with'], 0.99):.2f} ms"
    )
    b_peak = max(r.rss_mb for r in results if r.scenario == "b")
    print(
        f"serve: ready {bench.ready_seconds:.2f} s after exec, RSS at rest {bench.rest_rss_mb:.1f} MB, "
        f"peak {b_peak:.1f} MB under (b)"
    )
    mid = concurrencies[len(concurrencies) // 2]
    a, f, b0, b = (by[(name, mid)] for name in ("a", "f", "b0", "b"))
    calls = b.calls_per_admission or 0.0
    from micro import python_us_per_admission  # after the servers stopped: nothing else on the CPU

    python_us = python_us_per_admission(500 if args.quick else 2000)
    print(
        f"ratio_b_over_a={b.rps / a.rps:.2f} p99_ratio={b.p99 / a.p99:.2f} ratio_b_over_b0={b.rps / b0.rps:.2f} "
        f"ratio_f_over_a={f.rps / a.rps:.2f} "
        f"api_calls_per_hit={calls:.2f} "
        f"python_us_per_admission={python_us:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
