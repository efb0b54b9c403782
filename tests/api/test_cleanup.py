"""The platform controller's workspace-cleanup Job through /mutate with the in-memory store: it is
pointed at the workspace its run used (the CodeRun's annotation), and left as the controller made
it whenever that is not known for sure."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent_workspace_webhook.admission.admit import Record, admit, make_context
from agent_workspace_webhook.admission.review import Response, parse_review
from agent_workspace_webhook.certificates import write_certificates
from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.settings import load_settings
from agent_workspace_webhook.testing.objects import JOB_KIND, applied, cleanup_job, decode_patch, job_pod, review
from agent_workspace_webhook.testing.tools import free_port, kubeconfig_text
from tests.api.conftest import MakeClient, metric, mutate
from tests.api.test_generations import old_workspace
from tests.api.test_mutate import Client


def deleted_run(name: str = "cto-rex-7", workspace: str | None = "workspace-cto-rex") -> dict[str, Any]:
    """A CodeRun the webhook admitted, being deleted: the controller's finalizer still holds it."""
    annotations = {} if workspace is None else {"agents.platform/workspace": workspace}
    return {
        "apiVersion": "agents.platform/v1",
        "kind": "CodeRun",
        "metadata": {
            "name": name,
            "namespace": "agents",
            "uid": "0a1b2c3d-4e5f-4a5b-8c9d-0e1f2a3b4c5d",
            "deletionTimestamp": "2026-12-01T10:00:00Z",
            "annotations": annotations,
        },
        "spec": {"service": "cto", "githubApp": "5DLabs-Rex"},
    }


