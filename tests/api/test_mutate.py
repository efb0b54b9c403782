"""/mutate through FastAPI's TestClient with the in-memory store, point by point of issue 2."""

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.testing.objects import CODERUN_KIND, applied, claim, coderun, decode_patch, job_pod, review
from tests.api.conftest import MakeClient, metric, mutate, probes

Client = tuple[TestClient, MemoryStore]


# --- 2. where the run's facts come from ---------------------------------------------------------


def test_rex_pod_from_controller_labels(client: Client) -> None:
    http, store = client
    pod = job_pod("cto", "5dlabs-rex")
    answer = mutate(http, review(pod))
    assert answer["response"]["allowed"] is True
    stored = applied(pod, answer)
    assert claim(stored) == "workspace-cto-rex"
    assert stored["metadata"]["labels"]["agents.platform/agent"] == "rex"
    assert ("agents", "workspace-cto-rex") in store.pvcs


def test_lossy_label_of_a_bot_app_resolves_through_the_table(client: Client) -> None:
    http, _ = client
    pod = job_pod("cto", "5dlabs-cleobot")
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto-cleo"


def test_unknown_bot_label_is_never_stripped_to_a_shorter_agent(make_client: MakeClient) -> None:
    http, _ = make_client(agent_allowlist=["robot"])
    pod = job_pod("cto", "5dlabs-robot")
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto-robot"


