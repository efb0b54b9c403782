"""Faults, each against a real API server: stopped mid-run, slow, invalid PVC spec, PVCs deleted
behind the cache; and the cache's promise (an existing workspace costs no API call)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.kube import create, denial, pvcs
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import job_pod, review
from agent_workspace_webhook.testing.runs import run_pod
from agent_workspace_webhook.testing.tools import kubeconfig_text
from tests.e2e.slowproxy import SlowProxy

pytestmark = pytest.mark.e2e


def api_calls(values: dict[str, float], verb: str, resource: str = "") -> float:
    return sum(
        v
        for k, v in values.items()
        if k.startswith("agent_workspace_webhook_kube_requests_total{")
        and f'verb="{verb}"' in k
        and f'resource="{resource}' in k
    )


def post(hook: LocalWebhook, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    answer = hook.review(body)
    return answer, time.monotonic() - started


@pytest.fixture(scope="module")
def own_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    """An environment of this module's own (API server only), since these tests stop its API server."""
    with Environment(workdir=tmp_path_factory.mktemp("faults")) as env:
        yield env


def test_api_server_stopped_mid_run_then_back(own_env: Environment) -> None:
    plane, admin = own_env.plane, own_env.admin
    hook = own_env.start_webhook({"kube_deadline_seconds": "1.5"})
    try:
        hook.wait_ready()
        own_env.namespace("outage")
        rex, cleo = (run_pod(admin, "outage", "outage", app) for app in ("5dlabs-rex", "5dlabs-cleobot"))
        first, _ = post(hook, review(rex, namespace="outage"))
        assert first["allowed"] and "workspace-outage-rex" in pvcs(admin, "outage")

        plane.stop_apiserver()
        hit, _ = post(hook, review(rex, namespace="outage"))
        assert hit["allowed"] is True  # known to exist: answered from the cache, no API needed
        miss, elapsed = post(hook, review(cleo, namespace="outage"))
        assert miss["allowed"] is False and elapsed < 1.5 + 1.0
        # A new workspace needs its run verified first: the message names that step, and the cause.
        assert "cannot get Job outage/run-" in miss["status"]["message"]
        assert "unreachable" in miss["status"]["message"] or "did not answer" in miss["status"]["message"]
        assert hook.get("/readyz")[0] == 503

        plane.start_apiserver()
        hook.wait_ready()
        lists_before = hook.metrics().get(
            'agent_workspace_webhook_kube_requests_total{code="200",resource="persistentvolumeclaims",verb="list"}', 0
        )
        assert lists_before >= 2  # the cache listed again after the outage
        back, _ = post(hook, review(cleo, namespace="outage"))
        assert back["allowed"] is True
        assert {"workspace-outage-rex", "workspace-outage-cleo"} <= set(pvcs(admin, "outage"))
    finally:
        hook.stop()
        if plane.apiserver is None or plane.apiserver.poll() is not None:
            plane.start_apiserver()


def test_slow_api_server_cannot_stretch_the_deadline(own_env: Environment) -> None:
    plane, workdir = own_env.plane, own_env.workdir
    assert workdir is not None
    token_file = own_env.kubeconfig_for()
    token = next(line.split(": ", 1)[1] for line in token_file.read_text().splitlines() if "token:" in line)
    own_env.namespace("slow")
    with SlowProxy(plane.port, delay=3.0) as proxy:
        kubeconfig = workdir / "kubeconfig-slow"
        kubeconfig.write_text(kubeconfig_text(f"https://127.0.0.1:{proxy.port}", plane.ca_file, token, "slow"))
        hook = own_env.start_webhook({"kube_deadline_seconds": "1.0", "watch_caches": "false"}, kubeconfig=kubeconfig)
        try:
            answer, elapsed = post(hook, review(job_pod("slow", "5dlabs-tess"), namespace="slow"))
        finally:
            hook.stop()
    assert answer["allowed"] is False and answer["status"]["code"] == 504
    assert "did not answer within 1.0s" in answer["status"]["message"]
    # Without the caches the first call is the namespace scope check, and the message names it.
    assert "while reading Namespace slow" in answer["status"]["message"]
    assert elapsed < 1.0 + 1.0


