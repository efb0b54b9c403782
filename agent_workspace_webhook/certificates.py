"""Certificates made with `cryptography` (no openssl): a CA and a serving certificate, or a client
CA and a client certificate, written as PEM files. Used by `serve` (throw-away certificates), the
`certs` command and the dev harness."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    cert: Path
    key: Path


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


def _ca(days: int, purpose: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
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
    return key, cert


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    common_name: str,
    hosts: list[str],
    usage: x509.ObjectIdentifier,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if hosts:
        builder = builder.add_extension(_san(hosts), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(files: CertFiles, ca: x509.Certificate, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.touch(mode=0o600)
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def write_certificates(directory: Path, hosts: list[str], days: int = 365) -> CertFiles:
    """A fresh CA and a serving certificate for `hosts` signed by it, as PEM files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(days, "ca")
    key, cert = _leaf(ca, hosts[0], hosts, ExtendedKeyUsageOID.SERVER_AUTH, days)
    files = CertFiles(ca=directory / "ca.crt", cert=directory / "tls.crt", key=directory / "tls.key")
    _write(files, ca[1], cert, key)
    return files


def write_client_certificate(directory: Path, client_name: str, days: int = 365) -> CertFiles:
    """A client CA of its own (the webhook trusts it through WEBHOOK_CLIENT_CA_FILE) and a client
    certificate named `client_name` for the API server, as PEM files in `directory`. Kept apart
    from the serving CA, whose certificate every API server holds in caBundle."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(days, "client-ca")
    key, cert = _leaf(ca, client_name, [], ExtendedKeyUsageOID.CLIENT_AUTH, days)
    files = CertFiles(ca=directory / "client-ca.crt", cert=directory / "client.crt", key=directory / "client.key")
    _write(files, ca[1], cert, key)
    return files