def test_an_agent_only_the_pattern_names_gets_no_new_storage(make_client: MakeClient) -> None:
    http, store = make_client()
    answer = mutate(http, review(job_pod("cto", "5dlabs-anything")))["response"]
    assert answer["allowed"] is False and answer["status"]["code"] == 403
    assert "agent 'anything' is in neither the agent table nor WEBHOOK_AGENT_ALLOWLIST" in answer["status"]["message"]
    assert not store.pvcs
    store.pvcs[("agents", "workspace-cto-anything")] = {  # one that exists is still mounted
        "metadata": {"name": "workspace-cto-anything", "namespace": "agents"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    pod = job_pod("cto", "5dlabs-anything")
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto-anything"


def test_missing_labels_follow_owner_references_to_the_coderun(client: Client) -> None:
    http, store = client
    store.owners[("Job", "agents", "cto-run-1")] = {
        "metadata": {"name": "cto-run-1", "ownerReferences": [{"kind": "CodeRun", "name": "run-1", "controller": True}]}
    }
    store.owners[("CodeRun", "agents", "run-1")] = coderun("cto", "5DLabs-Tess")
    pod = job_pod(None, None, owner_job="cto-run-1")
    stored = applied(pod, mutate(http, review(pod)))
    assert claim(stored) == "workspace-cto-tess"
    assert stored["metadata"]["labels"]["agents.platform/service"] == "cto"


def test_pod_without_facts_or_owner_is_left_alone(client: Client) -> None:
    http, store = client
    answer = mutate(http, review(job_pod(None, None, owner_job="some-job")))
    assert answer["response"] == {"uid": answer["response"]["uid"], "allowed": True}
    assert store.pvcs == {}


def test_pod_without_workspace_volume_is_left_alone_with_no_api_call(client: Client) -> None:
    http, store = client
    pod = job_pod("cto", "5dlabs-rex", volume={"name": "scratch", "emptyDir": {}})
    answer = mutate(http, review(pod))
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    assert not store.calls


HEALER_CLAIM = {"name": "workspace", "persistentVolumeClaim": {"claimName": "healer-workspace"}}


def test_a_healer_run_keeps_the_healer_workspace_it_shares_with_the_monitor(client: Client) -> None:
    # The platform's controller mounts healer-workspace in its healer runs, the PVC its healer
    # monitor Deployment writes prompts and logs into: moving the run elsewhere would cut it off.
    http, store = client
    for pod in (
        job_pod("healer", "5dlabs-healer", volume=HEALER_CLAIM),
        job_pod("cto", "5dlabs-rex", volume=HEALER_CLAIM),
    ):
        answer = mutate(http, review(pod))["response"]
        assert answer == {"uid": answer["uid"], "allowed": True}  # no patch, no warning
    assert store.pvcs == {} and not store.calls
    run = coderun(
        "cto",
        "5DLabs-Rex",
        freshWorkspace=True,
        cliConfig={"cliType": "claude", "model": "m", "settings": {"template": "healer/remediation"}},
    )
    for body in (run, coderun("healer", "5DLabs-Healer"), coderun("Self-Healer", "5DLabs-Healer")):
        answer = mutate(http, review(body, kind=CODERUN_KIND))["response"]
        assert answer == {"uid": answer["uid"], "allowed": True}
    assert store.pvcs == {}


def test_only_workspace_claims_are_pointed_elsewhere(client: Client) -> None:
    http, _ = client
    for claimed in ("workspace-cto", "workspace-cto-cleo", "workspace-unrelated"):
        pod = job_pod(
            "cto", "5dlabs-rex", volume={"name": "workspace", "persistentVolumeClaim": {"claimName": claimed}}
        )
        assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto-rex"
    # A claim that names no claimName is one the webhook fills in.
    pod = job_pod("cto", "5dlabs-rex", volume={"name": "workspace", "persistentVolumeClaim": {}})
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto-rex"


def test_label_keys_are_settings(make_client: MakeClient) -> None:
    http, _ = make_client(pod_service_label="platform/service", pod_app_label="platform/app")
    pod = job_pod(None, None, extra_labels={"platform/service": "api", "platform/app": "5dlabs-blaze"})
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-api-blaze"


# --- 3. the rules ---------------------------------------------------------------------------


def test_agent_mode_denies_an_unparseable_app_naming_field_and_value(make_client: MakeClient) -> None:
    http, store = make_client(naming_mode="agent")
    answer = mutate(http, review(coderun("cto", "octocat")))
    response = answer["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "spec.githubApp" in response["status"]["message"] and "'octocat'" in response["status"]["message"]
    assert store.pvcs == {}


def test_dual_mode_falls_back_to_the_shared_workspace_with_a_warning(client: Client) -> None:
    http, _ = client
    pod = job_pod("cto", "octocat")
    answer = mutate(http, review(pod))
    assert claim(applied(pod, answer)) == "workspace-cto"
    assert any("'octocat'" in w and "workspace-cto" in w for w in answer["response"]["warnings"])


def test_legacy_mode(make_client: MakeClient) -> None:
    http, store = make_client(naming_mode="legacy")
    pod = job_pod("cto", "5dlabs-cleobot")
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto"
    assert list(store.pvcs) == [("agents", "workspace-cto")]


def test_legacy_owner_keeps_an_existing_shared_workspace(make_client: MakeClient) -> None:
    store = MemoryStore()
    store.pvcs[("agents", "workspace-cto")] = {"metadata": {"name": "workspace-cto"}}
    http, _ = make_client(store, legacy_owner="rex")
    rex, cleo = job_pod("cto", "5dlabs-rex"), job_pod("cto", "5dlabs-cleobot")
    assert claim(applied(rex, mutate(http, review(rex)))) == "workspace-cto"
    assert claim(applied(cleo, mutate(http, review(cleo)))) == "workspace-cto-cleo"
    other = job_pod("billing", "5dlabs-rex")  # no legacy workspace there: its own
    assert claim(applied(other, mutate(http, review(other)))) == "workspace-billing-rex"


def test_shared_groups_setting(make_client: MakeClient) -> None:
    http, _ = make_client(shared_groups=[{"agents": ["rex", "blaze"]}])
    for app, pvc in [
        ("5dlabs-rex", "workspace-cto"),
        ("5dlabs-blaze", "workspace-cto"),
        ("5dlabs-tess", "workspace-cto-tess"),
    ]:
        pod = job_pod("cto", app)
        assert claim(applied(pod, mutate(http, review(pod)))) == pvc


def test_invalid_service_is_denied_naming_the_label(client: Client) -> None:
    http, _ = client
    answer = mutate(http, review(job_pod("My_Service", "5dlabs-rex")))
    assert answer["response"]["allowed"] is False
    assert "metadata.labels['service'] is 'My_Service'" in answer["response"]["status"]["message"]


def test_long_service_gets_a_bounded_name(client: Client) -> None:
    http, store = client
    service = "s" * 60
    pod = job_pod(service, "5dlabs-cleobot")
    pvc = claim(applied(pod, mutate(http, review(pod))))
    assert pvc is not None and len(pvc) <= 63 and pvc.endswith("-cleo")
    assert ("agents", pvc) in store.pvcs


# --- 4. ensure the PVC ----------------------------------------------------------------------


def test_created_pvc_has_the_designed_spec_and_labels(make_client: MakeClient) -> None:
    http, store = make_client(storage_size="20Gi", storage_class="fast-ssd")
    mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]")))
    pvc = store.pvcs[("agents", "workspace-cto-cleo")]
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast-ssd",
    }
    assert pvc["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "agent-workspace-webhook",
        "app.kubernetes.io/component": "agent-workspace",
        "agents.platform/service": "cto",
        "agents.platform/agent": "cleo",
        "agents.platform/workspace": "workspace-cto-cleo",
        # the plain labels the platform's own tooling selects on
        "service": "cto",
        "agent": "cleo",
        "component": "agent-workspace",
        # its generation, and the workspace it is a generation of (named after its generation 1)
        "agents.platform/generation": "1",
        "agents.platform/generation-of": "workspace-cto-cleo",
    }
    assert pvc["metadata"]["annotations"] == {"agents.platform/made-from": "empty"}
    assert "ownerReferences" not in pvc["metadata"]


def test_pvc_uses_request_namespace_for_generate_name_pods(client: Client) -> None:
    http, store = client
    pod = job_pod("cto", "5dlabs-rex")
    assert "namespace" not in pod["metadata"] and "name" not in pod["metadata"]
    mutate(http, review(pod, namespace="team-a"))
    assert ("team-a", "workspace-cto-rex") in store.pvcs


def test_existing_pvc_is_used_as_it_is(client: Client) -> None:
    http, store = client
    existing = {
        "metadata": {"name": "workspace-cto-rex", "labels": {"mine": "yes"}},
        "spec": {"resources": {"requests": {"storage": "1Gi"}}},
    }
    store.pvcs[("agents", "workspace-cto-rex")] = existing
    before = json.dumps(existing, sort_keys=True)
    pod = job_pod("cto", "5dlabs-rex")
    assert claim(applied(pod, mutate(http, review(pod)))) == "workspace-cto-rex"
    assert json.dumps(store.pvcs[("agents", "workspace-cto-rex")], sort_keys=True) == before
    assert ("create", "workspace-cto-rex") not in store.calls


def test_dry_run_creates_nothing_and_says_what_would_be_created(client: Client) -> None:
    http, store = client
    pod = job_pod("cto", "5dlabs-tess")
    answer = mutate(http, review(pod, dry_run=True))
    assert claim(applied(pod, answer)) == "workspace-cto-tess"
    assert store.pvcs == {}
    assert any("workspace-cto-tess" in w and "would be created" in w for w in answer["response"]["warnings"])


FORBIDDEN = (
    'persistentvolumeclaims is forbidden: User "system:serviceaccount:agent-workspace-webhook:'
    'agent-workspace-webhook" cannot create resource "persistentvolumeclaims" in API group "" in the '
    'namespace "agents"'
)
QUOTA = (
    'persistentvolumeclaims "workspace-cto-rex" is forbidden: exceeded quota: workspaces, requested: '
    "requests.storage=10Gi, used: requests.storage=20Gi, limited: requests.storage=20Gi"
)


@pytest.mark.parametrize(
    ("verb", "status", "detail", "code", "fix"),
    [
        ("create", 403, FORBIDDEN, 500, "grant it verb 'create' on persistentvolumeclaims (see the ClusterRole"),
        ("create", 403, QUOTA, 403, "refused by ResourceQuota agents/workspaces"),
        ("get", None, "connection refused", 503, "the Kubernetes API is unreachable (connection refused)"),
    ],
)
def test_api_failures_are_clear_denials(
    make_client: MakeClient, verb: str, status: int | None, detail: str, code: int, fix: str
) -> None:
    """A failed call, injected as the API server's status and message where it happens: the answer
    names the run and the PVC, says what to do, and carries the code for that cause."""
    http, store = make_client(MemoryStore(failures={verb: (status, detail)}))
    response = mutate(http, review(job_pod("cto", "5dlabs-rex")))["response"]
    assert response["allowed"] is False and response["status"]["code"] == code
    message = response["status"]["message"]
    assert message.startswith(
        f"Pod agents/code-run-: cannot {verb} PersistentVolumeClaim agents/workspace-cto-rex: "
    ), message
    assert fix in message
    assert list(store.calls)[-1] == (verb, "workspace-cto-rex")  # failed where it was injected, and went no further
    if verb == "create":  # the lookup before it answered: no such PVC
        assert ("get", "workspace-cto-rex") in store.calls
    assert store.pvcs == {}


def test_slow_api_is_cut_off_at_the_deadline_with_a_message(make_client: MakeClient) -> None:
    http, _ = make_client(MemoryStore(delay=5), kube_deadline_seconds=0.2)
    response = mutate(http, review(job_pod("cto", "5dlabs-rex")))["response"]
    assert response["allowed"] is False and response["status"]["code"] == 504
    assert response["status"]["message"] == (
        "Pod agents/code-run-: the Kubernetes API did not answer within 0.2s while reading PersistentVolumeClaim "
        "agents/workspace-cto-rex and its generations; check the API server's health and "
        "WEBHOOK_KUBE_DEADLINE_SECONDS"
    )


# --- 5. the answer --------------------------------------------------------------------------


def test_answer_shape(client: Client) -> None:
    http, _ = client
    answer = mutate(http, review(job_pod("cto", "5dlabs-rex"), uid="abc-123"))
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "abc-123"
    assert response["patchType"] == "JSONPatch"
    assert isinstance(json.loads(base64.b64decode(response["patch"])), list)


def test_already_correct_object_gets_no_patch(client: Client) -> None:
    http, _ = client
    pod = job_pod("cto", "5dlabs-rex")
    once = applied(pod, mutate(http, review(pod)))
    again = mutate(http, review(once))["response"]
    assert again["allowed"] is True and "patch" not in again and "patchType" not in again


def test_coderun_records_its_workspace_in_labels_and_annotation(client: Client) -> None:
    http, store = client
    run = coderun("cto", "5DLabs-Tess")
    stored = applied(run, mutate(http, review(run)))
    assert stored["metadata"]["labels"]["agents.platform/workspace"] == "workspace-cto-tess"
    assert stored["metadata"]["annotations"]["agents.platform/workspace"] == "workspace-cto-tess"
    assert stored["spec"] == run["spec"]
    assert ("agents", "workspace-cto-tess") in store.pvcs


def test_deprecated_github_user_works_with_a_warning(client: Client) -> None:
    http, _ = client
    answer = mutate(http, review(coderun("cto", None, githubUser="5DLabs-Rex")))
    assert decode_patch(answer)
    assert any("githubUser is deprecated" in w for w in answer["response"]["warnings"])


@pytest.mark.parametrize("app", ["", None])
def test_an_empty_or_missing_github_app_names_spec_github_app(make_client: MakeClient, app: str | None) -> None:
    http, store = make_client(naming_mode="agent")
    response = mutate(http, review(coderun("cto", app)))["response"]
    assert response["allowed"] is False
    assert "spec.githubApp is missing" in response["status"]["message"], response["status"]
    assert "githubUser" not in response["status"]["message"]
    assert store.pvcs == {}


# --- 6. bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"kind": "Pod"}', 400, "not an AdmissionReview"),
        (
            json.dumps({**review(job_pod()), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
            400,
            "apiVersion must be",
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), 400, "request"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "JSON"),
    ],
)
def test_malformed_bodies_get_a_4xx_with_one_line(client: Client, body: bytes, status: int, reason: str) -> None:
    http, _ = client
    response = http.post("/mutate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert reason in error and "\n" not in error and "Traceback" not in response.text


def test_missing_uid_is_a_400_naming_it(client: Client) -> None:
    http, _ = client
    body = review(job_pod())
    del body["request"]["uid"]
    response = http.post("/mutate", json=body)
    assert response.status_code == 400 and "request.uid" in response.json()["error"]


def test_oversized_body_is_413(make_client: MakeClient) -> None:
    http, _ = make_client(max_body_bytes=4096)
    body = review(job_pod("cto", "5dlabs-rex"))
    body["request"]["object"]["metadata"]["annotations"] = {"big": "x" * 5000}
    response = http.post("/mutate", json=body)
    assert response.status_code == 413 and "WEBHOOK_MAX_BODY_BYTES" in response.json()["error"]


def test_unknown_kind_is_denied_with_a_fix(client: Client) -> None:
    http, _ = client
    kind = {"group": "apps", "version": "v1", "kind": "Deployment"}
    response = mutate(http, review({"metadata": {"name": "d"}}, kind=kind))["response"]
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert (
        "apps/v1 Deployment" in response["status"]["message"]
        and "MutatingWebhookConfiguration" in response["status"]["message"]
    )


@pytest.mark.parametrize("obj", [None, "a pod", [1], 7])
def test_object_that_is_not_a_mapping_is_denied(client: Client, obj: Any) -> None:
    http, _ = client
    response = mutate(http, review(obj))["response"]
    assert response["allowed"] is False and "request.object must be a Pod object" in response["status"]["message"]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda pod: pod["metadata"].update(labels=["service"]), "metadata.labels must be an object of strings"),
        (lambda pod: pod["metadata"]["labels"].update(service=5), "metadata.labels must be an object of strings"),
        (lambda pod: pod.update(metadata="x"), "metadata must be an object"),
    ],
)
def test_wrongly_typed_fields_are_denied(client: Client, mangle: Any, reason: str) -> None:
    http, _ = client
    pod = job_pod("cto", "5dlabs-rex")
    mangle(pod)
    response = mutate(http, review(pod))["response"]
    assert response["allowed"] is False and reason in response["status"]["message"]


