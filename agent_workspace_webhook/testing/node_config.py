"""The files a real node's parts start from (testing/node.py): containerd's config.toml, the CNI
conflist, the KubeletConfiguration and the KubeProxyConfiguration, written under its workdir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from agent_workspace_webhook.testing.image import PAUSE_IMAGE
from agent_workspace_webhook.testing.tools import free_port

NODE_NAME = "real-node-0"
# A bridge and ranges no other plane of the repo uses (ControlPlane's default Services are
# 10.0.0.0/24, kwok's Pods 10.244.0.0/16).
BRIDGE = "awhnode0"
POD_SUBNET = "10.197.0.0/24"
GATEWAY = "10.197.0.1"
SERVICE_CIDR = "10.196.0.0/24"
CNI_BIN = Path("/usr/lib/cni")


def containerd_config(workdir: Path, socket: Path) -> Path:
    """A containerd of its own: root, state, socket, runc root and CNI configuration under workdir."""
    base, cri = workdir / "containerd", 'plugins."io.containerd.grpc.v1.cri"'
    cni = workdir / "cni"
    (cni / "net.d").mkdir(parents=True, exist_ok=True)
    (cni / "net.d" / "10-awhnode.conflist").write_text(json.dumps(cni_config(cni / "ipam")))
    path = base / "config.toml"
    base.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
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


def kubelet_config(workdir: Path, socket: Path, healthz: int) -> Path:
    """A test node's kubelet: cgroupfs on cgroup v1, anonymous AlwaysAllow, no cluster DNS, no image GC."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": GATEWAY,
        "port": free_port(),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "failCgroupV1": False,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(workdir / "pod-logs"),
        "resolvConf": "",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "serializeImagePulls": False,
    }
    path = workdir / "kubelet.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def proxy_config(workdir: Path, kubeconfig: Path, healthz: int) -> Path:
    """kube-proxy in iptables mode, on loopback and the bridge only, host conntrack limits untouched."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
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
    path = workdir / "kube-proxy.yaml"
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
