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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agent_workspace_webhook.testing.controlplane import ControlPlaneError, free_port, http_ok, stop_process
from agent_workspace_webhook.testing.host_state import HostState, sh
from agent_workspace_webhook.testing.image import PAUSE_IMAGE, import_images

if TYPE_CHECKING:
    from agent_workspace_webhook.testing.controlplane import ControlPlane

NODE_NAME = "real-node-0"
NODE_LABEL = {"type": "node"}
# A bridge and ranges no other plane of the repo uses (ControlPlane's default Services are
# 10.0.0.0/24, kwok's Pods 10.244.0.0/16).
BRIDGE = "awhnode0"
POD_SUBNET = "10.197.0.0/24"
GATEWAY = "10.197.0.1"
SERVICE_CIDR = "10.196.0.0/24"
CNI_BIN = Path("/usr/lib/cni")


@dataclass
class Node:
    workdir: Path
    plane: ControlPlane | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    host: HostState | None = None
    startup_seconds: float = 0.0
    restored: list[str] = field(default_factory=list)  # what restore_host() put back

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
            config = self._containerd_config()
            self.procs["containerd"] = self._spawn("containerd", ["containerd", f"--config={config}"])
            self._wait("containerd", self._containerd_answers, timeout)
            import_images(self.containerd_socket, PAUSE_IMAGE, *images)
            healthz, proxy_healthz = free_port(), free_port()
            self.procs["kubelet"] = self._spawn(
                "kubelet",
                [
                    str(plane.bin_dir / "kubelet"),
                    f"--config={self._kubelet_config(healthz)}",
                    f"--kubeconfig={plane.kubeconfig}",
                    f"--root-dir={self.workdir / 'kubelet'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={GATEWAY}",
                    f"--node-labels={','.join(f'{k}={v}' for k, v in NODE_LABEL.items())}",
                ],
            )
            self.procs["kube-proxy"] = self._spawn(
                "kube-proxy", [str(plane.bin_dir / "kube-proxy"), f"--config={self._proxy_config(proxy_healthz)}"]
            )
            self._wait("kubelet", lambda: http_ok(f"http://127.0.0.1:{healthz}/healthz"), timeout)
            self._wait("kube-proxy", lambda: http_ok(f"http://127.0.0.1:{proxy_healthz}/healthz"), timeout)
            self._wait("node Ready", self._ready, timeout)
        except BaseException:
            self.stop()
            self.restore_host()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

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
        with (self.workdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait(self, what: str, ready: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    log = (self.workdir / f"{name}.log").read_text(errors="replace").splitlines()[-20:]
                    raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n" + "\n".join(log))
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} not ready after {timeout}s; logs in {self.workdir}")

    # --- configuration files -----------------------------------------------------------------

    def _containerd_config(self) -> Path:
        base, cri = self.workdir / "containerd", 'plugins."io.containerd.grpc.v1.cri"'
        cni = self.workdir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        (cni / "net.d" / "10-awhnode.conflist").write_text(json.dumps(cni_config(cni / "ipam")))
        path = base / "config.toml"
        base.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # root on these VMs lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc
  restrict_oom_score_adj = true
  disable_apparmor = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{base / "runc"}"
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni / "net.d"}"
"""
        )
        return path

    def _kubelet_config(self, healthz: int) -> Path:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": GATEWAY,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "failCgroupV1": False,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(self.workdir / "pod-logs"),
            "resolvConf": "",
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "serializeImagePulls": False,
        }
        path = self.workdir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _proxy_config(self, healthz: int) -> Path:
        assert self.plane is not None
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.plane.kubeconfig)},
            "mode": "iptables",
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": f"127.0.0.1:{healthz}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "hostnameOverride": NODE_NAME,
            "clusterCIDR": POD_SUBNET,
            "nodePortAddresses": [f"{GATEWAY}/32"],
            # 0: leave the host's conntrack limits and timeouts as they are
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        path = self.workdir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


def cni_config(ipam_dir: Path) -> dict[str, Any]:
    """A bridge onto the bridge made here; no masquerade, no port maps: no iptables rules of CNI."""
    return {
        "cniVersion": "1.0.0",
        "name": "awhnode",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


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
