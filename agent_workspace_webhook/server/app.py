"""The TLS port's FastAPI application: POST /mutate (the probes, metrics and the OpenAPI document
are on the plain-HTTP port: server/probes.py). All decisions on an admission live in admit, and
all work on a body (the in-flight limit included) in mutator.py; here only what HTTP has: the
body's limit and deadline.

/mutate is an APIRoute, so FastAPI routes and documents it (the AdmissionReview it takes and
answers), but the route's ASGI app is `Webhook.mutate`, which reads the body and writes the
answer itself: FastAPI's request handling (a Request, dependency solving, validation and
re-encoding) would cost 40% more per request, and /mutate needs none of it (one path, one
method, a bounded body, an answer already encoded). While no middleware is added, WebhookAPI
also skips FastAPI's middleware stack for it (docs/design.md, "Server").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from agent_workspace_webhook.admission.admit import Context, make_context
from agent_workspace_webhook.admission.review import AdmissionReview, AdmissionReviewAnswer
from agent_workspace_webhook.kube.factory import make_store
from agent_workspace_webhook.kube.store import WorkspaceStore
from agent_workspace_webhook.server.connections import BODY_RECEIVED
from agent_workspace_webhook.server.metrics import Metrics
from agent_workspace_webhook.server.mutator import Answer, Mutator
from agent_workspace_webhook.server.tls import ReloadingCertificate
from agent_workspace_webhook.settings import Settings
from agent_workspace_webhook.version import version

TITLE = "agent-workspace-webhook"
# FastAPI's OpenTelemetry hooks look for a provider on every request; the webhook's metrics are
# Prometheus' (server/metrics.py). A deployment that wants traces can pass its own config.
NO_TELEMETRY: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}


REQUEST_ERRORS = "not an AdmissionReview (400), too large (413), too slow (408), another path (404) or method (405)"


class RequestError(BaseModel):
    """A request that is not an admission to answer: HTTP 4xx with this one line (an admission's
    refusal is an AdmissionReview with HTTP 200)."""

    error: str


class BodyTooLarge(Exception):
    pass


class Disconnected(Exception):
    pass


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The body, refusing anything over `limit` bytes before reading it all into memory."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Webhook:
    """What the TLS port serves, apart from FastAPI: /mutate's ASGI handler and the app's lifespan.
    Its `ctx` and `metrics` are the probe app's too (the FastAPI app keeps it as `state.webhook`)."""

    def __init__(self, settings: Settings, ctx: Context, metrics: Metrics, certificate: ReloadingCertificate | None):
        self.settings, self.ctx, self.metrics, self.certificate = settings, ctx, metrics, certificate
        self.mutator = Mutator(ctx, metrics)

    async def mutate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /mutate, as an ASGI app: the bounded body in, the encoded answer out."""
        started = time.perf_counter()
        try:
            answer = await self.answer(scope, receive, started)
        except Disconnected:
            return
        self.metrics.admission(answer.kind, answer.operation, answer.decision, time.perf_counter() - started)
        await respond(send, answer.status, answer.body)

    async def answer(self, scope: Scope, receive: Receive, started: float) -> Answer:
        settings = self.settings
        limit = settings.max_body_bytes
        try:
            if scope.get(BODY_RECEIVED):  # all here already (connections.py): nothing to wait for
                body = await read_body(scope, receive, limit)
            else:  # together with the header deadline (connections.py): a slow client is dropped
                async with asyncio.timeout(settings.request_timeout_seconds):
                    body = await read_body(scope, receive, limit)
        except TimeoutError:
            seconds = settings.request_timeout_seconds
            message = f"request body not received within {seconds}s (WEBHOOK_REQUEST_TIMEOUT_SECONDS)"
            return self.mutator.invalid(408, message)
        except BodyTooLarge:
            return self.mutator.invalid(413, f"request body is larger than {limit} bytes (WEBHOOK_MAX_BODY_BYTES)")
        return await self.mutator.answer(body, started)

    @contextlib.asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        """Start the store's watches and the certificate's reload; stop them on shutdown."""
        self.ctx.store.start()
        watcher = None
        if self.certificate is not None:
            watcher = asyncio.create_task(self.certificate.watch(self.settings.tls_reload_seconds))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            self.ctx.store.close()


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"{COMPONENTS}{model}"}}}


COMPONENTS = "#/components/schemas/"
# /mutate's operation in the OpenAPI document, its shapes named from the models (schemas() below).
# Written out rather than taken from a signature: FastAPI's model fields for a signature import
# pydantic.v1 (25 modules, 2 MB) only to check that the models are not of it.
OPERATION = {
    "requestBody": {"required": True, "content": _json("AdmissionReview")},
    "responses": {
        "200": {"description": "The AdmissionReview answered", "content": _json("AdmissionReviewAnswer")},
        "4XX": {"description": REQUEST_ERRORS, "content": _json("RequestError")},
    },
}


def schemas() -> dict[str, Any]:
    """The OpenAPI components of /mutate's shapes: the request as validated, the answer as sent."""
    from pydantic.json_schema import models_json_schema

    models = [
        (AdmissionReview, "validation"),
        (AdmissionReviewAnswer, "serialization"),
        (RequestError, "serialization"),
    ]
    _, found = models_json_schema(models, ref_template=COMPONENTS + "{model}")  # type: ignore[arg-type]
    defined: dict[str, Any] = found["$defs"]
    return defined


