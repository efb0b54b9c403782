"""`agent-workspace-webhook serve`: the app under uvicorn, on a socket bound before it says so."""

from __future__ import annotations

import gc
import socket
import tempfile
from pathlib import Path

from agent_workspace_webhook import logs
from agent_workspace_webhook.settings import Settings


class ServeError(Exception):
    """Serving cannot start as asked; one line for the terminal."""


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    cert_file: str | None,
    key_file: str | None,
    insecure: bool,
    reuse_port: bool,
) -> None:
    import uvicorn

    from agent_workspace_webhook.ops.certs import write_certificates
    from agent_workspace_webhook.server.app import create_app
    from agent_workspace_webhook.server.tls import ReloadingCertificate

    log = logs.logger()
    certificate: ReloadingCertificate | None = None
    if insecure:
        if cert_file or key_file:
            raise ServeError("--insecure serves plain HTTP: drop --cert-file/--key-file, or drop --insecure")
        log.warning("serving plain HTTP (--insecure): for local debugging only, an API server will not call it")
    else:
        if bool(cert_file) != bool(key_file):
            raise ServeError("give both --cert-file and --key-file, or neither (throw-away certificates)")
        if cert_file and key_file:
            cert, key = Path(cert_file), Path(key_file)
        else:
            files = write_certificates(Path(tempfile.mkdtemp(prefix="agent-workspace-webhook-")), [host, "localhost"])
            cert, key = files.cert, files.key
            log.info("throw-away certificates", extra={"fields": {"ca_file": str(files.ca), "cert_file": str(cert)}})
        for path in (cert, key):
            if not path.is_file():
                raise ServeError(f"{path}: no such file")
        certificate = ReloadingCertificate(cert, key)
    app = create_app(settings, certificate=certificate)
    sock = listen(host, port, reuse_port)
    # Logged once the port is bound, so that "serving" means connections are being queued.
    log.info(
        "serving",
        extra={
            "fields": {
                "host": host,
                "port": sock.getsockname()[1],
                "tls": certificate is not None,
                "store": settings.store,
                "naming_mode": settings.naming_mode,
            }
        },
    )
    config = uvicorn.Config(
        app, log_config=None, access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_seconds
    )
    # Everything loaded so far (the Kubernetes client alone is tens of thousands of objects) lives
    # as long as the process: keep it out of the collector's full passes, which showed up as tail
    # latency under load.
    gc.collect()
    gc.freeze()
    if certificate is not None:
        # uvicorn builds a fresh SSLContext from file names; ours is reloaded on rotation instead.
        config.load()
        config.ssl = certificate.context
    uvicorn.Server(config).run(sockets=[sock])


def listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the socket says it is TCP, and without it Nagle and delayed ACKs add 40 ms to every answer.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several processes on one port, the kernel spreading connections between them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock
