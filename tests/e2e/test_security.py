"""Issue 10 through the real kube-apiserver: only the API server may call the webhook (mutual
TLS, with an AdmissionConfiguration giving the API server its client certificate), forged
reviews sent straight to the running webhook create nothing outside the scope, the API server's
refusals are explained by their real cause, and owner lookups are bounded."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from agent_workspace_webhook.certificates import write_client_certificate
from agent_workspace_webhook.ops.certs import write_api_server_client
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import WEBHOOK_NAMESPACE, workspace_namespace
from agent_workspace_webhook.testing.kube import create, create_job, denial, pvcs
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import claim, coderun, coderun_job, controller_ref, job_pod, review
from agent_workspace_webhook.testing.runs import run_pod
from agent_workspace_webhook.testing.tools import free_port

pytestmark = pytest.mark.e2e


# --- mutual TLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Environment, LocalWebhook]]:
    """An environment whose API server presents a client certificate to the webhook (its own:
    the flag is given at start), and the webhook requiring it."""
    workdir = tmp_path_factory.mktemp("mtls")
    port = free_port()  # known before the API server starts: its kubeconfig names host:port
    api_server_client, configuration = write_api_server_client(
        workdir / "api-server", f"127.0.0.1:{port}", "kube-apiserver", days=1
    )
    flags = [f"--admission-control-config-file={configuration}"]
    with Environment(workdir=workdir / "env", apiserver_flags=flags) as env:
        env.namespace("secure")
        hook = env.start_webhook(
            {"client_ca_file": str(api_server_client.ca), "client_names": '["kube-apiserver"]'}, port=port
        )
        env.register(hook)
        yield env, hook


def test_the_api_server_with_its_client_certificate_gets_workspaces(
    mtls: tuple[Environment, LocalWebhook],
) -> None:
    admin = mtls[0].admin
    # The webhook completes no handshake without a certificate from the client CA: a patched
    # Pod means the API server presented the one its AdmissionConfiguration names.
    stored, _ = create(admin, "secure", run_pod(admin, "secure", "billing", "5dlabs-rex"))
    assert claim(stored) == "workspace-billing-rex"
    assert "workspace-billing-rex" in pvcs(admin, "secure")


@pytest.mark.parametrize("who", ["no certificate", "a certificate from another CA"])
def test_anyone_else_cannot_complete_the_handshake_and_nothing_is_created(
    mtls: tuple[Environment, LocalWebhook], who: str
) -> None:
    env, hook = mtls
    admin, workdir = env.admin, env.workdir
    assert workdir is not None
    stranger = None
    if who != "no certificate":  # same name as the API server's, signed by a CA of its own
        stranger = write_client_certificate(workdir / f"stranger-{uuid.uuid4().hex[:6]}", "kube-apiserver")
    with pytest.raises((ssl.SSLError, httpx.TransportError)):
        hook.review(review(job_pod("forged", "5dlabs-rex"), namespace="secure"), stranger)
    assert "workspace-forged-rex" not in pvcs(admin, "secure")


# --- forged reviews against the running webhook --------------------------------------------


@pytest.mark.parametrize(
    ("target", "code", "says"),
    [
        ("kube-system", 403, "never gets workspaces"),
        (WEBHOOK_NAMESPACE, 403, "never gets workspaces"),
        ("unlabelled", 403, "not in the webhook's scope"),
        ("missing", 404, "does not exist"),
    ],
)
def test_forged_reviews_outside_the_scope_create_nothing(
    cluster: Environment, target: str, code: int, says: str
) -> None:
    core = client.CoreV1Api(cluster.admin)
    namespace = target
    if target in ("unlabelled", "missing"):
        namespace = f"{target}-{uuid.uuid4().hex[:6]}"
    if target == "unlabelled":
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})  # type: ignore[arg-type]
    assert cluster.default is not None
    answer = cluster.default.review(review(job_pod("forged", "5dlabs-rex"), namespace=namespace))
    assert answer["allowed"] is False and answer["status"]["code"] == code, answer
    assert says in answer["status"]["message"] and namespace in answer["status"]["message"]
    if target != "missing":
        assert pvcs(cluster.admin, namespace) == {}  # checked with the API, not the webhook's word
    else:
        listed = core.list_persistent_volume_claim_for_all_namespaces(field_selector=f"metadata.namespace={namespace}")
        assert listed.items == []
    if target == "unlabelled":
        core.delete_namespace(namespace)


# --- refusals named by their real cause ------------------------------------------------------


def test_a_resource_quota_refusal_names_the_quota_not_rbac(cluster: Environment, namespace: str) -> None:
    core = client.CoreV1Api(cluster.admin)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "workspaces"},
        "spec": {"hard": {"persistentvolumeclaims": "0"}},
    }
    core.create_namespaced_resource_quota(namespace, quota)  # type: ignore[arg-type]
    # No quota controller runs in this cluster: write the status it would compute.
    status = {"status": {"hard": {"persistentvolumeclaims": "0"}, "used": {"persistentvolumeclaims": "0"}}}
    core.patch_namespaced_resource_quota_status("workspaces", namespace, status)
    with pytest.raises(client.exceptions.ApiException) as refused:
        create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-rex"))
    message = denial(refused.value)
    assert f"refused by ResourceQuota {namespace}/workspaces" in message
    assert "exceeded quota: workspaces" in message  # the API server's own text, quoted
    assert "raise that quota's limit" in message
    assert "ServiceAccount" not in message and "grant" not in message
    assert pvcs(cluster.admin, namespace) == {}


def test_a_terminating_namespace_is_named_as_such(cluster: Environment) -> None:
    core = client.CoreV1Api(cluster.admin)
    name = f"ending-{uuid.uuid4().hex[:6]}"
    core.create_namespace(workspace_namespace(name))  # type: ignore[arg-type]
    hold = {"name": "held", "finalizers": ["agents.platform/test-hold"]}
    core.create_namespaced_config_map(name, {"metadata": hold})  # type: ignore[arg-type]
    # A real run, its CodeRun held as well so that it outlives the namespace controller's sweep.
    runs = client.CustomObjectsApi(cluster.admin)
    run: dict[str, Any] = runs.create_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", name, "coderuns", {**coderun("billing", "5DLabs-Rex"), "metadata": hold}
    )
    pod = job_pod("billing", "5dlabs-rex")
    job = coderun_job(run, "held-job", pod)  # its Job, held too, that the run's Pod names
    job["metadata"]["finalizers"] = hold["finalizers"]
    job["spec"]["suspend"] = True
    pod["metadata"]["ownerReferences"] = [controller_ref(create_job(cluster.admin, name, job))]
    core.delete_namespace(name)  # Terminating until the held objects go (and a namespace controller runs)
    assert cluster.default is not None
    # The API server refuses to create a Pod there before any webhook is called, so the run
    # arrives as a review straight to the webhook, whose namespace cache still says in scope.
    answer = cluster.default.review(review(pod, namespace=name))
    assert answer["allowed"] is False and answer["status"]["code"] == 403, answer
    message = answer["status"]["message"]
    assert f"namespace {name} is being deleted" in message and "being terminated" in message
    assert "ServiceAccount" not in message
    core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})
    runs.patch_namespaced_custom_object(
        "agents.platform", "v1", name, "coderuns", "held", {"metadata": {"finalizers": None}}
    )
    client.BatchV1Api(cluster.admin).patch_namespaced_job("held-job", name, {"metadata": {"finalizers": None}})


# --- bounded owner lookups -------------------------------------------------------------------


def owner_gets(hook: LocalWebhook) -> float:
    return sum(
        value
        for key, value in hook.metrics().items()
        if key.startswith("agent_workspace_webhook_kube_requests_total{")
        and 'verb="get"' in key
        and ('resource="jobs"' in key or 'resource="coderuns"' in key)
    )


def test_a_pod_with_1500_job_owners_costs_at_most_two_gets(cluster: Environment, namespace: str) -> None:
    run, _ = create(cluster.admin, namespace, coderun("billing", "5DLabs-Tess", name="task-9"))
    job = coderun_job(run, "task-9-job", job_pod(None, None))
    job["spec"]["suspend"] = True  # the Job controller makes no Pod of its own: only ours is counted
    job = create_job(cluster.admin, namespace, job)
    decoys = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": f"decoy-{i}", "uid": str(uuid.uuid4())} for i in range(1500)
    ]
    pod = job_pod(None, None)
    pod["metadata"]["ownerReferences"] = [
        *decoys,
        controller_ref(job),
    ]
    assert cluster.default is not None
    before = owner_gets(cluster.default)
    stored, _ = create(cluster.admin, namespace, pod)
    assert claim(stored) == "workspace-billing-tess"
    assert owner_gets(cluster.default) - before == 2  # the Job, then its CodeRun


def test_a_hostpath_workspace_volume_is_refused_through_the_api_server(cluster: Environment, namespace: str) -> None:
    pod = job_pod("billing", "5dlabs-rex", volume={"name": "workspace", "hostPath": {"path": "/var/lib/important"}})
    with pytest.raises(client.exceptions.ApiException) as refused:
        create(cluster.admin, namespace, pod)
    assert "its volume 'workspace' is hostPath, not a persistentVolumeClaim" in denial(refused.value)
    assert pvcs(cluster.admin, namespace) == {}


def test_only_real_runs_get_storage_through_the_api_server(cluster: Environment, platform: str) -> None:
    """The default, WEBHOOK_CREATE_FOR=verified-runs: runs made as the platform makes them get
    their workspaces; a bare Pod, a forged review for an owner that does not exist, and labels
    that disagree with the owning CodeRun create nothing."""
    from agent_workspace_webhook.testing.runs import start_run, wait_running

    hook = cluster.default
    assert hook is not None
    run = start_run(cluster.admin, platform, "ledger", "ledger-1-cleo", githubApp="5DLabs-Cleo[bot]")
    assert claim(wait_running(cluster.admin, run)) == "workspace-ledger-cleo"  # made at its first Pod
    with pytest.raises(client.exceptions.ApiException) as bare:
        create(cluster.admin, platform, job_pod("made-up", "5dlabs-rex"))
    assert "names no controller Job and CodeRun" in denial(bare.value)
    forged = hook.review(review(job_pod("forged", "5dlabs-rex", owner_job="no-such-job"), namespace=platform))
    assert forged["allowed"] is False and "Job " + platform + "/no-such-job with uid" in forged["status"]["message"]
    job = client.BatchV1Api(cluster.admin).read_namespaced_job(run.job, platform)
    assert job.metadata is not None
    lying = job_pod("othersvc", "5dlabs-tess")
    lying["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": run.job, "uid": job.metadata.uid, "controller": True}
    ]
    with pytest.raises(client.exceptions.ApiException) as disagree:
        create(cluster.admin, platform, lying)
    message = denial(disagree.value)
    assert "its labels give workspace workspace-othersvc-tess" in message and "gives workspace-ledger-cleo" in message
    assert set(pvcs(cluster.admin, platform)) == {"workspace-ledger-cleo"}  # the controller's, adopted: no other


def test_an_agent_only_the_pattern_names_mints_storage_only_for_a_verified_run(
    cluster: Environment, namespace: str
) -> None:
    # A real run (its CodeRun exists) of an agent outside the table gets its workspace: the
    # platform runs more agents than any table lists, and a refused Pod hangs its Job for a day.
    stored, _ = create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "billing", "5dlabs-anything"))
    assert claim(stored) == "workspace-billing-anything"
    # An unverified one (WEBHOOK_CREATE_FOR=any lets bare Pods have one) only for a listed agent.
    with cluster.webhook(create_for="any"):
        with pytest.raises(client.exceptions.ApiException) as refused:
            create(cluster.admin, namespace, job_pod("billing", "5dlabs-other"))
        assert "agent 'other' is in neither the agent table nor WEBHOOK_AGENT_ALLOWLIST" in denial(refused.value)
    with cluster.webhook(create_for="any", agent_allowlist='["other"]'):
        stored, _ = create(cluster.admin, namespace, job_pod("billing", "5dlabs-other"))
    assert claim(stored) == "workspace-billing-other"
    assert set(pvcs(cluster.admin, namespace)) == {"workspace-billing-anything", "workspace-billing-other"}


def test_forged_reviews_straight_to_the_webhook_create_nothing(cluster: Environment, namespace: str) -> None:
    """What an attacker in the cluster can send to port 8443 without mutual TLS (issue 23), under
    the default WEBHOOK_CREATE_FOR=verified-runs: every new workspace is denied, naming why, and
    the API server holds no PVC afterwards."""
    hook = cluster.default
    assert hook is not None
    real: dict[str, Any] = client.CustomObjectsApi(cluster.admin).create_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", namespace, "coderuns", coderun("realsvc", "5DLabs-Cleo[bot]", name="real-run")
    )

    template = job_pod("realsvc", "5dlabs-cleobot")
    job = coderun_job(real, "real-run-job", template)
    job["spec"]["suspend"] = True  # its Job, making no Pod of its own
    real_job = controller_ref(create_job(cluster.admin, namespace, job))

    def owned_by(pod: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        pod["metadata"]["ownerReferences"] = [owner]
        return pod

    wrong_uid = {**real_job, "uid": str(uuid.uuid4())}
    forged = {
        "no owner": job_pod("forged", "5dlabs-rex"),
        "the CodeRun named directly": owned_by(job_pod("realsvc", "5dlabs-cleobot"), controller_ref(real)),
        "an owner uid that does not match": owned_by(job_pod("realsvc", "5dlabs-cleobot"), wrong_uid),
        "labels that disagree with the owner": owned_by(job_pod("othersvc", "5dlabs-tess"), real_job),
        "a made-up agent": owned_by(job_pod("realsvc", "5dlabs-mallory"), real_job),
        **{f"made-up service {i}": job_pod(f"made-up-{i}", "5dlabs-rex", owner_job=f"job-{i}") for i in range(50)},
    }
    says = {
        "no owner": "names no controller Job and CodeRun",
        "the CodeRun named directly": "names no controller Job and CodeRun",
        "an owner uid that does not match": f"real-run-job with uid '{wrong_uid['uid']}' does not exist",
        "labels that disagree with the owner": "its labels give workspace workspace-othersvc-tess",
        "a made-up agent": "its labels give workspace workspace-realsvc-mallory",
    }
    for what, pod in forged.items():
        answer = hook.review(review(pod, namespace=namespace))
        assert answer["allowed"] is False and answer["status"]["code"] == 403, (what, answer)
        expected = says.get(what, "does not exist; a workspace is made only for a real run")
        assert expected in answer["status"]["message"], (what, answer["status"]["message"])
    assert pvcs(cluster.admin, namespace) == {}  # checked with the API, not the webhook's word
