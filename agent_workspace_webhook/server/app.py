"""The HTTP adaptor: /mutate, alone on the TLS port (the probes and metrics are on their own port:
server/probes.py), as a bare ASGI app. All decisions on an admission live in admit, and all work
on a body (the in-flight limit included) in mutator.py; here only what HTTP has: the body's limit
and deadline.

No framework here: FastAPI's routing and middleware stack cost about a third of each request
under load (bench/README.md), and /mutate needs none of it: one path, one method, a bounded body.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from agent_workspace_webhook.admission.admit import Context, make_context
from agent_workspace_webhook.kube.factory import make_store
from agent_workspace_webhook.kube.store import WorkspaceStore
from agent_workspace_webhook.server.metrics import Metrics
from agent_workspace_webhook.server.mutator import Answer, Mutator
from agent_workspace_webhook.server.tls import ReloadingCertificate
from agent_workspace_webhook.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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


class WebhookApp:
    """The ASGI app of the TLS port; its `ctx` and `metrics` are the probe app's too."""

    def __init__(self, settings: Settings, ctx: Context, metrics: Metrics, certificate: ReloadingCertificate | None):
        self.settings, self.ctx, self.metrics, self.certificate = settings, ctx, metrics, certificate
        self.mutator = Mutator(ctx, metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] != "http":
            return
        elif scope["path"] != "/mutate":
            await respond(send, 404, b'{"error":"not found: the webhook answers POST /mutate only"}')
        elif scope["method"] != "POST":
            await respond(send, 405, b'{"error":"method not allowed: /mutate takes POST"}')
        else:
            await self.mutate(scope, receive, send)

    async def mutate(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            answer = await self.answer(scope, receive, started)
        except Disconnected:
            return
        self.metrics.admission(answer.kind, answer.operation, answer.decision, time.perf_counter() - started)
        await respond(send, answer.status, answer.body)

    async def answer(self, scope: Scope, receive: Receive, started: float) -> Answer:
        settings = self.settings
        try:
            # Together with the header deadline (server/connections.py): a slow client is dropped.
            async with asyncio.timeout(settings.request_timeout_seconds):
                body = await read_body(scope, receive, settings.max_body_bytes)
        except TimeoutError:
            seconds = settings.request_timeout_seconds
            message = f"request body not received within {seconds}s (WEBHOOK_REQUEST_TIMEOUT_SECONDS)"
            return self.mutator.invalid(408, message)
        except BodyTooLarge:
            limit = settings.max_body_bytes
            return self.mutator.invalid(413, f"request body is larger than {limit} bytes (WEBHOOK_MAX_BODY_BYTES)")
        return await self.mutator.answer(body, started)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start the store's watches and the certificate's reload; stop them on shutdown."""
        watcher = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.ctx.store.start()
                if self.certificate is not None:
                    watcher = asyncio.create_task(self.certificate.watch(self.settings.tls_reload_seconds))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                self.ctx.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    settings: Settings,
    store: WorkspaceStore | None = None,
    certificate: ReloadingCertificate | None = None,
) -> WebhookApp:
    """The webhook's ASGI app; `store` defaults to the one the settings name. A `certificate`
    is watched for rotation while the app runs."""
    metrics = Metrics()
    ctx = make_context(settings, store if store is not None else make_store(settings, metrics.kube_call))
    metrics.count_workspaces(ctx.store.census)
    return WebhookApp(settings, ctx, metrics, certificate)
