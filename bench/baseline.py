"""Scenario (a): the same server stack as the webhook (uvicorn, FastAPI, TLS context, one
process, no access log) answering a fixed AdmissionReview without parsing or logic."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from agent_workspace_webhook.server.tls import ReloadingCertificate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-file", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--answer", required=True, help="file with the AdmissionReview to answer")
    args = parser.parse_args()
    answer = json.dumps(json.loads(Path(args.answer).read_text()), separators=(",", ":")).encode()
    app = FastAPI()

    @app.post("/mutate")
    async def mutate(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)
    config.load()
    config.ssl = ReloadingCertificate(Path(args.cert_file), Path(args.key_file)).context
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
