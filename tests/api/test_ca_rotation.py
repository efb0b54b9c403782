"""The CA's two-step rotation (certs/README.md, Rotation) against a real `serve` that reloads its
certificate files as they are replaced, as kubelet replaces a mounted Secret's: a client trusting
the caBundle of each step reaches the webhook whichever certificate it serves meanwhile. And the
expiry gauge is the notAfter of the certificate served, before and after a reload."""

from __future__ import annotations

import http.client
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from agent_workspace_webhook.certificates import CertFiles
from agent_workspace_webhook.cli import main
from agent_workspace_webhook.testing.controlplane import free_port
from agent_workspace_webhook.testing.local_webhook import LocalWebhook

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "examples" / "rex-pod.json").read_bytes()
EXPIRY = "agent_workspace_webhook_certificate_expiry_timestamp_seconds"


def certs(out: Path, *flags: str) -> bytes:
    """`certs --out OUT FLAGS...`, which must succeed: the caBundle it wrote (ca.crt)."""
    assert main(["certs", "--out", str(out), *flags]) == 0
    return (out / "ca.crt").read_bytes()


def install(pair: Path, live: Path) -> bytes:
    """Swap tls.crt and tls.key of `pair` into `live` (each in one step, as kubelet swaps a
    Secret's files); the certificate, as DER."""
    for name in ("tls.crt", "tls.key"):
        shutil.copy(pair / name, live / f".{name}")
        (live / f".{name}").replace(live / name)
    return ssl.PEM_cert_to_DER_cert((pair / "tls.crt").read_text())


def served(hook: LocalWebhook, ca_bundle: bytes) -> bytes:
    """POST the example review on a new connection by a client trusting `ca_bundle` only; the
    certificate the webhook served, as DER."""
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    connection = http.client.HTTPSConnection("127.0.0.1", hook.port, context=context, timeout=5)
    try:
        connection.request("POST", "/mutate", body=BODY, headers={"content-type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert connection.sock is not None
        der = connection.sock.getpeercert(binary_form=True)
        assert der is not None
        return der
    finally:
        connection.close()


def until_served(hook: LocalWebhook, ca_bundle: bytes, certificate: bytes) -> None:
    """Until the webhook serves `certificate` (it checks its files every 0.1 s here)."""
    deadline = time.monotonic() + 15
    while served(hook, ca_bundle) != certificate:
        assert time.monotonic() < deadline, "the webhook did not load the new certificate"
        time.sleep(0.05)


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[tuple[LocalWebhook, Path, Path]]:
    """`serve` on the serving pair of a first `certs` run, installed in live/: (webhook, the
    `certs --out` directory, live/)."""
    out, live = tmp_path / "generated", tmp_path / "live"
    live.mkdir()
    certs(out)
    install(out, live)
    files = CertFiles(out / "ca.crt", live / "tls.crt", live / "tls.key")
    env = {"WEBHOOK_STORE": "memory", "WEBHOOK_TLS_RELOAD_SECONDS": "0.1"}
    hook = LocalWebhook(free_port(), env, files, tmp_path / "serve.log").start()
    yield hook, out, live
    hook.stop()


def test_each_step_s_ca_bundle_is_trusted_whichever_certificate_the_webhook_serves(
    webhook: tuple[LocalWebhook, Path, Path], tmp_path: Path
) -> None:
    hook, out, live = webhook
    installed = (out / "ca.crt").read_bytes()

    # Renewal: the same CA, so the caBundle in force trusts the next serving certificate.
    assert certs(out, "--days", "30") == installed
    until_served(hook, installed, install(out, live))

    # Step 1: both CAs trusted; the old serving certificate is still served, then the new one.
    shutil.copytree(live, tmp_path / "old")
    old = served(hook, installed)
    step1 = certs(out, "--rotate-ca", "--days", "60")
    assert served(hook, step1) == old
    new = install(out, live)
    until_served(hook, step1, new)
    with pytest.raises(ssl.SSLCertVerificationError):
        served(hook, installed)  # why step 1 trusts both: the old caBundle alone fails now

    # Step 2, once every replica serves the new certificate: the new CA only.
    step2 = certs(out, "--drop-old-ca", "--days", "90")
    assert served(hook, step2) == new
    until_served(hook, step2, install(out, live))

    # The old CA is out of the caBundle: a certificate it signed is trusted no more.
    until_served(hook, step1, install(tmp_path / "old", live))
    with pytest.raises(ssl.SSLCertVerificationError):
        served(hook, step2)


def test_the_expiry_gauge_is_the_not_after_of_the_certificate_served(
    webhook: tuple[LocalWebhook, Path, Path],
) -> None:
    hook, out, live = webhook
    ca_bundle = (out / "ca.crt").read_bytes()
    first = x509.load_der_x509_certificate(served(hook, ca_bundle))
    assert hook.metrics()[EXPIRY] == first.not_valid_after_utc.timestamp()

    certs(out, "--days", "20")
    renewed = install(out, live)
    until_served(hook, ca_bundle, renewed)
    expires = x509.load_der_x509_certificate(renewed).not_valid_after_utc
    assert hook.metrics()[EXPIRY] == expires.timestamp() < first.not_valid_after_utc.timestamp()