def test_coderun_field_of_the_wrong_type(client: Client) -> None:
    http, _ = client
    run = coderun("cto", None)
    run["spec"]["githubApp"] = {"name": "rex"}
    response = mutate(http, review(run, kind=CODERUN_KIND))["response"]
    assert response["allowed"] is False and "spec.githubApp must be a string" in response["status"]["message"]


def test_coderun_without_service(client: Client) -> None:
    http, _ = client
    response = mutate(http, review(coderun(None, "5DLabs-Rex")))["response"]
    assert response["allowed"] is False and "spec.service is missing" in response["status"]["message"]


def test_other_operations_are_left_alone(client: Client) -> None:
    http, store = client
    response = mutate(http, review(job_pod("cto", "5dlabs-rex"), operation="UPDATE"))["response"]
    assert response["allowed"] is True and "patch" not in response and store.pvcs == {}


# --- 7. health ---------------------------------------------------------------------------------


def test_healthz(client: Client) -> None:
    http, _ = client
    assert probes(http).get("/healthz").json() == {"status": "ok"}


def test_readyz_follows_the_store(make_client: MakeClient) -> None:
    http, store = make_client()
    assert probes(http).get("/readyz").status_code == 200
    store.failures["create"] = (403, FORBIDDEN)  # answering, if not as we would like: still ready
    assert probes(http).get("/readyz").status_code == 200
    store.failures["get"] = (None, "connection refused")
    response = probes(http).get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "the Kubernetes API is unreachable: connection refused"


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_count_requests_by_decision(client: Client) -> None:
    http, _ = client
    patched = 'agent_workspace_webhook_requests_total{decision="patched",kind="Pod",operation="CREATE"}'
    denied = 'agent_workspace_webhook_requests_total{decision="denied",kind="CodeRun",operation="CREATE"}'
    invalid = 'agent_workspace_webhook_requests_total{decision="invalid",kind="other",operation="other"}'
    assert metric(http, patched) == 0
    mutate(http, review(job_pod("cto", "5dlabs-rex")))
    mutate(http, review(job_pod("cto", "5dlabs-cleobot")))
    mutate(http, review(coderun(None, "5DLabs-Rex")))
    http.post("/mutate", content=b"nope")
    assert metric(http, patched) == 2
    assert metric(http, denied) == 1
    assert metric(http, invalid) == 1
    assert metric(http, "agent_workspace_webhook_pvcs_created_total") == 2
    assert metric(http, 'agent_workspace_webhook_request_duration_seconds_count{kind="Pod"}') == 2
    assert metric(http, "agent_workspace_webhook_requests_in_flight") == 0
    assert probes(http).get("/metrics").headers["content-type"].startswith("text/plain")


