"""`agent-workspace-webhook certs`: the install bundle around the certificates (certificates.py):
a serving certificate from the CA kept in --out (ops/ca.py), the TLS Secret, a kustomization
over manifests/ that adds it and the caBundle, and for mutual TLS the API server's client
kubeconfig and AdmissionConfiguration (and the manifests/mtls Component in the kustomization)."""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from agent_workspace_webhook.certificates import (
    CertFiles,
    issue_client,
    issue_serving,
    write_client,
    write_private,
    write_serving,
)
from agent_workspace_webhook.ops import ca as kept
from agent_workspace_webhook.ops.manifests import is_shipped, manifests_dir, webhook_configuration


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


def write_api_server_client(
    directory: Path,
    webhook_host: str,
    client_name: str,
    days: int,
    ca: kept.KeptCA | None = None,
    step: kept.Step = kept.Step.KEEP,
) -> tuple[CertFiles, Path]:
    """The client CA kept in `directory` (`ca` after `step`; by default the one there, or a new
    one), a client certificate from it, and the kubeconfig and AdmissionConfiguration for the API
    server; (the client files, the AdmissionConfiguration's path)."""
    place = kept.client_place(directory)
    if ca is None:
        ca = kept.next_ca(place, step, datetime.datetime.now(datetime.UTC))
    kept.write(place, step, ca)
    client = CertFiles(place.crt, *write_client(directory, *issue_client(ca.signer, client_name, days)))
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


def overlay(
    manifests: Path,
    out: Path,
    files: CertFiles,
    webhook_config: str,
    webhook_count: int,
    components: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A kustomization over manifests/ that adds the Secret and the caBundle of every webhook,
    with the named Components of manifests/ (e.g. "mtls")."""
    ca_bundle = _b64(files.ca)
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(manifests, out), "secret.yaml"],
        **({"components": [os.path.relpath(manifests / name, out) for name in components]} if components else {}),
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
    step: kept.Step = kept.Step.KEEP,
) -> tuple[CertFiles, list[str]]:
    """A serving certificate from the CA kept in `out` (made there when there is none; rotated, or
    its predecessor dropped, as `step` says), its Secret, and `kustomization.yaml` over manifests/
    in `out`; what was written, for the terminal. Raises ops.ca.CAError, writing nothing, when
    the kept CA cannot be used. Outside a checkout the shipped manifests are copied into `out`, so
    that `kubectl apply -k out` needs nothing else. With `api_server_client`, also a client
    certificate for the API server (in out/api-server/, for the control plane's hosts, not the
    cluster) and the manifests/mtls Component, that requires it, in the kustomization."""
    hosts = service_hosts(service, namespace, extra_hosts)
    now = datetime.datetime.now(datetime.UTC)
    serving = kept.serving_place(out)
    ca = kept.next_ca(serving, step, now)
    # Both CAs checked before anything is written; the client CA's files only when asked for.
    client_place = kept.client_place(out / "api-server")
    client_step = kept.step_for(client_place, step) if api_server_client else step
    client_ca = kept.next_ca(client_place, client_step, now) if api_server_client else None
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds private keys
    kept.write(serving, step, ca)
    key, cert = issue_serving(ca.signer, hosts, days)
    files = CertFiles(serving.crt, *write_serving(out, key, cert))
    lines = kept.describe(serving, step, ca)
    lines.append(
        f"wrote {files.cert}, {files.key} (valid until {cert.not_valid_after_utc:%Y-%m-%d} for {', '.join(hosts)})"
    )
    if cert.not_valid_after_utc >= ca.signer.cert.not_valid_after_utc:
        lines.append(f"it ends with the CA, before {days} days: rotate the CA (--rotate-ca) before then")
    client = None
    if client_ca is not None:
        client, configuration = write_api_server_client(
            client_place.directory,
            f"{service}.{namespace}.svc:443",
            API_SERVER_CLIENT_NAME,
            days,
            client_ca,
            client_step,
        )
        lines += kept.describe(client_place, client_step, client_ca)
        lines += [
            f"wrote {client.cert}, {client.key} (client certificate {API_SERVER_CLIENT_NAME})",
            f"give the API server: --admission-control-config-file={configuration} (see certs/README.md)",
        ]
    manifest = yaml.safe_dump(secret_manifest(secret, namespace, files, client.ca if client else None), sort_keys=False)
    write_private(out / "secret.yaml", manifest.encode())  # the serving key is in it
    manifests = manifests_dir()
    if is_shipped(manifests):
        manifests = Path(shutil.copytree(manifests, out / "manifests", dirs_exist_ok=True))
    config = webhook_configuration(manifests)
    components = ("mtls",) if api_server_client else ()
    kustomization = overlay(manifests, out, files, config["metadata"]["name"], len(config["webhooks"]), components)
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    over = f"over {manifests}" + "".join(f", with the Component {manifests / name}" for name in components)
    return files, [
        *lines,
        f"wrote {out / 'secret.yaml'} (Secret {namespace}/{secret}) and {out / 'kustomization.yaml'} {over}",
        f"install with: kubectl apply -k {out}",
    ]
