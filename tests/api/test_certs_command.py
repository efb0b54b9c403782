"""`certs` keeps its CA in --out: a second run issues a serving certificate the caBundle in force
trusts; the CA's files are refused, naming the file and the fix, when they cannot be used; and
rotating the CA is two steps (certs/README.md, Rotation)."""

from __future__ import annotations

import base64
import datetime
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from agent_workspace_webhook.certificates import certificate_pem, key_pem, new_authority
from agent_workspace_webhook.cli import main


def certs(capsys: pytest.CaptureFixture[str], out: Path, *flags: str) -> tuple[int, str, str]:
    """`agent-workspace-webhook certs --out OUT FLAGS...`: (exit status, stdout, stderr)."""
    code = main(["certs", "--out", str(out), *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def bundle(out: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates((out / "ca.crt").read_bytes())


def serving(out: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ca_bundle_of_the_overlay(out: Path) -> set[bytes]:
    patch = yaml.safe_load(yaml.safe_load((out / "kustomization.yaml").read_text())["patches"][0]["patch"])
    return {base64.b64decode(op["value"]) for op in patch}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_second_run_keeps_the_ca_and_the_ca_bundle_in_force_trusts_its_certificate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "generated"
    code, said, _ = certs(capsys, out)
    assert code == 0
    assert f"its key {out / 'ca.key'} (mode 0600): keep it secret" in said
    installed = (out / "ca.crt").read_bytes()  # what the first apply put into caBundle
    first = serving(out)
    assert {mode(out / name) for name in ("ca.key", "tls.key", "secret.yaml")} == {0o600}
    assert mode(out) == 0o700

    code, said, _ = certs(capsys, out)
    assert code == 0 and "kept the CA" in said
    assert (out / "ca.crt").read_bytes() == installed
    assert ca_bundle_of_the_overlay(out) == {installed}
    again = serving(out)
    assert again.serial_number != first.serial_number
    (ca,) = x509.load_pem_x509_certificates(installed)
    assert issued_by(again, ca)


def expired_ca() -> tuple[bytes, bytes]:
    """A CA's certificate and key, made as `certs` makes one, that expired yesterday."""
    ca = new_authority(29, "expired", made=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30))
    return certificate_pem(ca.cert), key_pem(ca.key)


def spoil(out: Path, how: str, elsewhere: Path) -> None:
    if how == "key missing":  # as `certs` left it before it kept its CA
        (out / "ca.key").unlink()
    elif how == "certificate missing":
        (out / "ca.crt").unlink()
    elif how == "certificate unreadable":
        (out / "ca.crt").write_text("not a certificate\n")
    elif how == "key unreadable":
        (out / "ca.key").write_bytes(b"")
    elif how == "key encrypted":
        plain = serialization.load_pem_private_key((out / "ca.key").read_bytes(), password=None)
        encryption = serialization.BestAvailableEncryption(b"secret")
        encrypted = plain.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        (out / "ca.key").write_bytes(encrypted)
    elif how == "mismatched":  # another run's key
        shutil.copy(elsewhere / "ca.key", out / "ca.key")
    elif how == "expired":
        expired_cert, expired_key = expired_ca()
        (out / "ca.crt").write_bytes(expired_cert)
        (out / "ca.key").write_bytes(expired_key)
    elif how == "not a CA":  # the serving pair put in the CA's place
        shutil.copy(out / "tls.crt", out / "ca.crt")
        shutil.copy(out / "tls.key", out / "ca.key")


@pytest.mark.parametrize(
    ("how", "names", "says"),
    [
        ("key missing", "ca.key", "missing, the key of"),
        ("certificate missing", "ca.crt", "missing beside"),
        ("certificate unreadable", "ca.crt", "not a PEM certificate"),
        ("key unreadable", "ca.key", "not an unencrypted PEM private key"),
        ("key encrypted", "ca.key", "not an unencrypted PEM private key"),
        ("mismatched", "ca.key", "is not the key of"),
        ("expired", "ca.crt", "the CA expired on"),
        ("not a CA", "ca.crt", "is not a CA certificate"),
    ],
)
def test_a_kept_ca_that_cannot_be_used_is_refused_naming_the_file_and_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str, names: str, says: str
) -> None:
    out, elsewhere = tmp_path / "generated", tmp_path / "elsewhere"
    assert certs(capsys, out)[0] == 0 and certs(capsys, elsewhere)[0] == 0
    spoil(out, how, elsewhere)
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}

    code, said, error = certs(capsys, out)
    assert code == 1 and said == ""
    assert len(error.splitlines()) == 1 and error.startswith("agent-workspace-webhook certs: "), error
    assert f"{out / names}" in error and says in error, error
    assert "from your backup" in error or "--rotate-ca" in error, error  # the fix
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before  # nothing written


def test_the_ca_is_rotated_in_two_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert certs(capsys, out)[0] == 0
    (old,) = bundle(out)

    code, said, _ = certs(capsys, out, "--rotate-ca")
    assert code == 0 and "--drop-old-ca" in said
    new, previous = bundle(out)
    assert previous == old and new != old
    assert issued_by(serving(out), new)
    assert ca_bundle_of_the_overlay(out) == {(out / "ca.crt").read_bytes()}
    assert mode(out / "ca.key") == 0o600

    code, _, error = certs(capsys, out, "--rotate-ca")  # a third CA would drop `old` while in use
    assert code == 1 and "a rotation is under way" in error and "--drop-old-ca" in error
    code, said, _ = certs(capsys, out)  # a new serving certificate meanwhile: both CAs stay
    assert code == 0 and "a rotation is under way" in said and bundle(out) == [new, old]

    code, said, _ = certs(capsys, out, "--drop-old-ca")
    assert code == 0 and "the rotation is done" in said
    assert bundle(out) == [new] and issued_by(serving(out), new)
    code, _, error = certs(capsys, out, "--drop-old-ca")
    assert code == 1 and "nothing to drop" in error


def test_a_ca_whose_key_an_older_certs_never_wrote_is_rotated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "generated"
    assert certs(capsys, out)[0] == 0
    (out / "ca.key").unlink()
    (old,) = bundle(out)
    code, _, error = certs(capsys, out, "--rotate-ca")
    assert code == 0, error
    assert bundle(out)[1] == old and issued_by(serving(out), bundle(out)[0])


def test_rotate_without_a_ca_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, error = certs(capsys, tmp_path / "empty", "--rotate-ca")
    assert code == 1 and "no CA to rotate" in error and "run without --rotate-ca" in error
    assert not (tmp_path / "empty").exists()


def test_the_serving_certificate_never_outlives_the_ca(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "generated"
    out.mkdir()
    ca = new_authority(days=10)
    (out / "ca.crt").write_bytes(certificate_pem(ca.cert))
    (out / "ca.key").write_bytes(key_pem(ca.key))
    code, said, _ = certs(capsys, out, "--days", "365")
    assert code == 0 and "rotate the CA (--rotate-ca) before then" in said
    assert serving(out).not_valid_after_utc == ca.cert.not_valid_after_utc
