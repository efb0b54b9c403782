"""A real node beside the kwok ones: its own containerd (config, root, state and socket of its
own), a CNI bridge made here, the kubelet and kube-proxy built by controlplane/build.sh. The API
server must listen on the bridge's gateway address (ControlPlane.host) so that Pods reach it
through the `kubernetes` Service. `stop()` cordons the node, lets the kubelet stop its Pods,
stops every process by its pid, then puts the host back (testing/host_state.py).

Root only. Pods run from images imported into this containerd (testing/image.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent_workspace_webhook.testing.host_state import HostState, sh
from agent_workspace_webhook.testing.image import PAUSE_IMAGE, import_images
from agent_workspace_webhook.testing.node_config import (
    BRIDGE,
    GATEWAY,
    NODE_NAME,
    containerd_config,
    kubelet_config,
    proxy_config,
)
from agent_workspace_webhook.testing.processes import ControlPlaneError, spawn_logged, stop_process, wait_ready
from agent_workspace_webhook.testing.tools import free_port, http_ok

if TYPE_CHECKING:
    from agent_workspace_webhook.testing.controlplane import ControlPlane

NODE_LABEL = {"type": "node"}


@dataclass
class Node:
    workdir: Path
    plane: ControlPlane | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    host: HostState | None = None
    startup_seconds: float = 0.0
    restored: list[str] = field(default_factory=list)  # what restore_host() put back
    _kubelet_args: list[str] = field(default_factory=list)
    _kubelet_healthz: str = ""

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def prepare(self) -> Node:
        """Before the API server starts: record the host, make the bridge it will listen on."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HostState.record()
        make_bridge()
        return self

    def start(self, plane: ControlPlane, images: tuple[str, ...] = (), timeout: float = 120) -> Node:
        """containerd, the images imported into it, kubelet and kube-proxy; waits for Ready."""
        self.plane = plane
        started = time.monotonic()
        try:
            config = containerd_config(self.workdir, self.containerd_socket)
            self.procs["containerd"] = self._spawn("containerd", ["containerd", f"--config={config}"])
            self._wait("containerd", self._containerd_answers, timeout)
            import_images(self.containerd_socket, PAUSE_IMAGE, *images)
            healthz, proxy_healthz = free_port(), free_port()
            self._kubelet_args = [
                str(plane.bin_dir / "kubelet"),
                f"--config={kubelet_config(self.workdir, self.containerd_socket, healthz)}",
                f"--kubeconfig={plane.kubeconfig}",
                f"--root-dir={self.workdir / 'kubelet'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={GATEWAY}",
                f"--node-labels={','.join(f'{k}={v}' for k, v in NODE_LABEL.items())}",
            ]
            self._kubelet_healthz = f"http://127.0.0.1:{healthz}/healthz"
            self.procs["kubelet"] = self._spawn("kubelet", self._kubelet_args)
            self.procs["kube-proxy"] = self._spawn(
                "kube-proxy",
                [
                    str(plane.bin_dir / "kube-proxy"),
                    f"--config={proxy_config(self.workdir, plane.kubeconfig, proxy_healthz)}",
                ],
            )
            self._wait("kubelet", lambda: http_ok(self._kubelet_healthz), timeout)
            self._wait("kube-proxy", lambda: http_ok(f"http://127.0.0.1:{proxy_healthz}/healthz"), timeout)
            self._wait("node Ready", self._ready, timeout)
        except BaseException:
            self.stop()
            self.restore_host()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def restart_kubelet(self, timeout: float = 60) -> None:
        """The kubelet stopped by its pid and started again with the same flags: the Pods run on,
        and with its in-memory ServiceAccount tokens gone it requests each Pod's anew and
        rewrites their token files (atomically, as on any renewal)."""
        stop_process(self.procs.pop("kubelet", None), grace=15)
        self.procs["kubelet"] = self._spawn("kubelet", self._kubelet_args)
        self._wait("kubelet", lambda: http_ok(self._kubelet_healthz), timeout)

    def token_files(self) -> list[Path]:
        """The ServiceAccount token file of every Pod the kubelet runs."""
        return sorted((self.workdir / "kubelet" / "pods").glob("*/volumes/kubernetes.io~projected/*/token"))

    def _containerd_answers(self) -> bool:
        return sh("ctr", "-a", str(self.containerd_socket), "version").returncode == 0

    def _ready(self) -> bool:
        done = self.plane_kubectl("get", "node", NODE_NAME, "-o", "json")
        if done.returncode != 0:
            return False
        conditions = json.loads(done.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def plane_kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.plane is not None
        return subprocess.run(
            [str(self.plane.bin_dir / "kubectl"), f"--kubeconfig={self.plane.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stop(self) -> None:
        """Cordon, delete the node's Pods and give the kubelet a bounded time to stop them (their
        sandboxes' CNI teardown), then kube-proxy, kubelet, containerd and its shims by pid."""
        if "kubelet" in self.procs and self.procs["kubelet"].poll() is None:
            self.plane_kubectl("cordon", NODE_NAME)
            on_node = f"--field-selector=spec.nodeName={NODE_NAME}"
            self.plane_kubectl("delete", "pods", "-A", on_node, "--wait=false", "--grace-period=1")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self._pods_left():
                time.sleep(0.5)
        for name in ("kube-proxy", "kubelet"):
            stop_process(self.procs.pop(name, None), grace=15)
        shims = self._shims()
        stop_process(self.procs.pop("containerd", None), grace=15)
        for pid in shims:  # their containers' tasks die with them
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def restore_host(self) -> None:
        """After stop() and the API server (it listens on the bridge): the host as it was."""
        if self.host is not None:
            self.host.restore(self.workdir, BRIDGE, self.plane.bin_dir / "kube-proxy" if self.plane else None)
            self.restored, self.host = self.host.restored, None

    def _pods_left(self) -> bool:
        done = self.plane_kubectl("get", "pods", "-A", f"--field-selector=spec.nodeName={NODE_NAME}", "-o", "name")
        tasks = sh("ctr", "-a", str(self.containerd_socket), "-n", "k8s.io", "tasks", "ls", "-q")
        return bool(done.stdout.strip()) or bool(tasks.stdout.strip())

    def _shims(self) -> list[int]:
        """The runc shims our containerd started: each names our socket in its arguments."""
        socket = str(self.containerd_socket).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if socket in (proc / "cmdline").read_bytes():
                        pids.append(int(proc.name))
        own = {p.pid for p in self.procs.values()}
        return [pid for pid in pids if pid not in own]

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        return spawn_logged(self.workdir, name, args)

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        wait_ready(what, ready, timeout, self.workdir, self.procs)


def make_bridge() -> None:
    """The bridge with its gateway address first, so that the API server can listen on it."""
    if sh("ip", "link", "show", BRIDGE).returncode == 0:
        raise ControlPlaneError(f"bridge {BRIDGE} exists already: another node tier running, or one not cleaned up")
    for args in (
        ("ip", "link", "add", BRIDGE, "type", "bridge"),
        ("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE),
        ("ip", "link", "set", BRIDGE, "up"),
    ):
        done = sh(*args)
        if done.returncode != 0:
            raise ControlPlaneError(f"{' '.join(args)}: {done.stderr}")
