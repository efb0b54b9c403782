"""Certificates made with `cryptography` (no openssl): a CA and a serving certificate, or a client
CA and a client certificate, written as PEM files. Used by `serve` (throw-away certificates), the
`certs` command (ops/ca.py keeps its CA) and the dev harness."""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# What a CA kept on disk may sign with: ours are EC P-256; RSA for a CA brought from elsewhere.
IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertFiles:
    ca: Path  # what a client trusts: the CA, and during a CA rotation the previous CA too
    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    """A CA that can sign: its key and its certificate."""

    key: IssuerKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def new_authority(days: int, purpose: str = "ca", made: datetime.datetime | None = None) -> Authority:
    """A self-signed CA valid for `days`, named after `purpose` and the time it was `made` (now,
    unless a test makes one that has already expired)."""
    now = made or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA: during a CA rotation clients trust two CAs at once, and OpenSSL
    # finds an issuer by name (then by key identifier).
    name = _name(f"agent-workspace-webhook-{purpose}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}")
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def _leaf(
    ca: Authority, common_name: str, hosts: list[str], usage: x509.ObjectIdentifier, days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    # Never past the CA: a chain is only as valid as its CA, whatever `days` asks.
    until = min(now + datetime.timedelta(days=days), ca.cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if hosts:
        builder = builder.add_extension(_san(hosts), critical=False)
    return key, builder.sign(ca.key, hashes.SHA256())


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: IssuerKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` in one step with `data`, its mode `mode` from the start: a reader (the
    webhook reloading, kubectl) never sees half a file, and a key is never readable by others,
    not even for a moment and not if the file was before."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    write_file(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    write_file(path, data, 0o644)


def issue_serving(ca: Authority, hosts: list[str], days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a serving certificate for `hosts` signed by `ca`: valid `days`, never past the CA."""
    return _leaf(ca, hosts[0], hosts, ExtendedKeyUsageOID.SERVER_AUTH, days)


def write_serving(directory: Path, key: IssuerKey, cert: x509.Certificate) -> tuple[Path, Path]:
    """tls.crt and tls.key (mode 0600) in `directory`: (certificate, key)."""
    files = directory / "tls.crt", directory / "tls.key"
    write_public(files[0], certificate_pem(cert))
    write_private(files[1], key_pem(key))
    return files


def write_certificates(directory: Path, hosts: list[str], days: int = 365) -> CertFiles:
    """A fresh CA and a serving certificate for `hosts` signed by it, as PEM files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_authority(days)
    write_public(directory / "ca.crt", certificate_pem(ca.cert))
    cert, key = write_serving(directory, *issue_serving(ca, hosts, days))
    return CertFiles(ca=directory / "ca.crt", cert=cert, key=key)


def issue_client(ca: Authority, client_name: str, days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a client certificate named `client_name` signed by `ca`, never past the CA."""
    return _leaf(ca, client_name, [], ExtendedKeyUsageOID.CLIENT_AUTH, days)


def write_client(directory: Path, key: IssuerKey, cert: x509.Certificate) -> tuple[Path, Path]:
    """client.crt and client.key (mode 0600) in `directory`: (certificate, key)."""
    files = directory / "client.crt", directory / "client.key"
    write_public(files[0], certificate_pem(cert))
    write_private(files[1], key_pem(key))
    return files


def write_client_certificate(directory: Path, client_name: str, days: int = 365) -> CertFiles:
    """A fresh client CA of its own (the webhook trusts it through WEBHOOK_CLIENT_CA_FILE) and a
    client certificate named `client_name` signed by it, as PEM files in `directory`. Kept apart
    from the serving CA, whose certificate every API server holds in caBundle."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_authority(days, "client-ca")
    write_public(directory / "client-ca.crt", certificate_pem(ca.cert))
    cert, key = write_client(directory, *issue_client(ca, client_name, days))
    return CertFiles(ca=directory / "client-ca.crt", cert=cert, key=key)
