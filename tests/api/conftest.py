from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.server.app import create_app
from agent_workspace_webhook.server.probes import create_probe_app
from agent_workspace_webhook.settings import load_settings

MakeClient = Callable[..., tuple[TestClient, MemoryStore]]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """A TestClient over an app with an in-memory store; keyword arguments are settings."""
    clients: list[TestClient] = []

    def make(store: MemoryStore | None = None, **settings: Any) -> tuple[TestClient, MemoryStore]:
        store = store if store is not None else MemoryStore()
        client = TestClient(create_app(load_settings(store="memory", **settings), store))
        clients.append(client)
        return client, store

    yield make
    for client in clients:
        client.close()


def mutate(http: TestClient, body: dict[str, Any] | bytes) -> dict[str, Any]:
    """POST an AdmissionReview (a dict, or a file's bytes) to /mutate: the AdmissionReview answered,
    which must come with HTTP 200 (a denial is in the answer, never in the HTTP status)."""
    if isinstance(body, bytes):
        response = http.post("/mutate", content=body, headers={"content-type": "application/json"})
    else:
        response = http.post("/mutate", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()
    return answer


def probes(http: TestClient) -> TestClient:
    """A client of the probe port's app (/healthz, /readyz, /metrics) beside this /mutate client."""
    assert isinstance(http.app, FastAPI)
    return TestClient(create_probe_app(http.app))


def metric(http: TestClient, name: str) -> float:
    """A sample's value from the probe port's /metrics (0 when it is not there yet)."""
    for line in probes(http).get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def client(make_client: MakeClient) -> tuple[TestClient, MemoryStore]:
    return make_client()
