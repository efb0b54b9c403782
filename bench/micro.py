"""One admission's Python cost, without HTTP: `Mutator.answer()` (parse the review, admit, log
one JSON line, encode the answer) on the (b) review of bench.py, an agent Pod whose workspace
exists, with the in-memory store, on uvloop as `serve` runs. Prints microseconds per admission
(CPU time, the median of repeats).

With --http, the same review as an ASGI request in-process, no sockets or TLS: through the bare
handler (b0, bare.py) and through the FastAPI app (b), alternating in one run; their ratio is
what FastAPI's router and middleware add to /mutate's Python."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from agent_workspace_webhook import logs
from agent_workspace_webhook.admission.context import make_context
from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.rules.pvc import PvcSpec, pvc_manifest
from agent_workspace_webhook.server.app import create_app
from agent_workspace_webhook.server.metrics import Metrics
from agent_workspace_webhook.server.mutator import Mutator
from agent_workspace_webhook.settings import load_settings
from agent_workspace_webhook.testing.objects import controller_pod, review

NAMESPACE = "bench"
T = TypeVar("T")
# An ASGI application as this file calls it: (b0)'s Bare takes its scope as a plain dict.
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def body() -> bytes:
    pod = controller_pod("hot", "5dlabs-rex", generate_name="bench-")
    return json.dumps(
        review(pod, namespace=NAMESPACE, user="system:serviceaccount:kube-system:job-controller")
    ).encode()


def store() -> MemoryStore:
    hot = MemoryStore()
    manifest = pvc_manifest("workspace-hot-rex", NAMESPACE, {}, PvcSpec("1Gi", ["ReadWriteOnce"]))
    hot.pvcs[(NAMESPACE, "workspace-hot-rex")] = {**manifest, "status": {"phase": "Bound"}}
    return hot


def mutator() -> Mutator:
    return Mutator(make_context(load_settings(store="memory"), store()), Metrics())


async def measure_http(calls: int, repeats: int) -> dict[str, list[float]]:
    """Microseconds per POST /mutate through (b0) and (b), in-process, alternating."""
    from bare import Bare

    from agent_workspace_webhook.server.connections import BODY_RECEIVED

    request = body()
    app = create_app(load_settings(store="memory"), store())
    apps: dict[str, Asgi] = {"b0": Bare(app), "b": app}
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(request)).encode())]
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "raw_path": b"/mutate",
        "root_path": "",
    }
    scope |= {"query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "https"}
    scope[BODY_RECEIVED] = True  # as serve's connection guard marks a body that came with its headers
    message = {"type": "http.request", "body": request, "more_body": False}
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return message

    async def send(sent: dict[str, Any]) -> None:
        if sent["type"] == "http.response.start":
            statuses.add(sent["status"])

    per_call: dict[str, list[float]] = {name: [] for name in apps}
    for repeat in range(repeats + 1):  # the first round warms up
        for name, asgi in apps.items():
            started = time.process_time()
            for _ in range(calls):
                await asgi(dict(scope), receive, send)
                await asyncio.sleep(0)  # a turn of the loop, as between requests (timers, the log's flush)
            if repeat:
                per_call[name].append((time.process_time() - started) / calls * 1e6)
    assert statuses == {200}, statuses
    return per_call


async def measure(calls: int, repeats: int) -> list[float]:
    answer, request = mutator(), body()
    first = await answer.answer(request, time.perf_counter())
    assert first.decision == "patched", first
    per_call = []
    for _ in range(repeats):
        # CPU time, not wall time: on a shared machine another process's turn is not ours.
        started = time.process_time()
        for _ in range(calls):
            await answer.answer(request, time.perf_counter())
        per_call.append((time.process_time() - started) / calls * 1e6)
    return per_call


def on_uvloop(work: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


def python_us_per_admission(calls: int = 2000, repeats: int = 7) -> float:
    # The log line is formatted and written as in production (INFO, JSON), to /dev/null.
    with Path(os.devnull).open("w") as devnull:
        logs.configure("INFO", devnull)
        return statistics.median(on_uvloop(measure(calls, repeats)))


def http_us_per_request(calls: int = 1000, repeats: int = 15) -> tuple[float, float, float]:
    """(b0) and (b) microseconds per request, and the median of their ratios round by round (the
    machine's other load drifts between rounds, less within one)."""
    with Path(os.devnull).open("w") as devnull:
        logs.configure("INFO", devnull)
        us = on_uvloop(measure_http(calls, repeats))
    ratios = [b0 / b for b0, b in zip(us["b0"], us["b"], strict=True)]
    return statistics.median(us["b0"]), statistics.median(us["b"]), statistics.median(ratios)


if __name__ == "__main__":
    calls = 500 if "--quick" in sys.argv else 2000
    if "--http" in sys.argv:
        b0, b, ratio = http_us_per_request(calls // 2)
        print(f"http_us_b0={b0:.1f} http_us_b={b:.1f} ratio_b_over_b0={ratio:.2f}")
    else:
        print(f"python_us_per_admission={python_us_per_admission(calls):.1f}")