class BrokenStore(MemoryStore):
    """A store with a bug: an exception no admission step expects."""

    async def generations(self, namespace: str, base: str) -> Any:
        raise RuntimeError("bug in generations")

    def generations_now(self, namespace: str, base: str) -> Any:  # a hit, answered at once
        raise RuntimeError("bug in generations")


def test_a_bug_is_a_500_counted_apart_from_api_errors(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    bugs = "agent_workspace_webhook_internal_errors_total"
    errors = 'agent_workspace_webhook_requests_total{decision="error",kind="Pod",operation="CREATE"}'
    failing, _ = make_client(MemoryStore(failures={"get": (None, "connection refused")}))
    assert mutate(failing, review(job_pod("cto", "5dlabs-rex")))["response"]["status"]["code"] == 503
    assert (metric(failing, errors), metric(failing, bugs)) == (1, 0)  # the API's failure is no bug

    http, _ = make_client(BrokenStore())
    with caplog.at_level("ERROR", logger="agent_workspace_webhook"):
        response = mutate(http, review(job_pod("cto", "5dlabs-rex"), uid="uid-of-the-bug"))["response"]
    assert response == {
        "uid": "uid-of-the-bug",
        "allowed": False,
        "status": {
            "code": 500,
            "message": "internal error in agent-workspace-webhook (uid uid-of-the-bug); see its logs",
        },
    }
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage() == "admission failed" and logged.__dict__["fields"] == {"uid": "uid-of-the-bug"}
    assert logged.exc_info is not None and str(logged.exc_info[1]) == "bug in generations"
    assert (metric(http, errors), metric(http, bugs)) == (1, 1)


# --- limits ----------------------------------------------------------------------------------


def test_past_the_in_flight_limit_requests_are_refused_at_once() -> None:
    import asyncio
    import time

    import httpx

    from agent_workspace_webhook.server.app import create_app
    from agent_workspace_webhook.settings import load_settings

    app = create_app(load_settings(store="memory", max_in_flight=2), MemoryStore(delay=0.4))

    async def burst() -> list[tuple[dict[str, Any], float]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:

            async def one(i: int) -> tuple[dict[str, Any], float]:
                started = time.monotonic()
                response = await http.post("/mutate", json=review(job_pod(f"svc{i}", "5dlabs-rex")))
                return response.json()["response"], time.monotonic() - started

            return list(await asyncio.gather(*(one(i) for i in range(5))))

    results = asyncio.run(burst())
    served = [r for r, _ in results if r["allowed"]]
    refused = [(r, t) for r, t in results if not r["allowed"]]
    assert len(served) == 2 and len(refused) == 3
    for response, elapsed in refused:
        assert response["status"]["code"] == 429 and "WEBHOOK_MAX_IN_FLIGHT" in response["status"]["message"]
        assert elapsed < 0.3  # not queued behind the slow ones (0.8 s)


def test_readyz_waits_for_the_pvc_cache(tmp_path: Any) -> None:
    """A KubeStore whose API server is not there: not ready, and says why."""
    from agent_workspace_webhook.server.app import create_app
    from agent_workspace_webhook.settings import load_settings
    from agent_workspace_webhook.testing.tools import free_port, kubeconfig_text

    kubeconfig = tmp_path / "kubeconfig"
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    kubeconfig.write_text(kubeconfig_text(f"https://127.0.0.1:{free_port()}", ca, "token"))
    settings = load_settings(store="kube", kubeconfig=str(kubeconfig))
    with TestClient(create_app(settings)) as http:
        response = probes(http).get("/readyz")
    assert response.status_code == 503 and "PVC cache not synced yet" in response.json()["error"]


def test_other_paths_and_methods_get_a_specific_error(client: Client) -> None:
    http, store = client
    wrong_method = http.get("/mutate")
    assert wrong_method.status_code == 405 and "takes POST" in wrong_method.json()["error"]
    elsewhere = http.post("/metrics", json=review(job_pod()))
    assert elsewhere.status_code == 404 and "POST /mutate only" in elsewhere.json()["error"]
    assert store.pvcs == {}


@pytest.mark.parametrize(
    ("volume", "kind"),
    [
        ({"name": "workspace", "hostPath": {"path": "/var/lib/important"}}, "hostPath"),
        ({"name": "workspace", "emptyDir": {}}, "emptyDir"),
        (
            {"name": "workspace", "persistentVolumeClaim": {"claimName": "x"}, "emptyDir": {}},
            "emptyDir and persistentVolumeClaim",
        ),
    ],
)
def test_a_workspace_volume_that_is_no_claim_is_refused_never_replaced(
    client: Client, volume: dict[str, Any], kind: str
) -> None:
    http, store = client
    answer = mutate(http, review(job_pod("cto", "5dlabs-rex", volume=volume)))["response"]
    assert answer["allowed"] is False and answer["status"]["code"] == 400
    assert f"its volume 'workspace' is {kind}, not a persistentVolumeClaim" in answer["status"]["message"]
    assert not store.pvcs  # nothing made for a run that would not have mounted it


def test_a_volume_of_another_name_is_none_of_the_webhooks_business(client: Client) -> None:
    http, _ = client
    pod = job_pod("cto", "5dlabs-rex")
    pod["spec"]["volumes"].append({"name": "cache", "hostPath": {"path": "/var/cache"}})
    patched = applied(pod, mutate(http, review(pod)))
    assert patched["spec"]["volumes"][1] == {"name": "cache", "hostPath": {"path": "/var/cache"}}
