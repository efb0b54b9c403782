"""One admission's Python cost, without HTTP: `Mutator.answer()` (parse the review, admit, log
one JSON line, encode the answer) on the (b) review of bench.py, an agent Pod whose workspace
exists, with the in-memory store. Prints microseconds per admission (the median of repeats)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from agent_workspace_webhook import logs
from agent_workspace_webhook.admission.context import make_context
from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.rules.pvc import PvcSpec, pvc_manifest
from agent_workspace_webhook.server.metrics import Metrics
from agent_workspace_webhook.server.mutator import Mutator
from agent_workspace_webhook.settings import load_settings
from agent_workspace_webhook.testing.objects import controller_pod, review

NAMESPACE = "bench"


def body() -> bytes:
    pod = controller_pod("hot", "5dlabs-rex", generate_name="bench-")
    return json.dumps(
        review(pod, namespace=NAMESPACE, user="system:serviceaccount:kube-system:job-controller")
    ).encode()


def mutator() -> Mutator:
    store = MemoryStore()
    manifest = pvc_manifest("workspace-hot-rex", NAMESPACE, {}, PvcSpec("1Gi", ["ReadWriteOnce"]))
    store.pvcs[(NAMESPACE, "workspace-hot-rex")] = {**manifest, "status": {"phase": "Bound"}}
    return Mutator(make_context(load_settings(store="memory"), store), Metrics())


async def measure(calls: int, repeats: int) -> list[float]:
    answer, request = mutator(), body()
    first = await answer.answer(request, time.perf_counter())
    assert first.decision == "patched", first
    per_call = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            await answer.answer(request, time.perf_counter())
        per_call.append((time.perf_counter() - started) / calls * 1e6)
    return per_call


def python_us_per_admission(calls: int = 2000, repeats: int = 7) -> float:
    # The log line is formatted and written as in production (INFO, JSON), to /dev/null.
    with Path(os.devnull).open("w") as devnull:
        logs.configure("INFO", devnull)
        return statistics.median(asyncio.run(measure(calls, repeats)))


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print(f"python_us_per_admission={python_us_per_admission(500 if quick else 2000):.1f}")
