"""The node tier: the webhook as users run it. Its image built from the Dockerfile (on a base
made from Debian's packages where no registry serves it), a living cluster with a real node
(containerd, CNI bridge, kubelet, kube-proxy) that runs that image, and the install applied as
users apply it. Root only (debootstrap, dockerd, containerd, iptables): elsewhere it skips,
saying so. One environment for the whole session; it stops by pid and puts the host back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.image import Docker, build_image, build_pause, ensure_base, image_size
from agent_workspace_webhook.testing.tools import binaries_dir, kubectl

ROOT = Path(__file__).resolve().parents[2]
# The tag the manifests and the chart's defaults name: imported into the node's containerd under
# it, the Deployment's IfNotPresent pull policy finds it there.
IMAGE = yaml.safe_load((ROOT / "manifests/base/deployment.yaml").read_text())["spec"]["template"]["spec"]["containers"][
    0
]["image"]
CLI = Path(sys.executable).parent / "agent-workspace-webhook"
WEBHOOK = "agent-workspace-webhook"  # the namespace, Deployment, Service and release
SELECTOR = "app.kubernetes.io/name=agent-workspace-webhook"
NEEDS = ("dockerd", "containerd", "ctr", "runc", "debootstrap", "iptables", "gcc", "ip")


@dataclass
class Built:
    image: str
    size: int
    base: str  # how the base was had: cached, local, pulled, debootstrap
    seconds: float


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The image, built from the Dockerfile as it is, and the Pod sandbox image."""
    if os.geteuid() != 0:
        pytest.skip("the node tier needs root (debootstrap, dockerd, containerd, iptables)")
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the node tier needs {', '.join(missing)}: `bash controlplane/build.sh` as root installs them")
    if not (binaries_dir() / "kubelet").exists():
        pytest.fail(f"{binaries_dir() / 'kubelet'} is missing: run `bash controlplane/build.sh`")
    workdir = tmp_path_factory.mktemp("image")
    docker = Docker(workdir).start()
    try:
        started = time.monotonic()
        base = ensure_base(workdir)
        build_image(IMAGE)
        build_pause(workdir)
        yield Built(IMAGE, image_size(IMAGE), base, time.monotonic() - started)
    finally:
        docker.stop()


@pytest.fixture(scope="session")
def node_env(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    with Environment(node=True, node_images=(built.image,), workdir=tmp_path_factory.mktemp("node-cluster")) as env:
        assert env.real_node is not None
        print(f"\nnode Ready {env.real_node.startup_seconds:.1f} s after containerd started (images imported)")
        yield env
    if env.real_node is not None:
        print(f"\nhost state put back: {', '.join(env.real_node.restored) or 'nothing had changed'}")


def certs_overlay(directory: Path) -> Path:
    """`agent-workspace-webhook certs` as a user runs it: CA, serving certificate and the overlay."""
    done = subprocess.run([str(CLI), "certs", "--out", str(directory)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return directory


def install_fresh(env: Environment, install: Callable[[], object]) -> float:
    """Whatever install was there removed, then `install()` as a user runs it, until two Ready
    replicas behind a routed Service: the seconds from the install to that."""
    uninstall(env)
    started = time.monotonic()
    install()
    wait_rolled_out(env)
    return time.monotonic() - started


def uninstall(env: Environment) -> None:
    """Whatever install a module left (helm release or kustomize objects): its cluster-wide
    objects and its namespace, gone before this returns; then the namespace again, empty (the
    environment pins its Pods to the real node)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    kubectl(env, "delete", "mutatingwebhookconfiguration,clusterrole,clusterrolebinding", WEBHOOK, "--ignore-not-found")
    core = client.CoreV1Api(env.admin)
    try:
        core.delete_namespace(WEBHOOK)
    except ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            core.read_namespace(WEBHOOK)
        except ApiException as exc:
            if exc.status == 404:
                env.namespace(WEBHOOK)
                return
            raise
        time.sleep(0.5)
    raise AssertionError(f"namespace {WEBHOOK} still there after 120 s")


def replicas(env: Environment) -> list[dict[str, Any]]:
    """The webhook's Pods, Ready or not, being deleted or not."""
    pods: list[dict[str, Any]] = json.loads(kubectl(env, "-n", WEBHOOK, "get", "pods", "-l", SELECTOR, "-o", "json"))[
        "items"
    ]
    return pods


def replica_names(env: Environment) -> set[str]:
    return {pod["metadata"]["name"] for pod in replicas(env)}


def ready_replicas(env: Environment) -> list[dict[str, Any]]:
    """The webhook's Pods that are Ready and not being deleted."""
    return [
        pod
        for pod in replicas(env)
        if "deletionTimestamp" not in pod["metadata"]
        and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    ]


def wait_rolled_out(env: Environment, timeout: float = 180) -> float:
    """`kubectl rollout status` of the Deployment, and kube-proxy routing its Service; the seconds
    it took."""
    started = time.monotonic()
    kubectl(
        env,
        "-n",
        WEBHOOK,
        "rollout",
        "status",
        f"deployment/{WEBHOOK}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 30,
    )
    wait_routed(env)
    return time.monotonic() - started


def cluster_ip(env: Environment, namespace: str = WEBHOOK, service: str = WEBHOOK) -> str:
    return kubectl(env, "-n", namespace, "get", "service", service, "-o", "jsonpath={.spec.clusterIP}")


def wait_routed(env: Environment, namespace: str = WEBHOOK, service: str = WEBHOOK, timeout: float = 30) -> None:
    """Until kube-proxy routes the Service's cluster IP: before it has seen Ready endpoints it
    rejects (connection refused), however Ready the Pods behind it are."""
    ip, deadline = cluster_ip(env, namespace, service), time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = ["iptables", "-t", "nat", "-L", "KUBE-SERVICES", "-n"]
        rules = subprocess.run(listing, capture_output=True, text=True, check=True).stdout
        if any(f"{namespace}/{service}:https cluster IP" in line and f" {ip} " in line for line in rules.splitlines()):
            return
        time.sleep(0.5)
    raise AssertionError(f"kube-proxy does not route the Service {namespace}/{service} ({ip}) after {timeout} s")


def service_connections(env: Environment) -> set[str]:
    """The Pod addresses behind the host's connections to the Service's cluster IP, from the
    host's connection tracking (`dst=<cluster IP> dport=443` answered from `<pod>:8443`): calls
    that went through the Service to a Pod. Only the API server calls the webhook that way."""
    ip, pods = cluster_ip(env), set()
    for entry in Path("/proc/net/nf_conntrack").read_text().splitlines():
        fields = entry.split()
        if f"dst={ip}" in fields and "dport=443" in fields and "sport=8443" in fields:
            pods.add(next(f for f in fields[fields.index(f"dst={ip}") + 1 :] if f.startswith("src="))[4:])
    return pods


def container_pid(pod: dict[str, Any]) -> int:
    """The host's pid of the webhook in this replica (the container's `serve` process, found by
    the Pod's uid in its cgroup path, as the kubelet names Pod cgroups)."""
    uid = pod["metadata"]["uid"]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"pod{uid}" in (proc / "cgroup").read_text() and b"serve" in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except OSError:  # it ended meanwhile
            continue
    raise AssertionError(f"no serve process of Pod {pod['metadata']['name']} (uid {uid}) on the host")
