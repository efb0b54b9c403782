"""The webhook installed as users install it with kustomize (`certs`, then `kubectl apply -k`
of its overlay), running from its image on the real node: two Ready replicas, admissions that go
API server -> Service -> Pod, the API read through the Pod's ServiceAccount token; then, while a
run is made every 200 ms, a flood of clients on one replica (inside its Pod's memory limit), a
certificate rotation, a rolling restart and an eviction through the PodDisruptionBudget, each
with no failed admission."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_workspace_webhook.rules.quantity import parse_quantity
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.node_config import NODE_NAME, SERVICE_CIDR
from agent_workspace_webhook.testing.objects import claim
from agent_workspace_webhook.testing.runs import start_run, wait_running
from agent_workspace_webhook.testing.tools import kubectl, write_key_pair
from agent_workspace_webhook.testing.usage import MIB, MemoryLimit, Sampler, usage

from .conftest import (
    IMAGE,
    SELECTOR,
    WEBHOOK,
    certs_overlay,
    container_pid,
    install_fresh,
    ready_replicas,
    service_connections,
    wait_routed,
)
from .traffic import Traffic, counted, replaced_under_traffic

ROOT = Path(__file__).resolve().parents[2]
# Needs the control plane or Docker (e2e), and root (node): tests/node/conftest.py says which.
pytestmark = [pytest.mark.e2e, pytest.mark.node]


@dataclass
class Installed:
    overlay: Path
    seconds_to_ready: float


@pytest.fixture(scope="module")
def installed(node_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    overlay = certs_overlay(tmp_path_factory.mktemp("certs") / "generated")
    return Installed(overlay, install_fresh(node_env, lambda: kubectl(node_env, "apply", "-k", str(overlay))))


@pytest.fixture
def runs_namespace(node_env: Environment) -> Iterator[str]:
    name = node_env.namespace(platform=True)
    yield name
    node_env.delete_namespace(name)


def test_apply_k_brings_up_two_ready_replicas_from_the_image_on_the_real_node(
    node_env: Environment, installed: Installed
) -> None:
    print(f"kubectl apply -k to two Ready replicas: {installed.seconds_to_ready:.1f} s")
    ready = ready_replicas(node_env)
    assert len(ready) == 2
    for pod in ready:
        assert pod["spec"]["nodeName"] == NODE_NAME
        container = pod["status"]["containerStatuses"][0]
        assert container["ready"] and container["image"].endswith(IMAGE.split("/", 1)[1])
        # As the kubelet runs it: uid 10001, no capabilities, nothing writable, the API reached
        # through the `kubernetes` Service with the projected token (no kubeconfig anywhere).
        inside = kubectl(
            node_env, "-n", WEBHOOK, "exec", pod["metadata"]["name"], "--", "sh", "-c",
            "id -u; grep CapEff /proc/1/status; touch /opt/x 2>&1; echo $KUBERNETES_SERVICE_HOST;"
            " ls /var/run/secrets/kubernetes.io/serviceaccount; env | grep -c KUBECONFIG || true",
        )  # fmt: skip
        lines = inside.splitlines()
        assert lines[0] == "10001" and lines[1] == "CapEff:\t0000000000000000", inside
        assert "Read-only file system" in lines[2], inside
        assert lines[3] == SERVICE_CIDR.rsplit(".", 1)[0] + ".1", inside
        assert {"token", "ca.crt", "namespace"} <= set(lines[4:-1]) and lines[-1] == "0", inside


def test_a_run_gets_its_workspace_through_the_service_from_a_replica(
    node_env: Environment, installed: Installed, runs_namespace: str
) -> None:
    configuration = json.loads(kubectl(node_env, "get", "mutatingwebhookconfiguration", WEBHOOK, "-o", "json"))
    assert all("url" not in hook["clientConfig"] for hook in configuration["webhooks"])
    run = start_run(node_env.admin, runs_namespace, "cto", "rex-1", githubApp="5DLabs-Rex")
    pod = wait_running(node_env.admin, run)
    assert claim(pod) == "workspace-cto-rex"
    kubectl(node_env, "-n", runs_namespace, "get", "pvc", "workspace-cto-rex")
    assert service_connections(node_env) & {p["status"]["podIP"] for p in ready_replicas(node_env)}
    # A replica answered, and made the PVC with its own ServiceAccount's token.
    logs = [
        json.loads(line)
        for line in kubectl(node_env, "-n", WEBHOOK, "logs", "-l", SELECTOR, "--tail=-1").splitlines()
        if line.startswith("{")
    ]
    ours = [line for line in logs if line.get("namespace") == runs_namespace]
    assert any(line.get("event") == "pvc created" and line.get("pvc") == "workspace-cto-rex" for line in ours), ours
    assert any(line.get("kind") == "Pod" and line.get("decision") == "patched" for line in ours), ours


def test_a_flood_of_clients_on_a_replica_stays_inside_its_pod_memory_limit(
    node_env: Environment, installed: Installed, runs_namespace: str
) -> None:
    """5,000 clients trickling request headers straight at one replica's Pod address, reconnecting
    when dropped, while runs are made through the API server: the replica is not killed (its Pod's
    limit is the kubelet's cgroup), stays under 70% of it, and every run gets its workspace."""
    target = ready_replicas(node_env)[0]
    name, ip = target["metadata"]["name"], target["status"]["podIP"]
    declared = parse_quantity(target["spec"]["containers"][0]["resources"]["limits"]["memory"])
    pid = container_pid(target)
    limit = MemoryLimit.of(pid)
    assert declared is not None and limit.limit == int(declared)
    restarts = target["status"]["containerStatuses"][0]["restartCount"]
    before = usage(pid)
    command = [sys.executable, "-m", "tests.e2e.trickle", "8443", str(installed.overlay / "ca.crt"), "--host", ip]
    command += ["--server-name", f"{WEBHOOK}.{WEBHOOK}.svc", "--source", "", "--clients", "5000", "--seconds", "20"]
    with Traffic(node_env.admin, runs_namespace) as traffic, Sampler(pid) as sampled:
        pressure = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)
    load = json.loads(pressure.stdout)
    after = json.loads(kubectl(node_env, "-n", WEBHOOK, "get", "pod", name, "-o", "json"))["status"]
    print(
        f"5000 clients on {name}: {load['connects']} connections made ({load['refused']} failed); RSS "
        f"{before.rss / MIB:.0f} -> peak {sampled.peak_rss / MIB:.0f} MiB, Pod limit {limit.limit / MIB:.0f} MiB, "
        f"cgroup peak {limit.peak / MIB:.0f} MiB; fds {before.fds} -> peak {sampled.peak_fds}"
    )
    assert after["containerStatuses"][0]["restartCount"] == restarts and limit.oom_kills == 0
    assert load["connects"] + load["refused"] >= 5000
    assert sampled.peak_rss < 0.7 * limit.limit
    assert sampled.peak_fds <= before.fds + 200 + 8  # WEBHOOK_MAX_CONNECTIONS, and a few
    assert counted(traffic, "a flood of 5000 clients on one replica") == []


