"""What a real node changes on the host, recorded before and put back after, even when a test
failed: the sysctls the kubelet, kube-proxy and CNI rewrite, the iptables chains they leave
(kube-proxy's own --cleanup first, then any KUBE-*/CNI-* chain that was not there before), the
network namespaces and the bridge, the mounts under the node's directory, and the cgroups the
kubelet made."""

from __future__ import annotations

import contextlib
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# The kubelet sets the first five (protectKernelDefaults: false), the CNI bridge may turn on
# forwarding, kube-proxy may set route_localnet and conntrack limits.
SYSCTLS = (
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "vm/panic_on_oom",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)
TABLES = ("filter", "nat", "mangle")
OURS = re.compile(r"^(KUBE-|CNI-)")
NETNS = Path("/var/run/netns")
CGROUPS = Path("/sys/fs/cgroup")
# The kubelet's cgroups (cgroupfs driver, cgroupsPerQOS): kubepods and its QoS children.
KUBELET_CGROUP = "kubepods"


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


def chains(binary: str) -> set[tuple[str, str]]:
    found = set()
    for table in TABLES:
        for line in sh(binary, "-t", table, "-S").stdout.splitlines():
            if line.startswith("-N "):
                found.add((table, line.split()[1]))
    return found


@dataclass
class HostState:
    sysctls: dict[str, str] = field(default_factory=dict)
    chains: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)
    restored: list[str] = field(default_factory=list)  # what restore() changed back, for the report

    @classmethod
    def record(cls) -> HostState:
        state = cls()
        for key in SYSCTLS:
            path = Path("/proc/sys") / key
            if path.exists():
                state.sysctls[key] = path.read_text().strip()
        for binary in ("iptables", "ip6tables"):
            state.chains[binary] = chains(binary)
        state.netns = {p.name for p in NETNS.iterdir()} if NETNS.is_dir() else set()
        state.cgroups = {str(c) for c in CGROUPS.glob(f"*/{KUBELET_CGROUP}")}
        return state

    def restore(self, node_dir: Path, bridge: str, kube_proxy: Path | None) -> None:
        """Undo, in an order that lets each step succeed; every step runs whatever the others did."""
        unmount_under(node_dir)
        for name in sorted({p.name for p in NETNS.iterdir()} - self.netns if NETNS.is_dir() else ()):
            sh("ip", "netns", "delete", name)
            self.restored.append(f"netns {name}")
        if sh("ip", "link", "show", bridge).returncode == 0:
            sh("ip", "link", "delete", bridge)
            self.restored.append(f"bridge {bridge}")
        if kube_proxy is not None and kube_proxy.exists():
            sh(str(kube_proxy), "--cleanup")
        for binary, before in self.chains.items():
            new = {(t, c) for t, c in chains(binary) - before if OURS.match(c)}
            for table, chain in sorted(new):  # rules first (they may jump to each other), then chains
                sh(binary, "-t", table, "-F", chain)
            for table in TABLES:  # jumps from the built-in chains
                for line in sh(binary, "-t", table, "-S").stdout.splitlines():
                    target = line.split(" -j ")[-1].split()[0] if " -j " in line else ""
                    if line.startswith("-A ") and (table, target) in new:
                        sh(binary, "-t", table, *line.replace("-A ", "-D ", 1).split())
            for table, chain in sorted(new):
                sh(binary, "-t", table, "-X", chain)
                self.restored.append(f"{binary} -t {table} chain {chain}")
        for cgroup in {str(c) for c in CGROUPS.glob(f"*/{KUBELET_CGROUP}")} - self.cgroups:
            remove_cgroup(Path(cgroup))
        for key, value in self.sysctls.items():
            path = Path("/proc/sys") / key
            with contextlib.suppress(OSError):
                if path.read_text().strip() != value:
                    path.write_text(value)
                    self.restored.append(f"sysctl {key.replace('/', '.')}={value}")


def unmount_under(directory: Path) -> None:
    """Every mount point below `directory`, deepest first (the kubelet's Secret and token
    volumes, containerd's rootfs and shm mounts)."""
    prefix = str(directory.resolve()) + "/"
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        sh("umount", "-l", point)


def remove_cgroup(path: Path) -> None:
    """rmdir a cgroup tree bottom-up (a cgroup with no tasks left can be removed)."""
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
