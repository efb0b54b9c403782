"""The CA's two-step rotation (certs/README.md, Rotation) against a real `serve` that reloads its
certificate files as they are replaced, as kubelet replaces a mounted Secret's: a client trusting
the caBundle of each step reaches the webhook whichever certificate it serves meanwhile. And the
expiry gauge is the notAfter of the certificate served, before and after a reload."""

from __future__ import annotations

import http.client
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from agent_workspace_webhook.certificates import CertFiles
from agent_workspace_webhook.testing.local_webhook import LocalWebhook, served_answering
from agent_workspace_webhook.testing.tools import cli, free_port

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "examples" / "rex-pod.json").read_bytes()
EXPIRY = "agent_workspace_webhook_certificate_expiry_timestamp_seconds"


def certs(out: Path, *flags: str) -> bytes:
    """`certs --out OUT FLAGS...`, which must succeed: the caBundle it wrote (ca.crt)."""
    done = cli("certs", "--out", str(out), *flags)
    assert done.returncode == 0, done.stderr
    return (out / "ca.crt").read_bytes()


def served(hook: LocalWebhook, ca_bundle: bytes) -> bytes:
    """POST the example review on a new connection by a client trusting `ca_bundle` only; the
    certificate the webhook served, as DER."""
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    connection = http.client.HTTPSConnection("127.0.0.1", hook.port, context=context, timeout=5)
    try:
        return served_answering(connection, BODY)
    finally:
        connection.close()


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[tuple[LocalWebhook, Path]]:
    """`serve` on the serving pair of a first `certs` run, copied into live/ (the mounted
    Secret, checked every 0.1 s): (webhook, the `certs --out` directory)."""
    out, live = tmp_path / "generated", tmp_path / "live"
    live.mkdir()
    certs(out)
    for name in ("tls.crt", "tls.key"):
        shutil.copy(out / name, live / name)
    files = CertFiles(out / "ca.crt", live / "tls.crt", live / "tls.key")
    env = {"WEBHOOK_STORE": "memory", "WEBHOOK_TLS_RELOAD_SECONDS": "0.1"}
    hook = LocalWebhook(free_port(), env, files, tmp_path / "serve.log").start()
    yield hook, out
    hook.stop()


def test_each_step_s_ca_bundle_is_trusted_whichever_certificate_the_webhook_serves(
    webhook: tuple[LocalWebhook, Path], tmp_path: Path
) -> None:
    hook, out = webhook
    installed = (out / "ca.crt").read_bytes()

    # Renewal: the same CA, so the caBundle in force trusts the next serving certificate.
    assert certs(out, "--days", "30") == installed
    hook.until_served(installed, hook.replace_certificate(out))
    assert served(hook, installed) == hook.served_certificate(installed)

    # Step 1: both CAs trusted; the old serving certificate is still served, then the new one.
    shutil.copytree(out, tmp_path / "old")
    old = served(hook, installed)
    step1 = certs(out, "--rotate-ca", "--days", "60")
    assert served(hook, step1) == old
    new = hook.replace_certificate(out)
    hook.until_served(step1, new)
    assert served(hook, step1) == new
    with pytest.raises(ssl.SSLCertVerificationError):
        served(hook, installed)  # why step 1 trusts both: the old caBundle alone fails now

    # Step 2, once every replica serves the new certificate: the new CA only.
    step2 = certs(out, "--drop-old-ca", "--days", "90")
    assert served(hook, step2) == new
    newest = hook.replace_certificate(out)
    hook.until_served(step2, newest)
    assert served(hook, step2) == newest

    # The old CA is out of the caBundle: a certificate it signed is trusted no more.
    hook.until_served(step1, hook.replace_certificate(tmp_path / "old"))
    with pytest.raises(ssl.SSLCertVerificationError):
        served(hook, step2)


def test_the_expiry_gauge_is_the_not_after_of_the_certificate_served(webhook: tuple[LocalWebhook, Path]) -> None:
    hook, out = webhook
    ca_bundle = (out / "ca.crt").read_bytes()
    first = x509.load_der_x509_certificate(served(hook, ca_bundle))
    assert hook.metrics()[EXPIRY] == first.not_valid_after_utc.timestamp()

    certs(out, "--days", "20")
    renewed = hook.replace_certificate(out)
    hook.until_served(ca_bundle, renewed)
    expires = x509.load_der_x509_certificate(renewed).not_valid_after_utc
    assert hook.metrics()[EXPIRY] == expires.timestamp() < first.not_valid_after_utc.timestamp()
