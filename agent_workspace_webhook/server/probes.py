"""The plain-HTTP port beside the TLS one, a FastAPI app of its own: /healthz, /readyz and /metrics
for kubelet and Prometheus, which have no client certificate, and the OpenAPI document of both
ports (/openapi.json, /docs). /mutate is never served here, only described."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response

from agent_workspace_webhook.server.app import NO_TELEMETRY, TITLE, Webhook, schemas
from agent_workspace_webhook.version import version

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_probe_app(webhook_app: FastAPI) -> FastAPI:
    """The probe port's app for the TLS port's `webhook_app` (its store and metrics)."""
    webhook: Webhook = webhook_app.state.webhook
    ctx, metrics = webhook.ctx, webhook.metrics
    app = FastAPI(title=TITLE, version=version(), redoc_url=None, telemetry=NO_TELEMETRY)  # type: ignore[arg-type]

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", summary="Readiness: the Kubernetes API answers and the watch caches are synced")
    async def readyz() -> Response:
        problem = await ctx.store.check_ready()
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=503)
        degraded = ctx.store.degraded()  # still ready: every run is admitted, one thing works less
        return JSONResponse({"status": "ready"} if degraded is None else {"status": "ready", "degraded": degraded})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        # Every label is from a fixed set (server/metrics.py), so this stays small and quick.
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        """One document for both ports: /mutate (TLS) and the probes (here)."""
        if app.openapi_schema is None:
            routes = [*webhook_app.routes, *app.routes]
            document = get_openapi(title=TITLE, version=app.version, routes=routes)
            document.setdefault("components", {}).setdefault("schemas", {}).update(schemas())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