def served_certificate(ip: str) -> bytes:
    pem = ssl.get_server_certificate((ip, 8443), timeout=5)
    return ssl.PEM_cert_to_DER_cert(pem)


def file_certificate(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def set_ca_bundle(env: Environment, pem: bytes) -> None:
    bundle = base64.b64encode(pem).decode()
    patch = [{"op": "replace", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle} for i in range(2)]
    kubectl(env, "patch", "mutatingwebhookconfiguration", WEBHOOK, "--type=json", "-p", json.dumps(patch))


def test_certificate_rotation_is_picked_up_with_no_failed_admission(
    node_env: Environment, installed: Installed, runs_namespace: str, tmp_path: Path
) -> None:
    """certs/README.md's rotation to a new CA: both CAs in caBundle, the Secret replaced (the
    kubelet swaps the mounted files atomically, the webhook reloads them), then the new CA only."""
    rotated = certs_overlay(tmp_path / "rotated")
    ips = [pod["status"]["podIP"] for pod in ready_replicas(node_env)]
    old_ca = (installed.overlay / "ca.crt").read_bytes()
    with Traffic(node_env.admin, runs_namespace) as traffic:
        time.sleep(2)
        set_ca_bundle(node_env, old_ca + (rotated / "ca.crt").read_bytes())
        started = time.monotonic()
        kubectl(node_env, "apply", "-f", str(rotated / "secret.yaml"))
        new = file_certificate(rotated / "tls.crt")
        waiting = set(ips)
        while waiting and time.monotonic() - started < 180:
            waiting = {ip for ip in waiting if served_certificate(ip) != new}
            time.sleep(0.5)
        picked_up = time.monotonic() - started
        assert not waiting, f"still the old certificate on {waiting} after 180 s"
        kubectl(node_env, "apply", "-k", str(rotated))  # caBundle: the new CA only
        time.sleep(3)
    print(f"new certificate served by both replicas {picked_up:.1f} s after the Secret changed")
    assert counted(traffic, "certificate rotation") == []
    assert len(traffic.runs) >= picked_up / 0.2 * 0.8


def test_rollout_restart_has_no_failed_admission(
    node_env: Environment, installed: Installed, runs_namespace: str
) -> None:
    restart = ("-n", WEBHOOK, "rollout", "restart", f"deployment/{WEBHOOK}")
    replaced_under_traffic(node_env, runs_namespace, "rollout restart", lambda: kubectl(node_env, *restart))


def evict(env: Environment, pod: str) -> Any:
    from kubernetes import client

    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": WEBHOOK}}
    return client.CoreV1Api(env.admin).create_namespaced_pod_eviction(pod, WEBHOOK, body)  # type: ignore[arg-type]


def test_eviction_through_the_disruption_budget_has_no_failed_admission(
    node_env: Environment, installed: Installed, runs_namespace: str
) -> None:
    from kubernetes.client.exceptions import ApiException

    first, second = (pod["metadata"]["name"] for pod in ready_replicas(node_env))
    with Traffic(node_env.admin, runs_namespace) as traffic:
        time.sleep(2)
        evict(node_env, first)
        with pytest.raises(ApiException) as refused:  # the budget keeps one replica
            evict(node_env, second)
        assert refused.value.status == 429
        deadline = time.monotonic() + 120
        while len(ready_replicas(node_env)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)
    assert len(ready_replicas(node_env)) == 2
    assert counted(traffic, "eviction") == []


def test_the_webhook_keeps_reading_the_api_after_the_kubelet_renews_its_token(
    node_env: Environment, installed: Installed, tmp_path: Path
) -> None:
    """The token file the kubelet projects is renewed under the running webhook; once the old
    token is refused, the webhook still reads and writes the API (its client re-reads the file
    every minute). A new signing key renews every token now: a token's lifetime cannot be made
    shorter than an hour (--service-account-max-token-expiration)."""
    plane, node = node_env.plane, node_env.real_node
    assert node is not None
    old_keys = sorted(plane.workdir.glob("sa*.pub"))
    signing, public = write_key_pair(tmp_path / "sa-new.key", tmp_path / "sa-new.pub")
    plane.restart_with_service_account_keys(signing, [*old_keys, public])  # old tokens still valid
    before = {path: path.read_text() for path in node.token_files()}
    assert len(before) == 2
    node.restart_kubelet()
    started = time.monotonic()
    while time.monotonic() - started < 90 and any(path.read_text() == token for path, token in before.items()):
        time.sleep(0.5)
    renewed = time.monotonic() - started
    assert all(path.read_text() != token for path, token in before.items()), "token files not renewed in 90 s"
    time.sleep(65)  # past the client's one-minute re-read of the file
    plane.restart_with_service_account_keys(signing, [public])  # the old tokens are refused now
    wait_routed(node_env, "default", "kubernetes", timeout=60)  # the API server's Service, for the Pods
    deadline = time.monotonic() + 90
    while len(ready_replicas(node_env)) < 2 and time.monotonic() < deadline:  # /readyz asks the API
        time.sleep(0.5)
    logs = kubectl(node_env, "-n", WEBHOOK, "logs", "-l", SELECTOR, "--tail=8", "--prefix", check=False)
    assert len(ready_replicas(node_env)) == 2, logs
    namespace = node_env.namespace(platform=True)
    try:
        run = start_run(node_env.admin, namespace, "tokens", "rex-2", githubApp="5DLabs-Rex")
        assert claim(wait_running(node_env.admin, run)) == "workspace-tokens-rex"
        kubectl(node_env, "-n", namespace, "get", "pvc", "workspace-tokens-rex")  # made with the new token
    finally:
        node_env.delete_namespace(namespace)
    print(f"token files renewed {renewed:.1f} s after the kubelet restarted; old tokens refused, webhook working")
