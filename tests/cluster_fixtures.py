"""Fixtures for tests against a real kube-apiserver + etcd, with the webhook registered from
manifests/ and called by the API server over TLS. Loaded by tests/conftest.py."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kube import MANIFESTS, apply, claim_of, create, load_yaml, wait_for_crd
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook.certs import CertFiles, write_certificates
from webhook.devcluster import ControlPlane, free_port, kubeconfig_text

WEBHOOK_NAMESPACE = "agent-workspace-webhook"
WEBHOOK_SA = "agent-workspace-webhook"
PROBE_NAMESPACE = "probe"


@dataclass
class Cluster:
    plane: ControlPlane
    admin: client.ApiClient
    certs: CertFiles
    workdir: Path
    serving: WebhookProcess | None = None
    default: WebhookProcess | None = None
    processes: list[WebhookProcess] = field(default_factory=list)

    def token_kubeconfig(self, service_account: str, namespace: str = WEBHOOK_NAMESPACE) -> Path:
        """A kubeconfig that authenticates as that ServiceAccount, with a bound token."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        }
        token = client.CoreV1Api(self.admin).create_namespaced_service_account_token(
            service_account, namespace, request
        )
        path = self.workdir / f"kubeconfig-{service_account}"
        path.write_text(kubeconfig_text(self.plane.server, self.plane.ca_file, token.status.token, service_account))
        return path

    def start_webhook(
        self, service_account: str = WEBHOOK_SA, port: int | None = None, reuse_port: bool = False, **settings: str
    ) -> WebhookProcess:
        env = {f"WEBHOOK_{k.upper()}": v for k, v in settings.items()}
        env["WEBHOOK_KUBECONFIG"] = str(self.token_kubeconfig(service_account))
        log = self.workdir / f"webhook-{len(self.processes)}.log"
        process = WebhookProcess(port or free_port(), env, self.certs, log, reuse_port)
        self.processes.append(process)
        process.start()
        return process

    def register(self, process: WebhookProcess, *sharing_its_port: WebhookProcess) -> None:
        """Apply manifests/webhook.yaml with clientConfig pointed at this local process (or the
        processes sharing its port), and wait until the API server calls it (or one of them)."""
        ca_bundle = base64.b64encode(self.certs.ca.read_bytes()).decode()
        for doc in load_yaml(MANIFESTS / "webhook.yaml"):
            for hook in doc["webhooks"]:
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{process.port}/mutate", "caBundle": ca_bundle}
            apply(self.admin, doc)
        self.serving = process
        self.wait_until_called(process, *sharing_its_port)

    def wait_until_called(self, *processes: WebhookProcess, timeout: float = 30) -> None:
        """Dry-run a probe Pod until one of these very processes is the one that mutated it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            marker = f"probe-{uuid.uuid4().hex[:8]}-"
            pod = probe_pod(marker)
            stored, _ = create(self.admin, PROBE_NAMESPACE, pod, dry_run=True)
            mutated = claim_of(stored) in ("workspace-probe-rex", "workspace-probe")  # per naming mode
            if mutated and any(marker in process.log() for process in processes):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the API server did not call the webhook on port {processes[0].port} within {timeout}s")

    @contextlib.contextmanager
    def webhook(self, **settings: str) -> Iterator[WebhookProcess]:
        """Serve admissions from a webhook with these settings for the duration of a test."""
        service_account = settings.pop("service_account", WEBHOOK_SA)
        process = self.start_webhook(service_account, **settings)
        self.register(process)
        try:
            yield process
        finally:
            assert self.default is not None
            self.register(self.default)
            process.stop()


def probe_pod(generate_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": generate_name,
            "labels": {"component": "code-runner", "service": "probe", "github-user": "5dlabs-rex"},
        },
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "workspace", "emptyDir": {}}],
        },
    }


@dataclass
class WebhookProcess:
    """`agent-workspace-webhook serve` as its own process with TLS on 127.0.0.1."""

    port: int
    env: dict[str, str]
    certs: CertFiles
    log_path: Path
    reuse_port: bool = False
    proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admissions(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if '"event": "admission"' in line]

    def start(self, timeout: float = 30) -> None:
        args = [sys.executable, "-m", "webhook", "serve", "--port", str(self.port)]
        args += ["--cert-file", str(self.certs.cert), "--key-file", str(self.certs.key)]
        if self.reuse_port:
            args.append("--reuse-port")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"webhook exited with {self.proc.returncode}:\n{self.log()}")
            if '"event": "serving"' in self.log():  # this very process is listening (the port may be shared)
                try:
                    with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/healthz", context=context, timeout=2):
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"webhook on port {self.port} not healthy after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane with the CRD, namespace and RBAC of manifests/ applied, and the webhook
    running as the manifests' ServiceAccount, registered through manifests/webhook.yaml."""
    workdir = tmp_path_factory.mktemp("cluster")
    plane = ControlPlane(workdir=workdir / "plane")
    plane.workdir.mkdir()
    plane.start()
    configuration = client.Configuration()
    config.load_kube_config(str(plane.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 64  # the race test sends 50 creates at once
    admin = client.ApiClient(configuration)
    cluster = Cluster(plane, admin, write_certificates(workdir / "certs", ["127.0.0.1"]), workdir)
    try:
        for name in ("namespace.yaml", "crd-coderun.yaml", "rbac.yaml"):
            for doc in load_yaml(MANIFESTS / name):
                apply(admin, doc)
        wait_for_crd(admin, "coderuns.agents.platform")
        client.CoreV1Api(admin).create_namespace({"metadata": {"name": PROBE_NAMESPACE}})
        cluster.default = cluster.start_webhook()
        cluster.register(cluster.default)
        yield cluster
    finally:
        for process in cluster.processes:
            process.stop()
        admin.close()
        plane.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(cluster.admin).create_namespace({"metadata": {"name": name}})
    yield name
    with contextlib.suppress(ApiException):
        client.CoreV1Api(cluster.admin).delete_namespace(name)
