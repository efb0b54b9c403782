"""Under mutual TLS, `certs --api-server-client` keeps the API server's client CA as it keeps the
serving CA (certs/README.md): a renewal leaves the client certificate the API servers hold valid,
and a CA rotation trusts the old and the new client CA until --drop-old-ca. Against a real
`serve` that reloads its files as kubelet replaces a mounted Secret's."""

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
from agent_workspace_webhook.testing.local_webhook import LocalWebhook, swap_file
from agent_workspace_webhook.testing.tools import cli, free_port

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "examples" / "rex-pod.json").read_bytes()
SECRET_FILES = ("tls.crt", "tls.key", "client-ca.crt")  # what the Secret carries, hence the Pod sees


def certs(out: Path, *flags: str) -> str:
    done = cli("certs", "--out", str(out), "--api-server-client", *flags)
    assert done.returncode == 0, done.stderr
    return done.stdout


def secret_file(out: Path, name: str) -> Path:
    return out / "api-server" / name if name == "client-ca.crt" else out / name


def mount(out: Path, live: Path) -> None:
    """The Secret of this run as kubelet updates a mounted one: each file swapped in one step."""
    for name in SECRET_FILES:
        swap_file(secret_file(out, name), live / name)


def api_server(out: Path, where: Path) -> Path:
    """The API server's copy of api-server/ (its client certificate) as this run left it."""
    shutil.copytree(out / "api-server", where)
    return where


def answers(hook: LocalWebhook, out: Path, client: Path) -> bool:
    """An AdmissionReview from a client presenting `client`'s certificate is answered."""
    context = ssl.create_default_context(cadata=(out / "ca.crt").read_text())
    context.load_cert_chain(client / "client.crt", client / "client.key")
    connection = http.client.HTTPSConnection("127.0.0.1", hook.port, context=context, timeout=5)
    try:
        connection.request("POST", "/mutate", BODY, {"Content-Type": "application/json"})
        return connection.getresponse().status == 200
    except (ssl.SSLError, ConnectionError):  # the handshake refused (TLS 1.3: on the first read)
        return False
    finally:
        connection.close()


def eventually(hook: LocalWebhook, out: Path, client: Path, answered: bool, timeout: float = 15) -> None:
    """Until the webhook has reloaded the mounted files and treats `client` as expected."""
    deadline = time.monotonic() + timeout
    while answers(hook, out, client) != answered:
        assert time.monotonic() < deadline, f"{client}: answered is not {answered} after {timeout}s"
        time.sleep(0.05)


def client_cas(out: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates((out / "api-server" / "client-ca.crt").read_bytes())


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[tuple[LocalWebhook, Path, Path]]:
    """`serve` requiring the API server's client certificate, on the Secret of a first
    `certs --api-server-client` run: (webhook, the --out directory, the mounted Secret)."""
    out, live = tmp_path / "generated", tmp_path / "live"
    live.mkdir()
    certs(out)
    mount(out, live)
    env = {
        "WEBHOOK_STORE": "memory",
        "WEBHOOK_TLS_RELOAD_SECONDS": "0.1",
        "WEBHOOK_CLIENT_CA_FILE": str(live / "client-ca.crt"),
        "WEBHOOK_CLIENT_NAMES": '["kube-apiserver"]',
    }
    hook = LocalWebhook(
        free_port(), env, CertFiles(out / "ca.crt", live / "tls.crt", live / "tls.key"), tmp_path / "serve.log"
    )
    yield hook.start(), out, live
    hook.stop()


def test_a_renewal_keeps_the_client_ca_the_api_servers_certificates_chain_to(
    webhook: tuple[LocalWebhook, Path, Path], tmp_path: Path
) -> None:
    hook, out, live = webhook
    installed = api_server(out, tmp_path / "api-server-1")  # copied to the control-plane hosts
    assert answers(hook, out, installed)
    (client_ca,) = client_cas(out)

    said = certs(out, "--days", "30")
    assert "kept the client CA" in said
    assert client_cas(out) == [client_ca]
    mount(out, live)
    renewed = api_server(out, tmp_path / "api-server-2")
    eventually(hook, out, renewed, True)
    assert answers(hook, out, installed)  # the API servers need not be touched for a renewal
    assert (out / "api-server" / "client-ca.key").stat().st_mode & 0o777 == 0o600


def test_rotating_the_cas_trusts_both_client_cas_until_the_old_is_dropped(
    webhook: tuple[LocalWebhook, Path, Path], tmp_path: Path
) -> None:
    hook, out, live = webhook
    installed = api_server(out, tmp_path / "api-server-1")
    (old,) = client_cas(out)

    said = certs(out, "--rotate-ca")
    assert "the new client CA and the previous one" in said
    new, previous = client_cas(out)
    assert previous == old and new != old
    mount(out, live)
    switched = api_server(out, tmp_path / "api-server-2")
    eventually(hook, out, switched, True)
    assert answers(hook, out, installed)  # API servers not yet given api-server/ still get through

    said = certs(out, "--drop-old-ca")
    assert "trusts only the client CA in use now" in said
    assert client_cas(out) == [new]
    mount(out, live)
    eventually(hook, out, installed, False)  # the old client CA is trusted no more
    assert answers(hook, out, switched)


def test_mutual_tls_added_between_the_rotations_steps_keeps_its_new_client_ca(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    done = cli("certs", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert cli("certs", "--out", str(out), "--rotate-ca").returncode == 0
    assert "made a client CA" in certs(out)  # a client CA younger than the rotation
    (made,) = client_cas(out)
    said = certs(out, "--drop-old-ca")
    assert "the rotation is done" in said and "kept the client CA" in said
    assert client_cas(out) == [made]


def test_a_client_ca_key_that_cannot_be_used_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    certs(out)
    (out / "api-server" / "client-ca.key").write_bytes(b"")
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    done = cli("certs", "--out", str(out), "--api-server-client")
    assert done.returncode == 1
    assert f"{out / 'api-server' / 'client-ca.key'}: not an unencrypted PEM private key" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_an_out_from_before_the_client_ca_was_kept_moves_on_with_rotate_ca(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    certs(out)
    (out / "api-server" / "client-ca.key").unlink()  # as `certs` left it before it kept the key
    (old,) = client_cas(out)
    done = cli("certs", "--out", str(out), "--api-server-client")
    assert done.returncode == 1
    assert "client-ca.key: missing" in done.stderr and "--rotate-ca" in done.stderr
    certs(out, "--rotate-ca")  # the CHANGELOG's upgrade: the old client CA stays trusted meanwhile
    new, previous = client_cas(out)
    assert previous == old and new != old


def test_a_run_without_mutual_tls_leaves_the_client_ca_unread(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    certs(out)
    certs(out, "--rotate-ca")
    (out / "api-server" / "client-ca.crt").write_text("not a certificate\n")  # what it does not ask for
    done = cli("certs", "--out", str(out), "--drop-old-ca")
    assert done.returncode == 0, done.stderr
    assert "client-ca" not in done.stdout
