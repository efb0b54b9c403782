"""`agent-workspace-webhook serve`: /mutate under uvicorn with TLS (mutual, when a client CA is
set) and connection limits, and the probe port beside it; sockets bound before it says so."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from agent_workspace_webhook import logs
from agent_workspace_webhook.server.tls import ReloadingCertificate
from agent_workspace_webhook.settings import Settings
from agent_workspace_webhook.version import version

# The probe port's requests (GETs, no body) hold little: this bounds what a client can make it hold.
PROBE_PENDING_BYTES = 1 << 20


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
    """/mutate on `port` (TLS unless insecure), the probes and metrics on settings.metrics_port."""
    import uvicorn

    from agent_workspace_webhook.server.accept import gated_loop
    from agent_workspace_webhook.server.app import create_app
    from agent_workspace_webhook.server.connections import guarded
    from agent_workspace_webhook.server.gate import ConnectionLimits, Gate
    from agent_workspace_webhook.server.probes import create_probe_app
    from agent_workspace_webhook.server.reclaim import reclaim

    certificate = _certificate(settings, host, cert_file, key_file, insecure)
    app = create_app(settings, certificate=certificate)
    sock = listen(host, port, reuse_port)
    probe_sock = listen(host, settings.metrics_port, reuse_port) if settings.metrics_port else None
    # Logged once the ports are bound, so that "serving" means connections are being queued.
    logs.logger().info(
        "serving",
        extra={
            "fields": {
                "version": version(),
                "host": host,
                "port": sock.getsockname()[1],
                "metrics_port": probe_sock.getsockname()[1] if probe_sock else None,
                "tls": certificate is not None,
                "client_certificates": bool(certificate and certificate.requires_client_certificate),
                "store": settings.store,
                "naming_mode": settings.naming_mode,
                "namespace_selector": settings.namespace_selector,
            }
        },
    )
    # httptools: the C HTTP parser (h11, pure Python, cost a third of each request).
    config = uvicorn.Config(
        app,
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    config.load()
    if certificate is not None:
        # uvicorn builds a fresh SSLContext from file names; ours is reloaded on rotation instead.
        config.ssl = certificate.context
    limits = ConnectionLimits(
        settings.max_connections,
        settings.request_timeout_seconds,
        settings.max_pending_bytes,
        frozenset(settings.client_names),
    )
    gate = Gate(limits, app.state.webhook.metrics.refused, reclaim)
    config.http_protocol_class = guarded(config.http_protocol_class, gate)
    server = uvicorn.Server(config)
    probes = None
    if probe_sock is not None:
        probe_config = uvicorn.Config(
            create_probe_app(app),
            http="httptools",
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        probe_config.load()
        probe_gate = Gate(ConnectionLimits(64, settings.request_timeout_seconds, PROBE_PENDING_BYTES), lambda _: None)
        probe_config.http_protocol_class = guarded(probe_config.http_protocol_class, probe_gate)
        probes = _Companion(probe_config)
    # Everything loaded so far (the Kubernetes client alone is tens of thousands of objects) lives
    # as long as the process: keep it out of the collector's full passes, which showed up as tail
    # latency under load.
    gc.collect()
    gc.freeze()
    # The TLS port accepts through the gate (accept.py): handshakes count against its cap.
    with asyncio.Runner(loop_factory=gated_loop(gate)) as runner:
        runner.run(_run(server, sock, probes, probe_sock))


class _Companion(uvicorn.Server):
    """The probe server: the main server handles the signals and stops it when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _run(
    server: uvicorn.Server, sock: socket.socket, probes: uvicorn.Server | None, probe_sock: socket.socket | None
) -> None:
    companion = asyncio.create_task(probes.serve(sockets=[probe_sock])) if probes and probe_sock else None
    try:
        await server.serve(sockets=[sock])
    finally:
        if probes is not None and companion is not None:
            probes.should_exit = True
            await companion


def _certificate(
    settings: Settings, host: str, cert_file: str | None, key_file: str | None, insecure: bool
) -> ReloadingCertificate | None:
    log = logs.logger()
    if insecure:
        if cert_file or key_file:
            raise ServeError("--insecure serves plain HTTP: drop --cert-file/--key-file, or drop --insecure")
        if settings.client_ca_file is not None:
            raise ServeError("--insecure serves plain HTTP, which cannot check client certificates: drop one")
        log.warning("serving plain HTTP (--insecure): for local debugging only, an API server will not call it")
        return None
    if bool(cert_file) != bool(key_file):
        raise ServeError("give both --cert-file and --key-file, or neither (throw-away certificates)")
    if cert_file and key_file:
        cert, key = Path(cert_file), Path(key_file)
    else:
        # Only here: cryptography (10 MB, 60 ms at start-up) serves nothing once certificates exist.
        from agent_workspace_webhook.certificates import write_certificates

        files = write_certificates(Path(tempfile.mkdtemp(prefix="agent-workspace-webhook-")), [host, "localhost"])
        cert, key = files.cert, files.key
        log.info("throw-away certificates", extra={"fields": {"ca_file": str(files.ca), "cert_file": str(cert)}})
    for path in (cert, key, *([settings.client_ca_file] if settings.client_ca_file else [])):
        if not path.is_file():
            raise ServeError(f"{path}: no such file")
    try:
        return ReloadingCertificate(cert, key, settings.client_ca_file)
    except (ssl.SSLError, ValueError) as exc:
        raise ServeError(f"cannot load {cert}, {key} or the client CA: {exc}") from None


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
