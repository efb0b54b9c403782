"""`agent-workspace-webhook certs`: a CA and a serving certificate made with `cryptography` (no
openssl), the TLS Secret, and a kustomize overlay of manifests/ that adds both."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent_workspace_webhook.ops.manifests import is_shipped, manifests_dir, webhook_configuration


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


def write_certificates(directory: Path, hosts: list[str], days: int = 365) -> CertFiles:
    """A fresh CA and a certificate for `hosts` signed by it, as PEM files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA: during a CA rotation clients trust two CAs at once, and OpenSSL
    # finds an issuer by name (then by key identifier).
    ca_name = _name(f"agent-workspace-webhook-ca-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = CertFiles(ca=directory / "ca.crt", cert=directory / "tls.crt", key=directory / "tls.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.touch(mode=0o600)
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def service_hosts(service: str, namespace: str, extra: list[str]) -> list[str]:
    """The names the API server may use for the webhook's Service, then any extra hosts."""
    return [
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        f"{service}.{namespace}",
        service,
        *extra,
    ]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def secret_manifest(name: str, namespace: str, files: CertFiles) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "agent-workspace-webhook"},
        },
        "data": {"tls.crt": _b64(files.cert), "tls.key": _b64(files.key), "ca.crt": _b64(files.ca)},
    }


def overlay(manifests: Path, out: Path, files: CertFiles, webhook_config: str, webhook_count: int) -> dict[str, Any]:
    """A kustomization over manifests/ that adds the Secret and the caBundle of every webhook."""
    ca_bundle = _b64(files.ca)
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(manifests, out), "secret.yaml"],
        "patches": [
            {
                "target": {
                    "group": "admissionregistration.k8s.io",
                    "kind": "MutatingWebhookConfiguration",
                    "name": webhook_config,
                },
                "patch": json.dumps(
                    [
                        {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca_bundle}
                        for i in range(webhook_count)
                    ]
                ),
            }
        ],
    }


def write_install_bundle(
    out: Path, *, namespace: str, service: str, secret: str, extra_hosts: list[str], days: int
) -> tuple[CertFiles, list[str]]:
    """Certificates, their Secret, and `kustomization.yaml` over manifests/ in `out`; what was
    written, for the terminal. Outside a checkout the shipped manifests are copied into `out`, so
    that `kubectl apply -k out` needs nothing else."""
    hosts = service_hosts(service, namespace, extra_hosts)
    files = write_certificates(out, hosts, days=days)
    (out / "secret.yaml").write_text(yaml.safe_dump(secret_manifest(secret, namespace, files), sort_keys=False))
    manifests = manifests_dir()
    if is_shipped(manifests):
        manifests = Path(shutil.copytree(manifests, out / "manifests", dirs_exist_ok=True))
    config = webhook_configuration(manifests)
    kustomization = overlay(manifests, out, files, config["metadata"]["name"], len(config["webhooks"]))
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return files, [
        f"wrote {files.ca}, {files.cert}, {files.key} (valid {days} days for {', '.join(hosts)})",
        f"wrote {out / 'secret.yaml'} (Secret {namespace}/{secret}) and {out / 'kustomization.yaml'} over {manifests}",
        f"install with: kubectl apply -k {out}",
    ]
