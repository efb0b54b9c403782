"""Scenario (b0): /mutate served as a bare ASGI app, as `serve` answered it before it became a
FastAPI application again (issue 20): the same handler (`Webhook.mutate`), the same stack (uvicorn
on uvloop with httptools, the reloading TLS context, the connection limits, the probe port), but
nothing of FastAPI in front of it. (b)/(b0) in one run is what FastAPI costs /mutate.

    python bench/bare.py serve [the arguments of agent-workspace-webhook serve]
"""

from __future__ import annotations

import sys
from typing import Any

from fastapi import FastAPI

from agent_workspace_webhook import cli
from agent_workspace_webhook.server import app as product


class Bare:
    """POST /mutate straight to the handler; all else (the lifespan, 404s) to the FastAPI app, whose
    `state` and `routes` `serve` and the probe app read."""

    def __init__(self, app: FastAPI) -> None:
        self.app, self.state, self.routes = app, app.state, app.routes
        self.mutate = app.state.webhook.mutate

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/mutate" and scope["method"] == "POST":
            await self.mutate(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def main() -> int:
    made = product.create_app
    product.create_app = lambda *args, **kwargs: Bare(made(*args, **kwargs))  # type: ignore[assignment]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
