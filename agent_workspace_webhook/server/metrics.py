"""Prometheus metrics, named after controller-runtime's webhook metrics, in a registry of the
app's own (so two apps in one process, as in tests, never share counters).

Every label value comes from a fixed set: the request body is hostile input, and a label taken
from it would let any caller grow the exposition (and each scrape) without bound.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_workspace_webhook.rules.census import Census
from agent_workspace_webhook.version import version

PREFIX = "agent_workspace_webhook"
# Admission latency is dominated by at most a few API calls: buckets from 1 ms to 10 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KINDS = frozenset({"Pod", "CodeRun", "Job", "PersistentVolumeClaim", "PersistentVolume"})
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
DECISIONS = frozenset({"allowed", "patched", "denied", "error", "invalid"})
OTHER = "other"


def bounded(value: str, known: frozenset[str]) -> str:
    """The value itself when it is one we know, else 'other'."""
    return value if value in known else OTHER


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.admissions = Admissions()
        self.registry.register(self.admissions)
        # Prometheus' convention: which build answers, as a label on a constant 1.
        Gauge(f"{PREFIX}_build_info", "The running webhook's version.", ["version"], registry=self.registry).labels(
            version()
        ).set(1)
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight",
            "Admissions under way now (past WEBHOOK_MAX_IN_FLIGHT a request is answered at once with code 429).",
            registry=self.registry,
        )
        # Apart from decision="error" (the Kubernetes API failed, the deadline passed, overload):
        # a count of bugs, as controller-runtime counts a webhook's panics apart.
        self.internal_errors = Counter(
            f"{PREFIX}_internal_errors_total",
            "Admissions answered with code 500 because of a bug (an unexpected exception, logged with its "
            "traceback as 'admission failed').",
            registry=self.registry,
        )
        self.pvcs_created = Counter(
            f"{PREFIX}_pvcs_created_total", "Workspace PVCs this process created.", registry=self.registry
        )
        self.pvcs_grown = Counter(
            f"{PREFIX}_pvcs_grown_total",
            "Existing workspace PVCs whose storage request this process raised (WEBHOOK_GROW_EXISTING).",
            registry=self.registry,
        )
        self.connections_refused = Counter(
            f"{PREFIX}_connections_refused_total",
            "Connections refused or dropped: too many open, each busy (connections), dropped to make room for a "
            "newcomer or for bytes (dropped), too slow (slow), TLS handshake failed or too slow (handshake), client "
            "name (client_name), headers too large (headers_too_large), requests hold too much (pending_bytes).",
            ["reason"],
            registry=self.registry,
        )
        self.kube_calls = Counter(
            f"{PREFIX}_kube_requests_total",
            "Kubernetes API calls by verb, resource and result code ('timeout', 'unreachable' when none).",
            ["verb", "resource", "code"],
            registry=self.registry,
        )

    def refused(self, reason: str) -> None:
        """A connection refused or dropped by server/connections.py (a reason from a fixed set)."""
        self.connections_refused.labels(reason).inc()

    def admission(self, kind: str, operation: str, decision: str, seconds: float) -> None:
        self.admissions.count(
            bounded(kind, KINDS), bounded(operation, OPERATIONS), bounded(decision, DECISIONS), seconds
        )

    def kube_call(self, verb: str, resource: str, code: str) -> None:
        # Called by our own code with our own values (verbs, resources and HTTP codes): bounded.
        self.kube_calls.labels(verb, resource, code).inc()

    def certificate_expiry(self, not_after: Callable[[], float]) -> None:
        """The serving certificate's notAfter: `not_after` returns that of the one in use (loaded
        at start, reloaded on rotation), read at each scrape. Only when serving TLS."""
        Gauge(
            f"{PREFIX}_certificate_expiry_timestamp_seconds",
            "When the serving certificate new connections get expires (its notAfter), in seconds since the epoch.",
            registry=self.registry,
        ).set_function(not_after)

    def count_workspaces(self, census: Callable[[], Census | None]) -> None:
        """Gauges of the workspaces, computed from the watch caches when Prometheus scrapes."""
        self.registry.register(WorkspaceGauges(census))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Admissions(Collector):
    """requests_total{kind,operation,decision} and request_duration_seconds{kind}, counted in plain
    numbers and turned into samples at each scrape. prometheus_client's Counter and Histogram take
    a lock on every inc and observe; here every admission and every scrape run on the one event
    loop, so nothing else touches these numbers meanwhile."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, str], int] = {}
        # kind -> [count per bucket (the last for +Inf), sum of seconds]
        self._latency: dict[str, tuple[list[int], list[float]]] = {}

    def count(self, kind: str, operation: str, decision: str, seconds: float) -> None:
        key = (kind, operation, decision)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(kind)
        if latency is None:
            latency = self._latency[kind] = ([0] * (len(BUCKETS) + 1), [0.0])
        latency[0][bisect.bisect_left(BUCKETS, seconds)] += 1
        latency[1][0] += seconds

    def describe(self) -> list[Metric]:
        return []  # computed at collection; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            f"{PREFIX}_requests",
            "Admission requests by kind, operation and decision (allowed, patched, denied, error, invalid); "
            "kinds and operations the webhook does not handle are counted as 'other'.",
            labels=["kind", "operation", "decision"],
        )
        for key, total in self._requests.items():
            requests.add_metric(list(key), total)
        yield requests
        latency = HistogramMetricFamily(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer an admission request, Kubernetes calls included.",
            labels=["kind"],
        )
        for kind, (counts, seconds) in self._latency.items():
            cumulative = list(itertools.accumulate(counts))
            bounds = [*(str(bound) for bound in BUCKETS), "+Inf"]
            latency.add_metric([kind], list(zip(bounds, cumulative, strict=True)), seconds[0])
        yield latency


class WorkspaceGauges(Collector):
    """The workspace PVCs by state, the current and retained generations, the legacy workspaces
    left, and each watch cache's seconds since its last event: fixed label values only."""

    def __init__(self, census: Callable[[], Census | None]) -> None:
        self._census = census

    def describe(self) -> list[Metric]:
        return []  # computed at collection; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        found = self._census()
        if found is None:  # no watch cache: nothing to count from
            return
        yield _by_label(
            "workspace_pvcs",
            "Workspace PVCs by state (Bound, Pending, Lost; deleting: being deleted).",
            "state",
            found.pvcs,
        )
        generations = GaugeMetricFamily(
            f"{PREFIX}_workspace_generations",
            "Generations of the workspaces: current (in use by runs) and retained (older ones kept to restore).",
            labels=["role"],
        )
        generations.add_metric(["current"], found.current)
        generations.add_metric(["retained"], found.retained)
        yield generations
        yield GaugeMetricFamily(
            f"{PREFIX}_legacy_workspaces", "Shared workspace-{service} PVCs still there.", value=found.legacy
        )
        yield _by_label(
            "cache_idle_seconds",
            "Seconds since each watch cache last heard from the API server (list or watch event, bookmarks included).",
            "cache",
            found.idle_seconds,
        )
        yield _by_label(
            "cache_resource_unserved",
            "1 while a watch cache's resource is not served by the API server (the CodeRun CRD missing: no run "
            "can ask for a fresh workspace), else 0.",
            "cache",
            found.unserved,
        )


def _by_label(name: str, documentation: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    """A gauge family with one label, a sample per value of it."""
    family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=[label])
    for value, number in values.items():
        family.add_metric([value], number)
    return family
