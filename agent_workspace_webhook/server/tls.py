"""The serving certificate and, for mutual TLS, the CA that callers' certificates must chain to;
all reloaded when their files change (a rotated Secret) without a restart.

The listening SSLContext never changes: on every handshake its SNI callback (which OpenSSL runs
for every ClientHello, with or without a server name) switches the connection to the newest
context built from the files. Open connections keep what they had. A half-written rotation (new
certificate, old key) fails to build and is retried on the next check, so serving never stops.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent_workspace_webhook import logs
from agent_workspace_webhook.server.expiry import not_after


def _fingerprint(paths: Iterable[Path]) -> tuple[tuple[int, int, int], ...]:
    # stat() follows the ..data symlink that kubelet swaps when a Secret volume is updated
    return tuple((s.st_mtime_ns, s.st_ino, s.st_size) for s in (p.stat() for p in paths))


class ReloadingCertificate:
    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None = None) -> None:
        self.cert_file, self.key_file, self.client_ca_file = cert_file, key_file, client_ca_file
        self._files = [cert_file, key_file, *([client_ca_file] if client_ca_file else [])]
        # Before loading: files replaced meanwhile differ from it, and are loaded at the next check.
        self._seen = _fingerprint(self._files)
        # not_after: the notAfter (seconds since the epoch) of the certificate new handshakes get.
        self.current, self.not_after = self._load()
        self.reloads = 0
        # What the server listens with: its verify mode holds for every connection, the
        # certificate and trusted CAs come from `current`.
        self.context = self._build()
        self.context.sni_callback = self._select

    @property
    def requires_client_certificate(self) -> bool:
        return self.client_ca_file is not None

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=self.client_ca_file)
        return context

    def _load(self) -> tuple[ssl.SSLContext, float]:
        context = self._build()
        return context, not_after(self.cert_file.read_bytes())

    def _select(self, connection: ssl.SSLObject, server_name: str | None, listening: ssl.SSLContext) -> None:
        if connection.context is not self.current:
            connection.context = self.current

    def reload_if_changed(self) -> bool:
        """Build a new context if the files changed; True when it is in use for new handshakes."""
        try:
            current = _fingerprint(self._files)
        except OSError:
            return False  # mid-rotation: a file is briefly missing
        if current == self._seen:
            return False
        try:
            context, expires = self._load()
        except (ssl.SSLError, OSError, ValueError) as exc:
            logs.logger().warning(
                "certificate reload failed; still serving the previous one",
                extra={"fields": {"cert_file": str(self.cert_file), "error": str(exc)}},
            )
            return False
        self.current, self.not_after, self._seen = context, expires, current
        self.reloads += 1
        logs.logger().info("certificate reloaded", extra={"fields": {"cert_file": str(self.cert_file)}})
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()


def peer_names(peercert: dict[str, Any] | None) -> set[str]:
    """The common names and subject alternative names of a verified client certificate."""
    if not peercert:
        return set()
    names = {value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value for kind, value in peercert.get("subjectAltName", ()) if kind in ("DNS", "IP Address", "URI")}
    return names
