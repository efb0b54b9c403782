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


def admission_kubeconfig(webhook_host: str, client: CertFiles) -> dict[str, Any]:
    """The kubeconfig an API server's WebhookAdmissionConfiguration names: the API server picks
    the user whose name is the webhook's host:port and presents that client certificate."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "users": [
            {
                "name": webhook_host,
                "user": {"client-certificate": str(client.cert.resolve()), "client-key": str(client.key.resolve())},
            }
        ],
    }


def admission_configuration(kubeconfig: Path) -> dict[str, Any]:
    """The file for kube-apiserver --admission-control-config-file that makes it use `kubeconfig`
    when it calls mutating webhooks."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "MutatingAdmissionWebhook",
                "configuration": {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "WebhookAdmissionConfiguration",
                    "kubeConfigFile": str(kubeconfig.resolve()),
                },
            }
        ],
    }


def write_api_server_client(directory: Path, webhook_host: str, client_name: str, days: int) -> tuple[CertFiles, Path]:
    """Client certificate, kubeconfig and AdmissionConfiguration for the API server, in
    `directory`; (the client files, the AdmissionConfiguration's path)."""
    client = write_client_certificate(directory, client_name, days)
    kubeconfig = directory / "admission-kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump(admission_kubeconfig(webhook_host, client), sort_keys=False))
    configuration = directory / "admission-configuration.yaml"
    configuration.write_text(yaml.safe_dump(admission_configuration(kubeconfig), sort_keys=False))
    return client, configuration


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


def secret_manifest(name: str, namespace: str, files: CertFiles, client_ca: Path | None = None) -> dict[str, Any]:
    data = {"tls.crt": _b64(files.cert), "tls.key": _b64(files.key), "ca.crt": _b64(files.ca)}
    if client_ca is not None:
        data["client-ca.crt"] = _b64(client_ca)  # manifests/mtls: WEBHOOK_CLIENT_CA_FILE
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "agent-workspace-webhook"},
        },
        "data": data,
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


# The name the API server's client certificate carries; manifests/mtls allows only this one.
API_SERVER_CLIENT_NAME = "kube-apiserver"


def write_install_bundle(
    out: Path,
    *,
    namespace: str,
    service: str,
    secret: str,
    extra_hosts: list[str],
    days: int,
    api_server_client: bool = False,
) -> tuple[CertFiles, list[str]]:
    """Certificates, their Secret, and `kustomization.yaml` over manifests/ in `out`; what was
    written, for the terminal. Outside a checkout the shipped manifests are copied into `out`, so
    that `kubectl apply -k out` needs nothing else. With `api_server_client`, also a client
    certificate for the API server (in out/api-server/, for the control plane's hosts, not the
    cluster) and an overlay of manifests/mtls that requires it."""
    hosts = service_hosts(service, namespace, extra_hosts)
    files = write_certificates(out, hosts, days=days)
    lines = [f"wrote {files.ca}, {files.cert}, {files.key} (valid {days} days for {', '.join(hosts)})"]
    client_ca = None
    if api_server_client:
        client, configuration = write_api_server_client(
            out / "api-server", f"{service}.{namespace}.svc:443", API_SERVER_CLIENT_NAME, days
        )
        client_ca = client.ca
        lines += [
            f"wrote {client.ca}, {client.cert}, {client.key} (client certificate {API_SERVER_CLIENT_NAME})",
            f"give the API server: --admission-control-config-file={configuration} (see certs/README.md)",
        ]
    (out / "secret.yaml").write_text(
        yaml.safe_dump(secret_manifest(secret, namespace, files, client_ca), sort_keys=False)
    )
    manifests = manifests_dir()
    if is_shipped(manifests):
        manifests = Path(shutil.copytree(manifests, out / "manifests", dirs_exist_ok=True))
    config = webhook_configuration(manifests)
    base = manifests / "mtls" if api_server_client else manifests
    kustomization = overlay(base, out, files, config["metadata"]["name"], len(config["webhooks"]))
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return files, [
        *lines,
        f"wrote {out / 'secret.yaml'} (Secret {namespace}/{secret}) and {out / 'kustomization.yaml'} over {base}",
        f"install with: kubectl apply -k {out}",
    ]
