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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.controlplane import binaries_dir
from agent_workspace_webhook.testing.image import Docker, build_image, build_pause, ensure_base, image_size

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/node/" in str(item.fspath):
            item.add_marker(pytest.mark.node)


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
        yield env


def kubectl(env: Environment, *args: str, timeout: float = 180, check: bool = True) -> str:
    done = subprocess.run(
        [str(env.plane.bin_dir / "kubectl"), f"--kubeconfig={env.plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def certs_overlay(directory: Path) -> Path:
    """`agent-workspace-webhook certs` as a user runs it: CA, serving certificate and the overlay."""
    done = subprocess.run([str(CLI), "certs", "--out", str(directory)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return directory


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


def ready_replicas(env: Environment) -> list[dict[str, Any]]:
    """The webhook's Pods that are Ready and not being deleted."""
    pods = json.loads(kubectl(env, "-n", WEBHOOK, "get", "pods", "-l", SELECTOR, "-o", "json"))["items"]
    return [
        pod
        for pod in pods
        if "deletionTimestamp" not in pod["metadata"]
        and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    ]


def wait_rolled_out(env: Environment, timeout: float = 180) -> float:
    """`kubectl rollout status` of the Deployment; the seconds it took."""
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
    return time.monotonic() - started
