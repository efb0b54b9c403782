"""The serving certificate, reloaded when its files change (a rotated Secret) without a restart.

`load_cert_chain` on the live SSLContext swaps the certificate for new handshakes only; open
connections and requests in flight keep theirs. A half-written pair (new certificate, old key)
fails to load and is retried on the next check, so serving never stops.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from agent_workspace_webhook import logs


def _fingerprint(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    # stat() follows the ..data symlink that kubelet swaps when a Secret volume is updated
    return tuple((s.st_mtime_ns, s.st_ino, s.st_size) for s in (p.stat() for p in paths))


class ReloadingCertificate:
    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cert_file, key_file)
        self._seen = _fingerprint(cert_file, key_file)
        self.reloads = 0

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed; True when a new certificate is in use."""
        try:
            current = _fingerprint(self.cert_file, self.key_file)
        except OSError:
            return False  # mid-rotation: a file is briefly missing
        if current == self._seen:
            return False
        try:
            # Try the pair on a scratch context first: a failed load_cert_chain can leave the
            # new certificate in place beside the old key, and the live context must never be.
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert_file, self.key_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            logs.logger().warning(
                "certificate reload failed; still serving the previous one",
                extra={"fields": {"cert_file": str(self.cert_file), "error": str(exc)}},
            )
            return False
        self._seen = current
        self.reloads += 1
        logs.logger().info("certificate reloaded", extra={"fields": {"cert_file": str(self.cert_file)}})
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
