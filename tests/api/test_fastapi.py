"""The webhook is a FastAPI application: /mutate documented in the OpenAPI document (served on the
probe port only), and extensible the usual way (a route, a middleware) without losing /mutate."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_workspace_webhook.admission.review import AdmissionReview, AdmissionReviewAnswer
from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.testing import job_pod, review
from tests.api.conftest import MakeClient, mutate, probes

Client = tuple[TestClient, MemoryStore]


def test_both_ports_are_fastapi_apps_and_only_the_probe_port_documents(client: Client) -> None:
    http, _ = client
    assert isinstance(http.app, FastAPI)
    assert http.get("/openapi.json").status_code == 404 and http.get("/docs").status_code == 404
    probe = probes(http)
    assert isinstance(probe.app, FastAPI)
    document = probe.get("/openapi.json").json()
    assert set(document["paths"]) == {"/mutate", "/healthz", "/readyz", "/metrics"}
    post = document["paths"]["/mutate"]["post"]
    request = post["requestBody"]["content"]["application/json"]["schema"]
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert request == {"$ref": "#/components/schemas/AdmissionReview"}
    assert answer == {"$ref": "#/components/schemas/AdmissionReviewAnswer"}
    assert {"AdmissionReview", "AdmissionRequest", "AdmissionReviewAnswer", "AdmissionResponse"} <= set(
        document["components"]["schemas"]
    )
    assert probe.get("/docs").status_code == 200


def test_what_mutate_takes_and_answers_fits_the_documented_models(client: Client) -> None:
    http, _ = client
    body = review(job_pod())
    AdmissionReview.model_validate(body)
    answer = AdmissionReviewAnswer.model_validate(mutate(http, body))
    assert answer.response.allowed and answer.response.patch_type == "JSONPatch" and answer.response.patch


def test_a_platform_team_adds_a_route_and_a_middleware(make_client: MakeClient) -> None:
    http, _ = make_client()
    app = http.app
    assert isinstance(app, FastAPI)
    seen: list[str] = []

    @app.get("/team")
    async def team() -> dict[str, str]:
        return {"team": "platform"}

    @app.middleware("http")
    async def tag(request: Request, call_next: Any) -> Response:
        seen.append(request.url.path)
        response: Response = await call_next(request)
        response.headers["x-team"] = "platform"
        return response

    class Pure:  # an ASGI middleware, the cheaper kind
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.append("pure " + scope["path"])
            await self.inner(scope, receive, send)

    app.add_middleware(Pure)
    with TestClient(app) as extended:
        assert extended.get("/team").json() == {"team": "platform"}
        response = extended.post("/mutate", json=review(job_pod()))
        assert response.status_code == 200 and response.headers["x-team"] == "platform"
        assert response.json()["response"]["allowed"] is True
    assert seen == ["pure /team", "/team", "pure /mutate", "/mutate"]


def test_mutate_answers_alike_straight_and_through_the_whole_stack(make_client: MakeClient) -> None:
    """Without middleware /mutate skips FastAPI's stack (app.WebhookAPI); with one it goes through
    it: the same review gets the same answer, headers and status either way."""
    body = review(job_pod(), uid="same-uid")
    straight, _ = make_client()
    layered, _ = make_client()
    assert isinstance(layered.app, FastAPI)
    layered.app.add_middleware(PassThrough)
    answers = [http.post("/mutate", json=body) for http in (straight, layered)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json() and answers[0].json()["response"]["patch"]
    assert answers[0].headers == answers[1].headers
    for http in (straight, layered):
        bad = http.post("/mutate", content=b"{not json")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]


class PassThrough:
    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope, receive, send)


def test_building_both_apps_imports_nothing_the_serving_path_does_not_use() -> None:
    """FastAPI's model fields for a documented signature import pydantic.v1 only to rule it out:
    /mutate's document is written out (app.OPERATION), so a replica never loads it; cryptography
    is for throw-away certificates only (serve, without --cert-file)."""
    script = (
        "import sys\n"
        "import agent_workspace_webhook.server.serve\n"
        "from agent_workspace_webhook.kube.memory import MemoryStore\n"
        "from agent_workspace_webhook.server.app import create_app\n"
        "from agent_workspace_webhook.server.probes import create_probe_app\n"
        "from agent_workspace_webhook.settings import load_settings\n"
        "create_probe_app(create_app(load_settings(store='memory'), MemoryStore())).openapi()\n"
        "unused = ('pydantic.v1', 'cryptography', 'agent_workspace_webhook.testing')\n"
        "print(sorted(m for m in sys.modules if m.startswith(unused)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout
