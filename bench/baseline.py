"""Scenario (a): the bare server stack of `serve` (uvicorn on uvloop with httptools, the same
TLS context, one process, no access log) answering a fixed AdmissionReview: a plain ASGI app
that reads the body and sends fixed bytes, no framework, no parsing, no logic. The fastest this
stack answers on the machine: what /mutate is measured against."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn

from agent_workspace_webhook.server.tls import ReloadingCertificate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-file", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--answer", required=True, help="file with the AdmissionReview to answer")
    args = parser.parse_args()
    answer = json.dumps(json.loads(Path(args.answer).read_text()), separators=(",", ":")).encode()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
    }
    body = {"type": "http.response.body", "body": answer}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the whole request body, as /mutate must
            message = await receive()
            more = message.get("more_body", False)
        await send(start)
        await send(body)

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    config.load()
    config.ssl = ReloadingCertificate(Path(args.cert_file), Path(args.key_file)).context
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