def test_invalid_pvc_spec_quotes_the_api_servers_reason(cluster: Environment, namespace: str) -> None:
    with cluster.webhook(storage_class="Not_A_Valid_Name!"), pytest.raises(ApiException) as err:
        create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
    message = denial(err.value)
    assert "rejected it as invalid" in message and "spec.storageClassName" in message
    assert "WEBHOOK_STORAGE_CLASS" in message
    assert pvcs(cluster.admin, namespace) == {}


def test_existing_workspace_costs_no_api_call_and_deleted_ones_come_back(cluster: Environment, namespace: str) -> None:
    hook = cluster.default
    assert hook is not None
    start = hook.metrics()
    create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "cache", "5dlabs-rex"))
    after_miss = hook.metrics()
    assert api_calls(after_miss, "create") - api_calls(start, "create") == 1  # a miss: one create
    # and before it two reads: the Job that owns the Pod and its CodeRun (verified-runs), no PVC read
    assert api_calls(after_miss, "get") - api_calls(start, "get") == 2
    assert api_calls(after_miss, "get", "jobs") - api_calls(start, "get", "jobs") == 1
    assert api_calls(after_miss, "get", "coderuns") - api_calls(start, "get", "coderuns") == 1
    for _ in range(3):
        create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "cache", "5dlabs-rex"))
    after_hits = hook.metrics()
    for verb in ("get", "create"):
        assert api_calls(after_hits, verb) == api_calls(after_miss, verb)  # hits: no calls at all

    core = client.CoreV1Api(cluster.admin)
    core.delete_namespaced_persistent_volume_claim("workspace-cache-rex", namespace)
    # The Pods above still mount it (kwok runs them), so pvc-protection would hold it: let it go now.
    core.patch_namespaced_persistent_volume_claim("workspace-cache-rex", namespace, {"metadata": {"finalizers": None}})
    deadline = time.monotonic() + 15
    while True:  # until the watch has told the cache, a dry run says the PVC would be created
        try:
            _, warnings = create(
                cluster.admin, namespace, run_pod(cluster.admin, namespace, "cache", "5dlabs-rex"), dry_run=True
            )
        except ApiException as exc:  # the cache still holds it as being deleted: the run is refused
            if exc.status != 409 or "is being deleted" not in str(exc.body):
                raise
            warnings = []
        if any("would be created" in w for w in warnings):
            break
        assert time.monotonic() < deadline, "the deleted PVC stayed in the cache"
        time.sleep(0.1)
    create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "cache", "5dlabs-rex"))
    assert "workspace-cache-rex" in pvcs(cluster.admin, namespace)


def test_without_the_coderun_crd_agent_pods_are_admitted_and_the_crd_is_picked_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The platform not installed yet, or its CRD being replaced: no CodeRun exists, so no run asks
    # for a fresh workspace. Before, every agent Pod was answered 500 ("cannot list CodeRun").
    from agent_workspace_webhook.testing.install import CODERUN_CRD, install_platform_crd

    with Environment(workdir=tmp_path_factory.mktemp("no-crd")) as env:
        extensions = client.ApiextensionsV1Api(env.admin)
        extensions.delete_custom_resource_definition(CODERUN_CRD)
        deadline = time.monotonic() + 30
        while any(
            crd.metadata and crd.metadata.name == CODERUN_CRD
            for crd in extensions.list_custom_resource_definition().items
        ):
            assert time.monotonic() < deadline, "the CRD is not gone"
            time.sleep(0.2)
        hook = env.start_webhook({"create_for": "any"})
        unserved = 'agent_workspace_webhook_cache_resource_unserved{cache="CodeRun"}'
        try:
            hook.wait_ready()  # ready all the same: every run is admitted
            status, body = hook.get("/readyz")
            assert status == 200 and "coderuns.agents.platform/v1 is not served" in body, body
            env.namespace("no-crd")
            answer = hook.review(review(job_pod("cto", "5dlabs-rex"), namespace="no-crd"))
            assert answer["allowed"] is True and "workspace-cto-rex" in pvcs(env.admin, "no-crd"), answer
            assert hook.metrics().get(unserved) == 1.0
            assert "its CustomResourceDefinition is missing" in hook.log()  # said, once
            assert hook.log().count("resource not served") == 1

            install_platform_crd(env.admin)  # picked up without a restart
            deadline = time.monotonic() + 30
            while hook.metrics().get(unserved) != 0.0:
                assert time.monotonic() < deadline, hook.get("/readyz")
                time.sleep(0.5)
            assert "degraded" not in hook.get("/readyz")[1]
        finally:
            hook.stop()
