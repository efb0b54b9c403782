"""The HTTP adaptor: /mutate, alone on the TLS port (the probes and metrics are on their own port:
server/probes.py). All decisions live in admit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from agent_workspace_webhook import logs
from agent_workspace_webhook.admission.admit import Context, admit, make_context
from agent_workspace_webhook.admission.review import ReviewError, errored, parse_review
from agent_workspace_webhook.kube.client import make_store
from agent_workspace_webhook.kube.store import WorkspaceStore
from agent_workspace_webhook.server.metrics import OTHER, Metrics
from agent_workspace_webhook.server.tls import ReloadingCertificate
from agent_workspace_webhook.settings import Settings


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing anything over `limit` bytes before reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Answer:
    """What /mutate sends back (status, JSON body), and what the metrics count it under."""

    status: int
    body: bytes
    kind: str = OTHER
    operation: str = OTHER
    decision: str = "invalid"


class Mutator:
    """Everything /mutate does after reading the body: parse, admit, log, encode. Apart from HTTP
    so that bench/micro.py can time one admission's Python cost on its own."""

    def __init__(self, ctx: Context, metrics: Metrics) -> None:
        self.ctx, self.metrics, self.log = ctx, metrics, logs.logger()
        self.max_in_flight = ctx.settings.max_in_flight

    def invalid(self, status: int, message: str) -> Answer:
        self.log.info("rejected", extra={"fields": {"status": status, "message": message}})
        return Answer(status, orjson.dumps({"error": message}))

    async def answer(self, body: bytes, started: float, overloaded: bool = False) -> Answer:
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return self.invalid(400, str(exc))
        uid, kind, operation = review.request.uid, review.request.kind.kind, review.request.operation
        if overloaded:
            message = (
                f"agent-workspace-webhook is already answering {self.max_in_flight} requests "
                "(WEBHOOK_MAX_IN_FLIGHT); refused at once rather than queued past the API server's "
                "timeout: retry the create, or add replicas"
            )
            self.log.warning("overloaded", extra={"fields": {"uid": uid, "max_in_flight": self.max_in_flight}})
            return Answer(200, errored(uid, 429, message).encode(), kind, operation, "error")
        try:
            response, record = await admit(review.request, self.ctx)
        except Exception:  # a bug must still answer, with a denial the user can report
            self.log.exception("admission failed", extra={"fields": {"uid": uid}})
            message = f"internal error in agent-workspace-webhook (uid {uid}); see its logs"
            return Answer(200, errored(uid, 500, message).encode(), kind, operation, "error")
        if record.pvc_action == "created":
            self.metrics.pvcs_created.inc()
        level = logging.WARNING if record.decision == "error" else logging.INFO
        if self.log.isEnabledFor(level):
            fields = {**record.log_fields(), "duration_ms": round((time.perf_counter() - started) * 1000, 2)}
            self.log.log(level, "admission", extra={"fields": fields})
        return Answer(200, response.encode(), kind, operation, record.decision)


def create_app(
    settings: Settings,
    store: WorkspaceStore | None = None,
    certificate: ReloadingCertificate | None = None,
) -> FastAPI:
    """The webhook's ASGI app; `store` defaults to the one the settings name. A `certificate`
    is watched for rotation while the app runs."""
    metrics = Metrics()
    ctx: Context = make_context(settings, store if store is not None else make_store(settings, metrics.kube_call))
    mutator = Mutator(ctx, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.store.start()
        watcher = None
        if certificate is not None:
            watcher = asyncio.create_task(certificate.watch(settings.tls_reload_seconds))
        yield
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        ctx.store.close()

    app = FastAPI(title="agent-workspace-webhook", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx, app.state.metrics = ctx, metrics

    in_flight = 0  # one event loop: a plain counter is exact

    async def mutate(request: Request) -> Response:
        nonlocal in_flight
        started = time.perf_counter()
        in_flight += 1
        metrics.in_flight.inc()
        try:
            answer = await _answer(request, started, in_flight > settings.max_in_flight)
        finally:
            in_flight -= 1
            metrics.in_flight.dec()
        metrics.admission(answer.kind, answer.operation, answer.decision, time.perf_counter() - started)
        return Response(answer.body, status_code=answer.status, media_type="application/json")

    async def _answer(request: Request, started: float, overloaded: bool) -> Answer:
        try:
            # Together with the header deadline (server/connections.py): a slow client is dropped.
            async with asyncio.timeout(settings.request_timeout_seconds):
                body = await read_body(request, settings.max_body_bytes)
        except TimeoutError:
            seconds = settings.request_timeout_seconds
            return mutator.invalid(
                408, f"request body not received within {seconds}s (WEBHOOK_REQUEST_TIMEOUT_SECONDS)"
            )
        except BodyTooLarge:
            limit = settings.max_body_bytes
            return mutator.invalid(413, f"request body is larger than {limit} bytes (WEBHOOK_MAX_BODY_BYTES)")
        return await mutator.answer(body, started, overloaded)

    # A plain Starlette route: /mutate reads its own body and needs none of FastAPI's request
    # parsing, which costs a noticeable share of each admission.
    app.add_route("/mutate", mutate, methods=["POST"])

    return app
