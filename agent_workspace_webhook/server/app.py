"""The HTTP adaptor: /mutate, alone on the TLS port (the probes and metrics are on their own port:
server/probes.py). All decisions live in admit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from agent_workspace_webhook import logs
from agent_workspace_webhook.admission.admit import Context, admit, make_context
from agent_workspace_webhook.admission.review import ReviewError, errored, parse_review
from agent_workspace_webhook.kube.client import make_store
from agent_workspace_webhook.kube.store import WorkspaceStore
from agent_workspace_webhook.server.metrics import OTHER, Metrics
from agent_workspace_webhook.server.tls import ReloadingCertificate
from agent_workspace_webhook.settings import Settings


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


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


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    settings: Settings,
    store: WorkspaceStore | None = None,
    certificate: ReloadingCertificate | None = None,
) -> FastAPI:
    """The webhook's ASGI app; `store` defaults to the one the settings name. A `certificate`
    is watched for rotation while the app runs."""
    metrics = Metrics()
    ctx: Context = make_context(settings, store if store is not None else make_store(settings, metrics.kube_call))
    log = logs.logger()

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
            response, kind, operation, decision = await _answer(request, started, in_flight > settings.max_in_flight)
        finally:
            in_flight -= 1
            metrics.in_flight.dec()
        metrics.admission(kind, operation, decision, time.perf_counter() - started)
        return response

    async def _answer(request: Request, started: float, overloaded: bool) -> tuple[Response, str, str, str]:
        """The HTTP answer, and the kind, operation and decision to count it under."""
        try:
            # Together with the header deadline (server/connections.py): a slow client is dropped.
            async with asyncio.timeout(settings.request_timeout_seconds):
                body = await read_body(request, settings.max_body_bytes)
        except TimeoutError:
            seconds = settings.request_timeout_seconds
            message = f"request body not received within {seconds}s (WEBHOOK_REQUEST_TIMEOUT_SECONDS)"
            return _invalid(408, message), OTHER, OTHER, "invalid"
        except BodyTooLarge:
            message = f"request body is larger than {settings.max_body_bytes} bytes (WEBHOOK_MAX_BODY_BYTES)"
            return _invalid(413, message), OTHER, OTHER, "invalid"
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return _invalid(400, str(exc)), OTHER, OTHER, "invalid"
        uid, kind, operation = review.request.uid, review.request.kind.kind, review.request.operation
        if overloaded:
            message = (
                f"agent-workspace-webhook is already answering {settings.max_in_flight} requests "
                "(WEBHOOK_MAX_IN_FLIGHT); refused at once rather than queued past the API server's "
                "timeout: retry the create, or add replicas"
            )
            log.warning("overloaded", extra={"fields": {"uid": uid, "max_in_flight": settings.max_in_flight}})
            return _json(errored(uid, 429, message).encode()), kind, operation, "error"
        try:
            response, record = await admit(review.request, ctx)
        except Exception:  # a bug must still answer, with a denial the user can report
            log.exception("admission failed", extra={"fields": {"uid": uid}})
            message = f"internal error in agent-workspace-webhook (uid {uid}); see its logs"
            return _json(errored(uid, 500, message).encode()), kind, operation, "error"
        if record.pvc_action == "created":
            metrics.pvcs_created.inc()
        level = logging.WARNING if record.decision == "error" else logging.INFO
        fields = {**record.log_fields(), "duration_ms": round((time.perf_counter() - started) * 1000, 2)}
        log.log(level, "admission", extra={"fields": fields})
        return _json(response.encode()), kind, operation, record.decision

    def _invalid(status: int, message: str) -> Response:
        log.info("rejected", extra={"fields": {"status": status, "message": message}})
        return _problem(status, message)

    # A plain Starlette route: /mutate reads its own body and needs none of FastAPI's request
    # parsing, which costs a noticeable share of each admission.
    app.add_route("/mutate", mutate, methods=["POST"])

    return app
