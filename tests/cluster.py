"""Fixtures for tests against a real kube-apiserver + etcd, with the webhook registered from
manifests/ and called by the API server over TLS. Loaded by tests/e2e/conftest.py and
tests/store/conftest.py, where they are used."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_workspace_webhook.certificates import CertFiles, write_certificates
from agent_workspace_webhook.testing.controlplane import ControlPlane, free_port
from agent_workspace_webhook.testing.install import (
    WEBHOOK_NAMESPACE,
    WEBHOOK_SERVICE_ACCOUNT,
    admin_client,
    install,
    register,
    service_account_kubeconfig,
    workspace_namespace,
)
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import claim, controller_pod
from agent_workspace_webhook.testing.runs import wait_bound
from tests.kube import create

PROBE_NAMESPACE = "probe"


@dataclass
class Cluster:
    plane: ControlPlane
    admin: client.ApiClient
    certs: CertFiles
    workdir: Path
    default: LocalWebhook | None = None
    processes: list[LocalWebhook] = field(default_factory=list)

    def volume_dir(self, namespace: str, pvc: str) -> Path:
        """The directory the living cluster's CSI driver keeps the PVC's volume in, once Bound."""
        bound = wait_bound(self.admin, namespace, pvc)
        pv = client.CoreV1Api(self.admin).read_persistent_volume(bound["spec"]["volumeName"])
        assert pv.spec is not None and pv.spec.csi is not None and self.plane.components is not None
        return self.plane.components.volume_dir(pv.spec.csi.volume_handle)

    def token_kubeconfig(self, service_account: str) -> Path:
        path = self.workdir / f"kubeconfig-{service_account}"
        return service_account_kubeconfig(self.plane, self.admin, path, service_account, WEBHOOK_NAMESPACE)

    def start_webhook(
        self,
        service_account: str = WEBHOOK_SERVICE_ACCOUNT,
        port: int | None = None,
        reuse_port: bool = False,
        **settings: str,
    ) -> LocalWebhook:
        env = {f"WEBHOOK_{k.upper()}": v for k, v in settings.items()}
        env["WEBHOOK_KUBECONFIG"] = str(self.token_kubeconfig(service_account))
        log = self.workdir / f"webhook-{len(self.processes)}.log"
        process = LocalWebhook(port or free_port(), env, self.certs, log, reuse_port)
        self.processes.append(process)
        return process.start()

    def register(self, process: LocalWebhook, *sharing_its_port: LocalWebhook) -> None:
        """Point manifests/webhook.yaml at this local process (or the processes sharing its
        port), and wait until the API server calls it (or one of them)."""
        register(self.admin, process.url, self.certs.ca.read_bytes())
        self.wait_until_called(process, *sharing_its_port)

    def wait_until_called(self, *processes: LocalWebhook, timeout: float = 30) -> None:
        """Dry-run a probe Pod until one of these very processes is the one that mutated it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            marker = f"probe-{uuid.uuid4().hex[:8]}-"
            stored, _ = create(self.admin, PROBE_NAMESPACE, probe_pod(marker), dry_run=True)
            mutated = claim(stored) in ("workspace-probe-rex", "workspace-probe")  # per naming mode
            if mutated and any(marker in process.log() for process in processes):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the API server did not call the webhook on port {processes[0].port} within {timeout}s")

    @contextlib.contextmanager
    def webhook(self, **settings: str) -> Iterator[LocalWebhook]:
        """Serve admissions from a webhook with these settings for the duration of a test."""
        service_account = settings.pop("service_account", WEBHOOK_SERVICE_ACCOUNT)
        process = self.start_webhook(service_account, **settings)
        self.register(process)
        try:
            yield process
        finally:
            self.restore()
            process.stop()

    def restore(self) -> None:
        assert self.default is not None
        self.register(self.default)


def probe_pod(generate_name: str) -> dict[str, Any]:
    return controller_pod(
        "probe", "5dlabs-rex", volume={"name": "workspace", "emptyDir": {}}, generate_name=generate_name
    )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A living cluster (scheduler, controller manager, three simulated nodes, a CSI provisioner)
    with the CRD, namespace and RBAC of manifests/ applied, and the webhook running as the
    manifests' ServiceAccount, registered through manifests/webhook.yaml."""
    workdir = tmp_path_factory.mktemp("cluster")
    plane = ControlPlane(workdir=workdir / "plane", living=True)
    plane.workdir.mkdir()
    plane.start()
    admin = admin_client(plane)
    cluster = Cluster(plane, admin, write_certificates(workdir / "certs", ["127.0.0.1"]), workdir)
    try:
        install(admin)
        client.CoreV1Api(admin).create_namespace(workspace_namespace(PROBE_NAMESPACE))
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
    client.CoreV1Api(cluster.admin).create_namespace(workspace_namespace(name))
    yield name
    with contextlib.suppress(ApiException):
        client.CoreV1Api(cluster.admin).delete_namespace(name)
