"""A real, throw-away Kubernetes cluster on 127.0.0.1: etcd + kube-apiserver, and with
`living=True` the rest of a cluster (testing/living.py) so that Pods run and PVCs bind.

What envtest gives Go operators: the binaries come from `controlplane/build.sh`; this starts
them on free loopback ports with an admin token, waits until each is ready, writes a
kubeconfig, and stops exactly the processes it started, by pid.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent_workspace_webhook.testing.processes import (
    ControlPlaneError,
    log_tail,
    spawn_logged,
    stop_process,
    wait_ready,
)
from agent_workspace_webhook.testing.tools import (
    BUILD_HINT,
    binaries_dir,
    free_port,
    http_ok,
    kubeconfig_text,
    write_key_pair,
)

if TYPE_CHECKING:
    from agent_workspace_webhook.testing.living import Living


@dataclass
class ControlPlane:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="devcluster-")))
    bin_dir: Path = field(default_factory=binaries_dir)
    etcd: subprocess.Popen[bytes] | None = None
    apiserver: subprocess.Popen[bytes] | None = None
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    # More kube-apiserver flags, e.g. --admission-control-config-file for mutual TLS to webhooks.
    apiserver_flags: list[str] = field(default_factory=list)
    # Also run the controller manager, the scheduler, simulated nodes and a CSI provisioner
    # (testing/living.py): Pods run and PVCs bind. Without it, admission is all that happens.
    living: bool = False
    components: Living | None = None
    # Where the API server listens (a real node's Pods reach it on a bridge's gateway address,
    # testing/node.py) and its Services' range; with a real node, Pods get ServiceAccount tokens,
    # the kubelet is reached by its address, and namespaces may pin their Pods to nodes
    # (PodNodeSelector: runs on the simulated nodes, the webhook on the real one).
    host: str = "127.0.0.1"
    service_cidr: str = "10.0.0.0/24"
    real_node: bool = False
    _apiserver_args: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        # kube-apiserver writes its self-signed serving certificate and the CA that signed it here.
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def spawn(self, name: str, args: list[str], binary_name: str | None = None) -> subprocess.Popen[bytes]:
        """Start one of the built binaries, its output in <workdir>/<name>.log."""
        binary = self.bin_dir / (binary_name or name)
        if not os.access(binary, os.X_OK):
            raise ControlPlaneError(f"{binary} is missing: {BUILD_HINT}")
        return spawn_logged(self.workdir, name, [str(binary), *args])

    def wait_for(self, what: str, proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready` until it says so, while the process `what` (spawned under that name) lives."""
        wait_ready(what, ready, timeout, self.workdir, {what: proc})

    def _wait(
        self,
        what: str,
        proc: subprocess.Popen[bytes],
        probe: str,
        timeout: float,
        context: ssl.SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        self.wait_for(what, proc, lambda: http_ok(probe, context, token), timeout)

    def tail(self, what: str, lines: int = 20) -> str:
        return log_tail(self.workdir, what, lines)

    def start(self, timeout: float = 60) -> ControlPlane:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        etcd_port, peer_port = free_port(), free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        self.etcd = self.spawn(
            "etcd",
            [
                "--name=devcluster",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=devcluster={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", self.etcd, f"{etcd_url}/health", timeout)

        sa_key, sa_pub = write_key_pair(self.workdir / "sa.key", self.workdir / "sa.pub")
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},admin,admin,"system:masters"\n')
        self.port = free_port()
        self._apiserver_args = [
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--secure-port={self.port}",
            f"--bind-address={self.host}",
            f"--advertise-address={self.host}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={tokens}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            *(
                ["--kubelet-preferred-address-types=InternalIP", "--enable-admission-plugins=PodNodeSelector"]
                if self.real_node
                else ["--disable-admission-plugins=ServiceAccount"]
            ),
            "--allow-privileged=true",
            *self.apiserver_flags,
        ]
        self.start_apiserver(timeout)
        self.kubeconfig.write_text(kubeconfig_text(self.server, self.ca_file, self.token))
        if self.living:
            from agent_workspace_webhook.testing.living import Living

            self.components = Living(self).start(timeout)

    def start_apiserver(self, timeout: float = 60) -> None:
        """(Re)start kube-apiserver on the same port, certificates and etcd."""
        self.apiserver = self.spawn("kube-apiserver", self._apiserver_args)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the CA file does not exist until the server has started
        self._wait("kube-apiserver", self.apiserver, f"{self.server}/readyz", timeout, insecure, self.token)

    def restart_with_service_account_keys(self, signing: Path, trusted: list[Path], timeout: float = 60) -> None:
        """Restart the API server signing ServiceAccount tokens with `signing` (a private key),
        accepting those signed with any of `trusted` (public keys): a key rotation."""
        flags = ("--service-account-key-file=", "--service-account-signing-key-file=")
        keep = [arg for arg in self._apiserver_args if not arg.startswith(flags)]
        keys = [f"--service-account-key-file={key}" for key in trusted]
        self._apiserver_args = [*keep, f"--service-account-signing-key-file={signing}", *keys]
        self.stop_apiserver()
        self.start_apiserver(timeout)

    def stop_apiserver(self) -> None:
        stop_process(self.apiserver, grace=10)

    def stop(self) -> None:
        """The living cluster's components, the API server (it hangs without etcd), then etcd;
        each by its own pid."""
        if self.components is not None:
            self.components.stop()
        self.stop_apiserver()
        stop_process(self.etcd, grace=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            self.remove()
