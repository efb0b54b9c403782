"""The plain-HTTP port beside the TLS one: /healthz, /readyz and /metrics for kubelet and
Prometheus, which have no client certificate. /mutate is never served here."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent_workspace_webhook.admission.admit import Context
from agent_workspace_webhook.server.metrics import Metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_probe_app(ctx: Context, metrics: Metrics) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        problem = await ctx.store.check_ready()
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(_: Request) -> Response:
        # Every label is from a fixed set (server/metrics.py), so this stays small and quick.
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )
