"""The serving certificate rotates under load with zero failed requests (a real `serve`)."""

from __future__ import annotations

import http.client
import shutil
import ssl
import threading
import time
from pathlib import Path

from agent_workspace_webhook.certificates import CertFiles, write_certificates
from agent_workspace_webhook.server.tls import ReloadingCertificate
from agent_workspace_webhook.testing.local_webhook import LocalWebhook, served_answering
from agent_workspace_webhook.testing.tools import free_port

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "examples" / "rex-pod.json").read_bytes()


def _replace(src: Path, dst: Path) -> None:
    """Swap a file in atomically, as kubelet's symlink swap does for a Secret volume."""
    tmp = dst.with_suffix(".tmp")
    shutil.copy(src, tmp)
    tmp.replace(dst)


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def serve(tmp_path: Path, files: CertFiles, **settings: str) -> LocalWebhook:
    """`serve` with the in-memory store on a free port, serving `files`, healthy."""
    env = {"WEBHOOK_STORE": "memory", **{f"WEBHOOK_{k.upper()}": v for k, v in settings.items()}}
    return LocalWebhook(free_port(), env, files, tmp_path / "serve.log").start()


def test_minimum_tls_version_is_1_2(tmp_path: Path) -> None:
    files = write_certificates(tmp_path, ["127.0.0.1"])
    assert ReloadingCertificate(files.cert, files.key).context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_mismatched_pair_is_not_loaded(tmp_path: Path) -> None:
    a = write_certificates(tmp_path / "a", ["127.0.0.1"])
    b = write_certificates(tmp_path / "b", ["127.0.0.1"])
    cert = ReloadingCertificate(a.cert, a.key)
    _replace(b.cert, a.cert)  # new certificate, old key: mid-rotation
    assert cert.reload_if_changed() is False
    _replace(b.key, a.key)
    assert cert.reload_if_changed() is True and cert.reloads == 1


def test_rotation_under_load_drops_nothing(tmp_path: Path) -> None:
    old = write_certificates(tmp_path / "old", ["127.0.0.1"])
    new = write_certificates(tmp_path / "new", ["127.0.0.1"])
    live = tmp_path / "live"
    live.mkdir()
    for name in ("tls.crt", "tls.key"):
        shutil.copy(old.cert.parent / name, live / name)
    trust = tmp_path / "trust.pem"
    trust.write_bytes(old.ca.read_bytes() + new.ca.read_bytes())
    context = ssl.create_default_context(cafile=str(trust))

    hook = serve(tmp_path, CertFiles(old.ca, live / "tls.crt", live / "tls.key"), tls_reload_seconds="0.1")
    port = hook.port
    try:

        def call(conn: http.client.HTTPSConnection) -> bytes:
            return served_answering(conn, BODY)

        kept = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        assert call(kept) == _der(old.cert)

        seen: list[bytes] = []
        failures: list[str] = []
        stop = threading.Event()

        def load() -> None:  # a client that keeps calling on new connections throughout
            for _ in range(2000):
                if stop.is_set():
                    return
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
                try:
                    seen.append(call(conn))
                except Exception as exc:
                    failures.append(repr(exc))
                finally:
                    conn.close()

        client = threading.Thread(target=load)
        client.start()
        while len(seen) < 20 and client.is_alive():
            time.sleep(0.05)
        _replace(new.cert, live / "tls.crt")  # the certificate first: a mismatched pair for a moment
        time.sleep(0.3)
        _replace(new.key, live / "tls.key")
        deadline = time.monotonic() + 15
        while _der(new.cert) not in seen[-5:] and time.monotonic() < deadline and client.is_alive():
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        client.join(timeout=30)

        assert failures == []
        assert seen[0] == _der(old.cert) and seen[-1] == _der(new.cert)
        assert call(kept) == _der(old.cert)  # the connection open before the rotation still works
        kept.close()
        assert "certificate reloaded" in hook.log()
    finally:
        hook.stop()


def test_sigterm_with_an_idle_keep_alive_connection_exits_within_the_grace(tmp_path: Path) -> None:
    files = write_certificates(tmp_path, ["127.0.0.1"])
    hook = serve(tmp_path, files, shutdown_grace_seconds="1")
    proc = hook.proc
    assert proc is not None
    try:
        idle = http.client.HTTPSConnection(
            "127.0.0.1", hook.port, context=ssl.create_default_context(cafile=str(files.ca))
        )
        idle.request("POST", "/mutate", body=b"{}")
        assert idle.getresponse().status == 400
        started = time.monotonic()
        proc.terminate()
        proc.wait(timeout=15)
        assert time.monotonic() - started < 5  # not the event loop's 30 s TLS shutdown wait
        idle.close()
    finally:
        hook.stop()
