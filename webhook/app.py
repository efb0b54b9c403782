"""The HTTP adaptor: /mutate, /healthz, /readyz. All decisions live in admit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from webhook import logs
from webhook.admit import Context, admit, make_context
from webhook.cluster import WorkspaceStore, make_store
from webhook.review import ReviewError, answer, parse_review
from webhook.settings import Settings


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


def create_app(settings: Settings, store: WorkspaceStore | None = None) -> FastAPI:
    """The webhook's ASGI app; `store` defaults to the one the settings name."""
    ctx: Context = make_context(settings, store if store is not None else make_store(settings))
    log = logs.logger()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.store.close()

    app = FastAPI(title="agent-workspace-webhook", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = ctx

    @app.post("/mutate")
    async def mutate(request: Request) -> Response:
        try:
            body = await read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            return _problem(
                413, f"request body is larger than {settings.max_body_bytes} bytes (WEBHOOK_MAX_BODY_BYTES)"
            )
        try:
            review = parse_review(body)
        except ReviewError as exc:
            log.info("rejected", extra={"fields": {"status": 400, "message": str(exc)}})
            return _problem(400, str(exc))
        try:
            outcome = await admit(review.request, ctx)
        except Exception:  # a bug must still answer, with a denial the user can report
            log.exception("admission failed", extra={"fields": {"uid": review.request.uid}})
            message = f"internal error in agent-workspace-webhook (uid {review.request.uid}); see its logs"
            return JSONResponse(answer(review.request.uid, allowed=False, code=500, message=message))
        log.log(
            logging.WARNING if outcome.decision == "error" else logging.INFO,
            "admission",
            extra={"fields": outcome.log_fields()},
        )
        return JSONResponse(outcome.answer)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        problem = await ctx.store.check_ready()
        if problem is not None:
            return _problem(503, problem)
        return JSONResponse({"status": "ready"})

    return app
