"""The rest of a living cluster, beside ControlPlane's etcd and kube-apiserver: the controller
manager (PV binder, pvc-protection, Job, namespace, garbage collector, ResourceQuota, ...), the
scheduler, kwok playing the kubelets of three simulated nodes, and csi-provisioner with our CSI
driver (controlplane/csi-driver: a directory per volume, clones by copying) behind a default
StorageClass that allows clones. All on 127.0.0.1, logs in the plane's workdir.

kwok's stages (bin/kwok-stages.yaml, from its module) run every Pod and complete Job Pods; here
the Pods of the platform's agent runs (label component=code-runner) stay Running until deleted
or annotated as done (FINISH), as a real agent works until done or cancelled.
"""

from __future__ import annotations

import copy
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from agent_workspace_webhook.testing.processes import ControlPlaneError, stop_process
from agent_workspace_webhook.testing.tools import BUILD_HINT, free_port, http_ok


class Plane(Protocol):
    """What the rest of the cluster needs of the etcd and kube-apiserver it joins (controlplane.py's
    ControlPlane, which starts it): declared here, so that neither module imports the other back."""

    workdir: Path
    bin_dir: Path

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def ca_file(self) -> Path: ...

    def spawn(self, name: str, args: list[str], binary_name: str | None = None) -> subprocess.Popen[bytes]: ...

    def wait_for(self, what: str, proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> None: ...

    def tail(self, what: str, lines: int = ...) -> str: ...


DRIVER = "workspaces.csi.local"
# Three classes of the one driver: the default (volumes go with their PVC, may grow), one that
# keeps a deleted PVC's volume as a Released PV (what the chart's workspace class does), and one
# that cannot grow.
STORAGE_CLASS = "workspaces"
RETAIN_CLASS = "workspaces-retain"
FIXED_CLASS = "workspaces-fixed"
NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
NODE_SIZE = {"cpu": "8", "memory": "32Gi", "pods": "110"}
KWOK_LABEL = {"type": "kwok"}
# kwok completes an agent run's Pod (component=code-runner) once it carries this annotation:
# the agent is done (runs.finish).
FINISH = "testing.agents.platform/finish"
# Stopped in this order (the reverse of start): nothing that writes to the API outlives it.
ORDER = ("csi-resizer", "csi-provisioner", "csi-driver", "kwok", "kube-scheduler", "kube-controller-manager")


@dataclass
class Living:
    plane: Plane
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    startup_seconds: float = 0.0
    grows: bool = False  # a csi-resizer runs: workspaces' volumes can be expanded

    @property
    def state_dir(self) -> Path:
        """Where the CSI driver keeps each volume as a directory named by its volume handle."""
        return self.plane.workdir / "csi-state"

    def volume_dir(self, volume_handle: str) -> Path:
        return self.state_dir / volume_handle

    def start(self, timeout: float = 60) -> Living:
        """Start the components, then make the nodes and the storage classes; on any failure,
        stop what was started (the plane does not know of these processes until this returns)."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> Living:
        started = time.monotonic()
        plane, kubeconfig, workdir = self.plane, str(self.plane.kubeconfig), self.plane.workdir
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # their self-signed serving certificates
        kcm_port, scheduler_port, kwok_port = free_port(), free_port(), free_port()
        self.procs["kube-controller-manager"] = plane.spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                f"--service-account-private-key-file={workdir / 'sa.key'}",
                f"--root-ca-file={plane.ca_file}",
                "--use-service-account-credentials=false",
                "--controllers=*,-serviceaccount-token",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={workdir / 'kcm-certs'}",
            ],
        )
        self.procs["kube-scheduler"] = plane.spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={scheduler_port}",
                f"--cert-dir={workdir / 'scheduler-certs'}",
            ],
        )
        stages = workdir / "kwok-stages.yaml"
        built_stages = plane.bin_dir / "kwok-stages.yaml"
        if not built_stages.is_file():
            raise ControlPlaneError(f"{built_stages} is missing: {BUILD_HINT}")
        stages.write_text(agent_run_stages(built_stages.read_text()))
        self.procs["kwok"] = plane.spawn(
            "kwok",
            [
                f"--kubeconfig={kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{kwok_port}",
            ],
        )
        sock = workdir / "csi" / "csi.sock"
        sock.parent.mkdir(exist_ok=True)
        self.procs["csi-driver"] = plane.spawn(
            "csi-driver",
            [f"--endpoint=unix://{sock}", f"--state-dir={self.state_dir}"],
            binary_name="workspaces-csi-driver",
        )
        plane.wait_for("csi-driver", self.procs["csi-driver"], lambda: _accepts(sock), timeout)
        self.procs["csi-provisioner"] = plane.spawn(
            "csi-provisioner",
            [
                f"--kubeconfig={kubeconfig}",
                f"--csi-address={sock}",
                "--leader-election=false",
                f"--http-endpoint=127.0.0.1:{free_port()}",
                "--timeout=30s",
            ],
        )
        # Only what grows volumes needs it: `build.sh demo` leaves it out, and the cluster then
        # provisions volumes but does not expand them.
        self.grows = (plane.bin_dir / "csi-resizer").exists()
        if self.grows:
            self.procs["csi-resizer"] = plane.spawn(
                "csi-resizer",
                [
                    f"--kubeconfig={kubeconfig}",
                    f"--csi-address={sock}",
                    "--leader-election=false",
                    f"--http-endpoint=127.0.0.1:{free_port()}",
                    "--timeout=30s",
                ],
            )
        checks = {
            "kube-controller-manager": lambda: http_ok(f"https://127.0.0.1:{kcm_port}/healthz", insecure),
            "kube-scheduler": lambda: http_ok(f"https://127.0.0.1:{scheduler_port}/readyz", insecure),
            "kwok": lambda: http_ok(f"http://127.0.0.1:{kwok_port}/healthz"),
            # no health URL without leader election: its log says when it is working
            "csi-provisioner": lambda: "Started provisioner controller" in plane.tail("csi-provisioner", 200),
            "csi-resizer": lambda: "Starting external resizer" in plane.tail("csi-resizer", 200),
        }
        for name, ready in checks.items():
            if name in self.procs:
                plane.wait_for(name, self.procs[name], ready, timeout)
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(str(plane.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
        with client.ApiClient(configuration) as admin:
            _apply_nodes_and_storage(admin, timeout)
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        for name in ORDER:
            stop_process(self.procs.pop(name, None), grace=10)


def agent_run_stages(upstream: str) -> str:
    """kwok's stages with two changes: its pod-complete stage (Pods of Jobs finish at once) leaves
    the Pods of the platform's agent runs (label component=code-runner) Running, as a real agent
    works until done; and a copy of it completes those once annotated as done (runs.finish)."""
    stages = [doc for doc in yaml.safe_load_all(upstream) if doc]
    complete = next((stage for stage in stages if stage["metadata"]["name"] == "pod-complete"), None)
    if complete is None:
        raise ValueError("kwok-stages.yaml has no pod-complete stage: rebuild with controlplane/build.sh")
    finished = copy.deepcopy(complete)
    finished["metadata"]["name"] = "pod-complete-agent-run"
    finished["spec"]["selector"]["matchExpressions"].append(
        {"key": f'.metadata.annotations["{FINISH}"]', "operator": "Exists"}
    )
    complete["spec"]["selector"]["matchExpressions"].append(
        {"key": '.metadata.labels["component"]', "operator": "NotIn", "values": ["code-runner"]}
    )
    return yaml.safe_dump_all([*stages, finished], sort_keys=False)


def _apply_nodes_and_storage(admin: Any, timeout: float) -> None:
    from kubernetes import client

    core, storage = client.CoreV1Api(admin), client.StorageV1Api(admin)
    for name in NODES:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, **KWOK_LABEL},
            },
            # A node's size, as a kubelet would report it (a Node may be created with its status).
            # kwok's default is 1k CPUs, on which every Pod scores the same and the scheduler
            # piles them onto one node; on 8 it spreads them as on a real cluster.
            "status": {"capacity": NODE_SIZE, "allocatable": NODE_SIZE},
        }
        core.create_node(node)  # type: ignore[arg-type]
    storage.create_csi_driver(
        {  # type: ignore[arg-type]
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": DRIVER},
            "spec": {"attachRequired": False, "podInfoOnMount": False, "volumeLifecycleModes": ["Persistent"]},
        }
    )
    for name, reclaim, grows in (
        (STORAGE_CLASS, "Delete", True),
        (RETAIN_CLASS, "Retain", True),
        (FIXED_CLASS, "Delete", False),
    ):
        default = {"storageclass.kubernetes.io/is-default-class": "true"} if name == STORAGE_CLASS else {}
        storage.create_storage_class(
            {  # type: ignore[arg-type]
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": name, "annotations": default},
                "provisioner": DRIVER,
                "reclaimPolicy": reclaim,
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": grows,
            }
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = core.list_node().items
        conditions = [c for n in nodes if n.status for c in n.status.conditions or []]
        ready = [c for c in conditions if c.type == "Ready" and c.status == "True"]
        if len(ready) == len(NODES):
            return
        time.sleep(0.1)
    raise TimeoutError(f"kwok nodes not Ready within {timeout}s")


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
    return True
