"""Prometheus metrics, named after controller-runtime's webhook metrics, in a registry of the
app's own (so two apps in one process, as in tests, never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "agent_workspace_webhook"
# Admission latency is dominated by at most a few API calls: buckets from 1 ms to 10 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{PREFIX}_requests_total",
            "Admission requests by kind, operation and outcome (allowed, patched, denied, error, invalid).",
            ["kind", "operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer an admission request, Kubernetes calls included.",
            ["kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight", "Admission requests being answered now.", registry=self.registry
        )
        self.pvcs_created = Counter(
            f"{PREFIX}_pvcs_created_total", "Workspace PVCs this process created.", registry=self.registry
        )
        self.kube_calls = Counter(
            f"{PREFIX}_kube_requests_total",
            "Kubernetes API calls by verb, resource and result code ('timeout', 'unreachable' when none).",
            ["verb", "resource", "code"],
            registry=self.registry,
        )

    def kube_call(self, verb: str, resource: str, code: str) -> None:
        self.kube_calls.labels(verb, resource, code).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
