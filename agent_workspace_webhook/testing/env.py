"""One test environment, in the shape of controller-runtime's envtest.Environment with its
WebhookInstallOptions: a dev control plane (API server only, or living), the webhook's install
applied from manifests/ or the chart, certificates made, webhook processes started with given
settings, registered at their local URL, and waited for until they mutate; `stop()` stops
exactly what it started. The demo, the benchmarks and every test that needs a cluster use it.

    with Environment(living=True) as env:
        hook = env.serve()                         # started, registered, mutating
        namespace = env.namespace()                # labelled for workspaces
        with env.webhook(naming_mode="agent"):     # another process for a while, then `hook` again
            ...
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent_workspace_webhook.certificates import CertFiles, write_certificates
from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE
from agent_workspace_webhook.testing.controlplane import ControlPlane
from agent_workspace_webhook.testing.install import (
    WEBHOOK_NAMESPACE,
    WEBHOOK_SERVICE_ACCOUNT,
    Source,
    install,
    install_platform_crd,
    register,
    service_account_kubeconfig,
    unregister,
    workspace_namespace,
)
from agent_workspace_webhook.testing.kube import admin_client, create, denial, wait_bound, wait_service_account
from agent_workspace_webhook.testing.living import KWOK_LABEL
from agent_workspace_webhook.testing.local_webhook import SERVE, LocalWebhook
from agent_workspace_webhook.testing.node import NODE_LABEL, Node
from agent_workspace_webhook.testing.node_config import GATEWAY, SERVICE_CIDR
from agent_workspace_webhook.testing.objects import controller_pod
from agent_workspace_webhook.testing.processes import ControlPlaneError
from agent_workspace_webhook.testing.tools import free_port
from agent_workspace_webhook.testing.twin import ControllerTwin, release_coderuns

# Where the environment dry-runs probe Pods to see which process the API server calls.
PROBE_NAMESPACE = "probe"


@dataclass
class Environment:
    """A dev cluster with the webhook installed; see the module's docstring."""

    living: bool = False  # also the controller manager, scheduler, kwok nodes and a CSI provisioner
    node: bool = False  # also a real node (testing/node.py; root only), running these images
    node_images: Sequence[str] = ()
    workdir: Path | None = None  # default: a temporary directory, removed by stop()
    apiserver_flags: Sequence[str] = ()  # e.g. --admission-control-config-file for mutual TLS
    install_from: Source = "manifests"
    webhooks: list[LocalWebhook] = field(default_factory=list)
    default: LocalWebhook | None = None  # what env.webhook() hands the admissions back to
    real_node: Node | None = None
    # The platform's controller (testing/twin), in a living cluster: it reconciles the CodeRuns of
    # the namespaces made with namespace(platform=True), as the platform's controller does its own.
    controller: ControllerTwin | None = None
    _owns_workdir: bool = False

    def start(self, timeout: float = 60) -> Environment:
        if self.workdir is None:
            self.workdir, self._owns_workdir = Path(tempfile.mkdtemp(prefix="agent-workspace-env-")), True
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "plane").mkdir(exist_ok=True)
        try:
            if self.node:  # its bridge first: the API server listens on the bridge's gateway
                self.real_node = Node(self.workdir / "node").prepare()
            self.plane = ControlPlane(
                workdir=self.workdir / "plane",
                living=self.living or self.node,
                apiserver_flags=list(self.apiserver_flags),
                **({"host": GATEWAY, "service_cidr": SERVICE_CIDR, "real_node": True} if self.node else {}),  # type: ignore[arg-type]
            )
            self.plane.start(timeout)
            if self.real_node is not None:
                self.real_node.start(self.plane, tuple(self.node_images))
            self.admin = admin_client(self.plane)
            if self.node:  # the test installs the webhook itself, as users do
                install_platform_crd(self.admin)
                self.namespace(WEBHOOK_NAMESPACE)
            else:
                install(self.admin, self.install_from, self.plane.bin_dir / "helm")
            self.certs: CertFiles = write_certificates(self.workdir / "certs", ["127.0.0.1"])
            self.namespace(PROBE_NAMESPACE)
            if self.living or self.node:
                self.controller = ControllerTwin(admin_client(self.plane))  # a client of its own: its thread
                self.controller.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Every webhook process, the client, the node, the cluster (each by its pid), the host
        state the node changed; the workdir if it made it."""
        if self.controller is not None:  # it writes to the API: before everything it writes to
            self.controller.stop()
            self.controller.api_client.close()
        for process in self.webhooks:
            process.stop()
        if getattr(self, "admin", None) is not None:
            self.admin.close()
        node = self.real_node
        try:
            if node is not None:
                node.stop()
            if getattr(self, "plane", None) is not None:
                self.plane.stop()
        finally:
            if node is not None:
                node.restore_host()
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Environment:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- the cluster ---------------------------------------------------------------------------

    def namespace(self, name: str | None = None, *, platform: bool = False) -> str:
        """A namespace in the webhook's scope (a fresh name unless given); with `platform`, one
        where the platform runs: the controller twin reconciles its CodeRuns."""
        from kubernetes import client

        name = name or f"t-{uuid.uuid4().hex[:10]}"
        body = workspace_namespace(name)
        if self.node:  # the webhook's Pods on the real node, runs on the simulated ones
            where = NODE_LABEL if name == WEBHOOK_NAMESPACE else KWOK_LABEL
            selector = ",".join(f"{k}={v}" for k, v in where.items())
            body["metadata"]["annotations"] = {"scheduler.alpha.kubernetes.io/node-selector": selector}
        client.CoreV1Api(self.admin).create_namespace(body)  # type: ignore[arg-type]
        if self.node:  # Pods are refused until the controller manager has made its ServiceAccount
            wait_service_account(self.admin, name)
        if platform:
            if self.controller is None:
                raise ControlPlaneError("the platform's controller twin runs only in a living cluster (living=True)")
            self.controller.manage(name)
        return name

    def delete_namespace(self, name: str) -> None:
        """Delete it; its CodeRuns first lose the controller's finalizer (a finished run's
        cleanup waits an hour, its TTL), and the twin leaves it."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        if self.controller is not None:
            self.controller.release(name)
            with contextlib.suppress(ApiException):
                release_coderuns(self.admin, name)
        with contextlib.suppress(ApiException):
            client.CoreV1Api(self.admin).delete_namespace(name)

    def kubeconfig_for(self, service_account: str = WEBHOOK_SERVICE_ACCOUNT) -> Path:
        """A kubeconfig authenticating as that ServiceAccount of the webhook's namespace."""
        assert self.workdir is not None
        path = self.workdir / f"kubeconfig-{service_account}"
        return service_account_kubeconfig(self.plane, self.admin, path, service_account, WEBHOOK_NAMESPACE)

    def volume_dir(self, namespace: str, pvc: str) -> Path:
        """The directory the living cluster's CSI driver keeps the PVC's volume in, once Bound."""
        from kubernetes import client

        bound = wait_bound(self.admin, namespace, pvc)
        pv = client.CoreV1Api(self.admin).read_persistent_volume(bound["spec"]["volumeName"])
        if pv.spec is None or pv.spec.csi is None or self.plane.components is None:
            raise ControlPlaneError(f"PVC {namespace}/{pvc} is not on the living cluster's CSI driver")
        return self.plane.components.volume_dir(pv.spec.csi.volume_handle)

    # --- webhook processes ---------------------------------------------------------------------

    def start_webhook(
        self,
        settings: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        reuse_port: bool = False,
        service_account: str = WEBHOOK_SERVICE_ACCOUNT,
        kubeconfig: Path | None = None,
        timeout: float = 30,
        entry: tuple[str, ...] = SERVE,
    ) -> LocalWebhook:
        """`serve` as a process of its own with these settings (`{"naming_mode": "agent"}` is
        WEBHOOK_NAMING_MODE=agent), as that ServiceAccount unless a kubeconfig is given, run by `entry`
        (a script in place of the package: bench/bare.py); healthy, not yet registered."""
        assert self.workdir is not None
        env = {f"WEBHOOK_{key.upper()}": value for key, value in (settings or {}).items()}
        env["WEBHOOK_KUBECONFIG"] = str(kubeconfig or self.kubeconfig_for(service_account))
        log = self.workdir / f"webhook-{len(self.webhooks)}.log"
        process = LocalWebhook(port or free_port(), env, self.certs, log, reuse_port, entry=entry)
        self.webhooks.append(process)
        return process.start(timeout)

    def register(self, *processes: LocalWebhook, timeout: float = 30) -> None:
        """Point the webhook configuration at these processes (sharing one port) and wait until
        the API server calls one of them."""
        register(self.admin, processes[0].url, self.certs.ca.read_bytes())
        self.wait_until_called(*processes, timeout=timeout)

    def unregister(self, timeout: float = 30) -> None:
        """Remove the webhook configuration and wait until the API server stops calling it."""
        unregister(self.admin)
        self.wait_until_called(timeout=timeout)

    def wait_until_called(self, *processes: LocalWebhook, timeout: float = 30) -> None:
        """Dry-run probe Pods until one of these very processes is the one that answers them (no
        processes: until none does). A configuration takes a moment to reach admission."""
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + timeout
        while True:
            marker = f"probe-{uuid.uuid4().hex[:8]}-"
            probe = controller_pod(PROBE_NAMESPACE, "5dlabs-rex", generate_name=marker)
            try:
                stored, _ = create(self.admin, PROBE_NAMESPACE, probe, dry_run=True)
                mutated = ANNOTATION_WORKSPACE in (stored["metadata"].get("annotations") or {})
            except ApiException as exc:  # a webhook that denies bare Pods (verified-runs) answered too
                mutated = "denied the request" in denial(exc)
            if processes and mutated and any(marker in process.log() for process in processes):
                return
            if not processes and not mutated:
                return
            if time.monotonic() > deadline:
                which = f"port {processes[0].port}" if processes else "no webhook"
                raise ControlPlaneError(f"the API server did not switch to {which} within {timeout}s")
            time.sleep(0.2)

    def serve(self, service_account: str = WEBHOOK_SERVICE_ACCOUNT, **settings: str) -> LocalWebhook:
        """A webhook with these settings, started and registered; the first becomes the default."""
        process = self.start_webhook(settings, service_account=service_account)
        self.register(process)
        if self.default is None:
            self.default = process
        return process

    @contextlib.contextmanager
    def webhook(self, service_account: str = WEBHOOK_SERVICE_ACCOUNT, **settings: str) -> Iterator[LocalWebhook]:
        """Admissions served by a webhook with these settings for a while, then by the default."""
        process = self.serve(service_account, **settings)
        try:
            yield process
        finally:
            self.restore()
            process.stop()

    def restore(self) -> None:
        """Hand admissions back to the default webhook."""
        if self.default is not None:
            self.register(self.default)
