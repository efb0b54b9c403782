"""The webhook installed with Helm as the README says (the Secret `certs` writes, then `helm
install` with its CA as caBundle), from its image on the real node: two Ready replicas, a run's
admission through the Service; then a `helm upgrade` that changes a setting, rolled out while a
run is made every 200 ms, with no failed admission and the new setting in force."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import CHART
from agent_workspace_webhook.testing.kube import wait_bound
from agent_workspace_webhook.testing.node_config import NODE_NAME
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import start_run, wait_running
from agent_workspace_webhook.testing.tools import kubectl

from .conftest import (
    IMAGE,
    WEBHOOK,
    certs_overlay,
    install_fresh,
    ready_replicas,
    service_connections,
)
from .traffic import replaced_under_traffic

# Needs the control plane or Docker (e2e), and root (node): tests/node/conftest.py says which.
pytestmark = [pytest.mark.e2e, pytest.mark.node]


@pytest.fixture(scope="module")
def released(node_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> float:
    """Seconds from the Secret and `helm install` to two Ready replicas."""
    certs = certs_overlay(tmp_path_factory.mktemp("helm-certs") / "generated")

    def install() -> None:
        kubectl(node_env, "apply", "-f", str(certs / "secret.yaml"))
        helm(node_env, "install", WEBHOOK, str(CHART), "-n", WEBHOOK, "--set", "namespace.create=false",
             "--set-file", f"tls.caBundle={certs / 'ca.crt'}")  # fmt: skip

    return install_fresh(node_env, install)


def helm(env: Environment, *args: str) -> None:
    done = subprocess.run(
        [str(env.plane.bin_dir / "helm"), f"--kubeconfig={env.plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_helm_install_brings_up_two_ready_replicas_that_admit_through_the_service(
    node_env: Environment, released: float, tmp_path: Path
) -> None:
    print(f"helm install to two Ready replicas: {released:.1f} s")
    ready = ready_replicas(node_env)
    assert len(ready) == 2
    assert {pod["spec"]["nodeName"] for pod in ready} == {NODE_NAME}
    assert all(pod["status"]["containerStatuses"][0]["image"].endswith(IMAGE.split("/", 1)[1]) for pod in ready)
    namespace = node_env.namespace(platform=True)
    try:
        run = start_run(node_env.admin, namespace, "docs", "cleo-1", githubApp="5DLabs-Cleo[bot]")
        pod = wait_running(node_env.admin, run)
        assert claim(pod) == "workspace-docs-cleo"
        kubectl(node_env, "-n", namespace, "get", "pvc", "workspace-docs-cleo")
        assert service_connections(node_env) & {pod["status"]["podIP"] for pod in ready}  # API server -> Service -> Pod
    finally:
        node_env.delete_namespace(namespace)


def test_helm_upgrade_of_a_setting_rolls_out_with_no_failed_admission(node_env: Environment, released: float) -> None:
    namespace = node_env.namespace(platform=True)
    try:
        # One value changed, and neither --reuse-values nor tls.caBundle given again: the chart
        # keeps the CA in force (without it, every run from here on would be refused).
        upgrade = ("upgrade", WEBHOOK, str(CHART), "-n", WEBHOOK, "--set", "namespace.create=false",
                   "--set", "settings.storage.size=12Gi")  # fmt: skip
        replaced_under_traffic(node_env, namespace, "helm upgrade", lambda: helm(node_env, *upgrade))
        run = start_run(node_env.admin, namespace, "upgraded", "rex-1", githubApp="5DLabs-Rex")
        assert claim(wait_running(node_env.admin, run)) == "workspace-upgraded-rex"
        pvc = wait_bound(node_env.admin, namespace, "workspace-upgraded-rex")
        assert pvc["spec"]["resources"]["requests"]["storage"] == "12Gi"
    finally:
        node_env.delete_namespace(namespace)