def template(job: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = job["spec"]["template"]
    return result


def test_a_cleanup_job_is_pointed_at_the_workspace_its_run_used(client: Client) -> None:
    http, store = client
    run = deleted_run()
    store.owners[("CodeRun", "agents", run["metadata"]["name"])] = run
    store.pvcs[("agents", "workspace-cto-rex")] = old_workspace("workspace-cto-rex")
    job = cleanup_job(run, "workspace-cto")  # Rex is an implementation agent: the controller computes the shared one
    answer = mutate(http, review(job, kind=JOB_KIND))
    stored = applied(job, answer)
    pod = template(stored)
    assert pod["spec"]["volumes"] == [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace-cto-rex"}}
    ]
    assert pod["metadata"]["labels"] == {"agents.platform/workspace": "workspace-cto-rex"}
    # ReadWriteOnce: on the node where the workspace's runs are, if any
    term = pod["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == [
        {
            "labelSelector": {"matchLabels": {"agents.platform/workspace": "workspace-cto-rex"}},
            "topologyKey": "kubernetes.io/hostname",
        }
    ]
    # Nothing else of the Job changes: its labels, its command, the rest of the template
    assert stored["metadata"] == job["metadata"]
    assert pod["spec"]["containers"] == template(job)["spec"]["containers"]
    assert all(op["path"].startswith("/spec/template/") for op in decode_patch(answer))
    assert ("agents", "workspace-cto") not in store.pvcs and len(store.pvcs) == 1  # nothing made
    counted = 'agent_workspace_webhook_requests_total{decision="patched",kind="Job",operation="CREATE"}'
    assert metric(http, counted) == 1


def test_a_fresh_runs_cleanup_goes_to_the_generation_it_ran_in(client: Client) -> None:
    http, store = client
    generation = generation_name("workspace-cto-rex", 2)
    run = deleted_run(workspace=generation)
    store.owners[("CodeRun", "agents", run["metadata"]["name"])] = run
    store.pvcs[("agents", "workspace-cto-rex")] = old_workspace("workspace-cto-rex")
    labels = {"agents.platform/generation": "2", "agents.platform/generation-of": "workspace-cto-rex"}
    store.pvcs[("agents", generation)] = old_workspace(generation, labels=labels)
    stored = applied(job := cleanup_job(run, "workspace-cto"), mutate(http, review(job, kind=JOB_KIND)))
    assert template(stored)["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == generation


def test_an_annotation_naming_another_agents_workspace_is_not_followed(client: Client) -> None:
    # Whoever may patch a CodeRun (UPDATE is not reviewed) could point its cleanup elsewhere.
    http, store = client
    run = deleted_run(workspace="workspace-cto-cleo")  # Rex's run
    store.owners[("CodeRun", "agents", run["metadata"]["name"])] = run
    for name in ("workspace-cto-rex", "workspace-cto-cleo"):
        store.pvcs[("agents", name)] = old_workspace(name)
    answer = mutate(http, review(cleanup_job(run, "workspace-cto"), kind=JOB_KIND))["response"]
    assert answer["allowed"] is True and "patch" not in answer


def test_forged_cleanup_reviews_make_a_bounded_number_of_reads(client: Client) -> None:
    # 100 reviews for a run that does not exist: read once, then remembered missing; 100 reviews
    # for 100 names: no more reads than the budget's burst (here 10, refilling at a crawl).
    http, store = client
    webhook = http.app.state.webhook  # type: ignore[attr-defined]
    webhook.ctx.cleanup_lookups.per_second = 0.001
    webhook.ctx.cleanup_lookups.burst = 10
    gone = {"metadata": {"name": "cto-rex-0", "uid": "0a1b2c3d-0000-4000-8000-000000000000"}}
    for _ in range(100):
        assert mutate(http, review(cleanup_job(gone, "workspace-cto"), kind=JOB_KIND))["response"]["allowed"] is True
    assert [call for call in store.calls if call == ("get", "cto-rex-0")] == [("get", "cto-rex-0")]
    for i in range(100):
        forged = {"metadata": {"name": f"cto-rex-{i + 1}", "uid": "0a1b2c3d-0000-4000-8000-000000000000"}}
        answer = mutate(http, review(cleanup_job(forged, "workspace-cto"), kind=JOB_KIND))["response"]
        assert answer["allowed"] is True  # never refused, whatever the budget says
    reads = [call for call in store.calls if call[0] == "get" and call[1].startswith("cto-rex-")]
    assert len(reads) == 10, len(reads)  # the first name's read and 9 more: the burst


GONE = "gone"


@pytest.mark.parametrize(
    ("annotation", "pvcs", "deleting"),
    [
        pytest.param(GONE, ["workspace-cto-rex"], False, id="the CodeRun is gone"),
        pytest.param(None, ["workspace-cto-rex"], False, id="admitted without the webhook"),
        pytest.param("healer-workspace", ["healer-workspace", "workspace-cto-rex"], False, id="no workspace-* name"),
        pytest.param("workspace-cto-rex", [], False, id="its workspace is gone"),
        pytest.param("workspace-cto-rex", ["workspace-cto-rex"], True, id="its workspace is being deleted"),
    ],
)
def test_a_cleanup_job_stays_as_the_controller_made_it_when_unsure(
    client: Client, annotation: str | None, pvcs: list[str], deleting: bool
) -> None:
    http, store = client
    if annotation != GONE:
        store.owners[("CodeRun", "agents", "cto-rex-7")] = deleted_run(workspace=annotation)
    extra = {"deletionTimestamp": "2026-12-01T10:00:00Z", "finalizers": ["kubernetes.io/pvc-protection"]}
    for name in pvcs:
        store.pvcs[("agents", name)] = old_workspace(name, **(extra if deleting else {}))
    before = {key: dict(value) for key, value in store.pvcs.items()}
    job = cleanup_job(deleted_run(), "workspace-cto")
    answer = mutate(http, review(job, kind=JOB_KIND))["response"]
    assert answer == {"uid": answer["uid"], "allowed": True}
    assert store.pvcs == before


def test_other_jobs_and_other_claims_are_left_alone(client: Client) -> None:
    http, store = client
    run = deleted_run()
    store.owners[("CodeRun", "agents", run["metadata"]["name"])] = run
    store.pvcs[("agents", "workspace-cto-rex")] = old_workspace("workspace-cto-rex")
    healer = cleanup_job(run, "healer-workspace")  # a healer run's cleanup stays on the healer's PVC
    unlabelled = cleanup_job(run, "workspace-cto")
    del unlabelled["metadata"]["labels"]["cleanup.cto.dev/run-kind"]
    no_template = cleanup_job(run, "workspace-cto")
    no_template["spec"]["template"] = "nope"
    bad_labels = cleanup_job(run, "workspace-cto")
    bad_labels["spec"]["template"]["metadata"] = {"labels": {"a": 1}}
    for job in (healer, unlabelled, no_template, bad_labels):
        answer = mutate(http, review(job, kind=JOB_KIND))["response"]
        assert answer == {"uid": answer["uid"], "allowed": True}
    assert ("get", "cto-rex-7") not in store.calls  # told apart before any API call


def test_a_cleanup_job_outside_the_scope_is_left_as_it_is_never_refused(make_client: MakeClient) -> None:
    # Its webhook entry has failurePolicy Ignore: the scope check, like any failure, leaves the Job be.
    store = MemoryStore(namespaces={"agents": {}}, owners={("CodeRun", "agents", "cto-rex-7"): deleted_run()})
    http, _ = make_client(store, namespace_selector="agents.platform/workspaces=enabled")
    job = cleanup_job(deleted_run(), "workspace-cto")
    answer = mutate(http, review(job, kind=JOB_KIND))["response"]
    assert answer["allowed"] is True and "patch" not in answer
    assert ("get", "cto-rex-7") not in store.calls  # nothing read for a namespace out of scope


@pytest.mark.parametrize(
    "failing",
    [
        {"failures": {"get": (None, "connection refused")}},
        {"delay": 3.0},
        # Caches not synced: the scope check's Namespace read is the first call, and fails or is late.
        {"failures": {"get": (None, "connection refused")}, "cold": True},
        {"delay": 3.0, "cold": True},
    ],
)
def test_an_api_failure_leaves_the_cleanup_job_be_rather_than_refuse_it(
    make_client: MakeClient, failing: dict[str, Any]
) -> None:
    # A refused Job is a lost cleanup: the controller only warns and does not make it again.
    run = deleted_run()
    store = MemoryStore(owners={("CodeRun", "agents", "cto-rex-7"): run}, **failing)
    http, _ = make_client(store, kube_deadline_seconds="0.5")
    job = cleanup_job(run, "workspace-cto")
    answer = mutate(http, review(job, kind=JOB_KIND))["response"]
    assert answer == {"uid": answer["uid"], "allowed": True}


def admitted(job: dict[str, Any], store: MemoryStore) -> tuple[Response, Record]:
    """The admission of the Job, its answer and what its log line says (the answer of an allowed
    one carries no message)."""
    request = parse_review(json.dumps(review(job, kind=JOB_KIND)).encode()).request
    return asyncio.run(admit(request, make_context(load_settings(store="memory"), store)))


def test_a_forged_cleanup_review_is_bounded_in_what_it_makes_the_webhook_read_and_say() -> None:
    # Straight to /mutate, nothing of it validated by an API server: a huge claim is quoted short
    # in the log line, and a run label that is no object's name is never looked up.
    store = MemoryStore()
    response, record = admitted(cleanup_job(deleted_run(), "workspace-" + "x" * 100_000), store)
    assert response.allowed and not response.patch
    assert record.message is not None and len(record.message) < 300 and "100010 characters" in record.message
    store.calls.clear()
    forged = cleanup_job(deleted_run(), "workspace-cto")
    forged["metadata"]["labels"]["cleanup.cto.dev/run"] = "Not/A/Name" * 10_000
    response, record = admitted(forged, store)
    assert response.allowed and not response.patch
    assert record.message == "not a workspace-cleanup Job of the platform's controller"
    assert not store.calls


def test_a_run_whose_name_the_label_cuts_to_63_is_found_by_its_directory(client: Client) -> None:
    # The controller cuts cleanup.cto.dev/run to 63 characters; its command names the whole run.
    http, store = client
    name = "cto-rex-implementation-of-the-billing-service-task-42-attempt-seven-of-many"
    run = deleted_run(name=name)
    store.owners[("CodeRun", "agents", name)] = run
    store.pvcs[("agents", "workspace-cto-rex")] = old_workspace("workspace-cto-rex")
    job = cleanup_job(run, "workspace-cto")
    job["metadata"]["labels"]["cleanup.cto.dev/run"] = name[:63]
    stored = applied(job, mutate(http, review(job, kind=JOB_KIND)))
    assert template(stored)["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "workspace-cto-rex"
    assert ("get", name) in store.calls and ("get", name[:63]) not in store.calls


def test_a_run_of_the_same_name_but_another_uid_is_not_the_one_cleaned_up(client: Client) -> None:
    http, store = client
    run = deleted_run()
    store.pvcs[("agents", "workspace-cto-rex")] = old_workspace("workspace-cto-rex")
    job = cleanup_job(run, "workspace-cto")
    again = deleted_run()
    again["metadata"]["uid"] = "ffffffff-4e5f-4a5b-8c9d-0e1f2a3b4c5d"  # deleted and made again meanwhile
    store.owners[("CodeRun", "agents", run["metadata"]["name"])] = again
    answer = mutate(http, review(job, kind=JOB_KIND))["response"]
    assert answer["allowed"] is True and "patch" not in answer


def test_of_two_fresh_runs_that_raced_each_cleanup_goes_to_the_generation_made_for_it(client: Client) -> None:
    # Both announced generation 2 at their admission; the second's Pod made generation 3.
    http, store = client
    gen1, gen2, gen3 = "workspace-cto-cleo", "workspace-cto-cleo-g2-a1b2c3", "workspace-cto-cleo-g3-d4e5f6"
    runs = {}
    for name, uid, made in (
        ("cleo-a", "aaaaaaaa-0000-4000-8000-000000000000", gen2),
        ("cleo-b", "bbbbbbbb-0000-4000-8000-000000000000", gen3),
    ):
        run = deleted_run(name=name, workspace=gen2)
        run["metadata"]["uid"] = uid
        run["spec"]["githubApp"] = "5DLabs-Cleo"
        store.owners[("CodeRun", "agents", name)] = runs[name] = run
        number = made[len(gen1) + 2]
        labels = {"agents.platform/generation": number, "agents.platform/generation-of": gen1}
        store.pvcs[("agents", made)] = old_workspace(
            made, labels=labels, annotations={"agents.platform/fresh-for": uid}
        )
    store.pvcs[("agents", gen1)] = old_workspace(gen1)
    for name, expected in (("cleo-a", gen2), ("cleo-b", gen3)):
        job = cleanup_job(runs[name], gen1)
        stored = applied(job, mutate(http, review(job, kind=JOB_KIND)))
        assert template(stored)["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == expected, name


def test_a_review_whose_object_names_another_namespace_is_answered_with_nothing(client: Client) -> None:
    # A forged review for namespace "agents" carrying another namespace's Job: never a patch naming
    # a workspace there (the API server always sends the two alike).
    http, store = client
    run = deleted_run()
    store.owners[("CodeRun", "agents", run["metadata"]["name"])] = run
    store.pvcs[("agents", "workspace-cto-rex")] = old_workspace("workspace-cto-rex")
    job = cleanup_job(run, "workspace-cto")
    job["metadata"]["namespace"] = "elsewhere"
    answer = mutate(http, review(job, kind=JOB_KIND))["response"]
    assert answer["allowed"] is True and "patch" not in answer  # its entry never refuses
    pod_answer = mutate(http, review({**job_pod("cto", "5dlabs-rex"), "metadata": {"namespace": "elsewhere"}}))
    assert pod_answer["response"]["status"]["code"] == 400
    assert "is not the review's namespace" in pod_answer["response"]["status"]["message"]


def test_through_the_real_store_a_failing_namespace_read_leaves_the_cleanup_job_be(tmp_path: Path) -> None:
    """KubeStore, without watch caches, against an API server that does not answer (a closed
    port): the scope check's Namespace read fails first, and the cleanup entry (failurePolicy:
    Ignore) lets the Job through as the controller made it, never refused."""
    from agent_workspace_webhook.kube.client import KubeStore

    certs = write_certificates(tmp_path, ["127.0.0.1"])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text(f"https://127.0.0.1:{free_port()}", certs.ca, "token"))
    settings = load_settings(kubeconfig=str(kubeconfig), watch_caches=False, kube_deadline_seconds=1)
    store = KubeStore(settings)
    try:
        request = parse_review(json.dumps(review(cleanup_job(deleted_run(), "workspace-cto"), kind=JOB_KIND)).encode())
        response, record = asyncio.run(admit(request.request, make_context(settings, store)))
    finally:
        store.close()
    assert response.allowed and not response.patch
    assert record.message is not None and "cannot get Namespace" in record.message and "left as it is" in record.message