def _admission_review() -> None:  # pragma: no cover
    """An AdmissionReview v1 from the API server (a Pod or CodeRun CREATE), answered with an
    AdmissionReview: allowed, with a base64 JSON patch that mounts the workspace PVC, or refused
    with a code and a message naming the field, the cause and the fix. A body that is not an
    AdmissionReview is a 400; one too large a 413; one too slow a 408."""
    raise NotImplementedError("documents /mutate; Webhook.mutate answers it")


class MutateRoute(APIRoute):
    """POST /mutate: documented by `_admission_review` and OPERATION, answered by `handler`."""

    def __init__(self, handler: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        super().__init__(
            "/mutate",
            _admission_review,
            methods=["POST"],
            name="mutate",
            summary="Admit a Pod or CodeRun, with its workspace",
            response_model=None,
            openapi_extra=OPERATION,
        )
        self.app = handler


class WebhookAPI(FastAPI):
    """The TLS port's FastAPI app. While no middleware has been added, POST /mutate goes from here
    straight to its route's handler, as the router would send it: FastAPI's middleware stack
    (error, telemetry, body-limit, exception and exit-stack layers, then the router's match) adds
    nothing to an answer the handler always makes itself, and cost a fifth of a request. Add a
    middleware and /mutate goes through the whole stack like every other route."""

    mutate: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.mutate is not None
            and scope["type"] == "http"
            and scope["path"] == "/mutate"
            and scope["method"] == "POST"
            and not self.user_middleware
        ):
            await self.mutate(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Other paths and methods: a specific error, in the shape of /mutate's own."""
    assert isinstance(exc, HTTPException)
    message = {
        404: "not found: the webhook answers POST /mutate only",
        405: "method not allowed: /mutate takes POST",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)


def create_app(
    settings: Settings,
    store: WorkspaceStore | None = None,
    certificate: ReloadingCertificate | None = None,
) -> FastAPI:
    """The TLS port's FastAPI app; `store` defaults to the one the settings name. A `certificate`
    is watched for rotation while the app runs. No OpenAPI or docs here: the probe port has them."""
    metrics = Metrics()
    ctx = make_context(settings, store if store is not None else make_store(settings, metrics.kube_call))
    metrics.count_workspaces(ctx.store.census)
    if certificate is not None:
        metrics.certificate_expiry(lambda: certificate.not_after)
    webhook = Webhook(settings, ctx, metrics, certificate)
    app = WebhookAPI(
        title=TITLE,
        version=version(),
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=webhook.lifespan,
        exception_handlers={HTTPException: _http_error},
        telemetry=NO_TELEMETRY,  # type: ignore[arg-type]
    )
    app.state.webhook = webhook
    app.router.routes.append(MutateRoute(webhook.mutate))
    app.mutate = webhook.mutate
    return app
