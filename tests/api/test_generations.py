"""Fresh workspaces through /mutate with the in-memory store (issue 18): a CodeRun that asks for
one is told which generation its first Pod makes; that Pod, whose owner chain leads back to it,
makes it (once, however often it is admitted); later runs of the agent use it; the earlier
generation is never touched."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.testing.objects import (
    applied,
    claim,
    coderun,
    coderun_job,
    controller_pod,
    controller_ref,
    job_pod,
    review,
)
from tests.api.conftest import MakeClient, mutate, probes

GEN1 = "workspace-cto-cleo"
GEN2 = generation_name(GEN1, 2)


def old_workspace(name: str = GEN1, **metadata: Any) -> dict[str, Any]:
    """Cleo's workspace as it is before the fresh run: made long ago, Bound, with her context."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "agents", "creationTimestamp": "2026-11-01T10:00:00Z", **metadata},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        "status": {"phase": "Bound"},
    }


def stored_coderun(name: str, uid: str, **spec: Any) -> dict[str, Any]:
    """A CodeRun as the API server stores it (uid, creation time), for the owner chain."""
    run = coderun("cto", "5DLabs-Cleo[bot]", name=name, **spec)
    run["metadata"].update({"namespace": "agents", "uid": uid, "creationTimestamp": "2026-11-30T10:00:00Z"})
    return run


def job_of(run: dict[str, Any], uid: str) -> dict[str, Any]:
    job = coderun_job(run, f"{run['metadata']['name']}-job", controller_pod("cto", "5dlabs-cleobot"))
    job["metadata"].update({"namespace": "agents", "uid": uid})
    return job


def pod_of(job: dict[str, Any], job_uid: str | None = None) -> dict[str, Any]:
    """The Job controller's Pod: the controller's labels, owned by the Job (its uid, or a forged one)."""
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "controller": True}
    pod = job_pod("cto", "5dlabs-cleobot")
    pod["metadata"]["ownerReferences"] = [{**ref, "uid": job_uid or job["metadata"]["uid"]}]
    return pod


def cluster(*runs: tuple[dict[str, Any], dict[str, Any]]) -> MemoryStore:
    store = MemoryStore(pvcs={("agents", GEN1): old_workspace()})
    for run, job in runs:
        store.owners[("CodeRun", "agents", run["metadata"]["name"])] = run
        store.owners[("Job", "agents", job["metadata"]["name"])] = job
    return store


def admit_pod(http: TestClient, pod: dict[str, Any], dry_run: bool = False) -> tuple[str | None, dict[str, Any]]:
    answer = mutate(http, review(pod, dry_run=dry_run))
    return claim(applied(pod, answer)), answer["response"]


FRESH = stored_coderun("cleo-intake", "run-uid-1", freshWorkspace=True)
FRESH_JOB = job_of(FRESH, "job-uid-1")


def test_a_fresh_coderun_is_told_its_generation_and_nothing_is_made_yet(make_client: MakeClient) -> None:
    http, store = make_client(cluster())
    before = copy.deepcopy(store.pvcs)
    answer = mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]", name="cleo-intake", freshWorkspace=True)))
    warnings = answer["response"]["warnings"]
    assert any(
        f"first Pod makes generation 2 of the workspace, PersistentVolumeClaim agents/{GEN2}" in w for w in warnings
    )
    assert any(f"generation 1 ({GEN1}) is kept" in w for w in warnings)
    assert applied(coderun("cto", "5DLabs-Cleo[bot]"), answer)["metadata"]["annotations"] == {
        "agents.platform/workspace": GEN2
    }
    assert store.pvcs == before  # the CodeRun has no uid yet: its first Pod makes it


def test_its_first_pod_makes_the_new_generation_once_and_later_runs_use_it(make_client: MakeClient) -> None:
    other = stored_coderun("cleo-review", "run-uid-2")
    http, store = make_client(cluster((FRESH, FRESH_JOB), (other, job_of(other, "job-uid-2"))))
    gen1_before = copy.deepcopy(store.pvcs[("agents", GEN1)])

    mounted, response = admit_pod(http, pod_of(FRESH_JOB))
    assert mounted == GEN2
    assert any(
        f"fresh workspace for CodeRun agents/cleo-intake: generation 2 ({GEN2})" in w for w in response["warnings"]
    )
    made = store.pvcs[("agents", GEN2)]
    assert made["metadata"]["labels"]["agents.platform/generation"] == "2"
    assert made["metadata"]["labels"]["agents.platform/generation-of"] == GEN1
    assert made["metadata"]["annotations"]["agents.platform/fresh-for"] == "run-uid-1"
    assert "dataSource" not in made["spec"]  # empty, never a clone of the old context

    # admitted again (a retry, a reinvocation, the Job's next Pod): the same generation, no other
    for _ in range(3):
        assert admit_pod(http, pod_of(FRESH_JOB))[0] == GEN2
    assert sorted(name for _, name in store.pvcs) == sorted([GEN1, GEN2])
    # a later run of Cleo, fresh or not asked, and a bare labelled Pod: the new generation
    assert admit_pod(http, pod_of(job_of(other, "job-uid-2")))[0] == GEN2
    assert admit_pod(http, job_pod("cto", "5dlabs-cleobot"))[0] == GEN2
    assert store.pvcs[("agents", GEN1)] == gen1_before  # the previous life, untouched


def test_a_pod_of_another_run_waiting_beside_a_fresh_one_keeps_the_current_generation(
    make_client: MakeClient,
) -> None:
    other = stored_coderun("cleo-review", "run-uid-2")
    other_job = job_of(other, "job-uid-2")
    http, store = make_client(cluster((FRESH, FRESH_JOB), (other, other_job)))
    assert admit_pod(http, pod_of(other_job))[0] == GEN1  # not the fresh run's Pod: nothing new
    assert ("agents", GEN2) not in store.pvcs
    assert ("get", other_job["metadata"]["name"]) in store.calls  # the one owner lookup it cost
    assert admit_pod(http, pod_of(FRESH_JOB))[0] == GEN2


def test_a_pod_naming_a_job_uid_that_is_not_the_jobs_makes_nothing(make_client: MakeClient) -> None:
    http, store = make_client(cluster((FRESH, FRESH_JOB)))
    assert admit_pod(http, pod_of(FRESH_JOB, job_uid="forged-uid"))[0] == GEN1
    assert ("agents", GEN2) not in store.pvcs


def test_without_a_pending_fresh_run_a_pod_costs_no_owner_lookup(make_client: MakeClient) -> None:
    http, store = make_client(cluster())
    assert admit_pod(http, job_pod("cto", "5dlabs-cleobot"))[0] == GEN1
    assert [verb for verb, _ in store.calls] == ["get"]  # the workspace's generations, from the cache in a cluster


@pytest.mark.parametrize(
    ("spec", "fresh"),
    [
        ({"runType": "intake"}, True),
        ({"runType": "intake", "freshWorkspace": False}, False),
        ({"runType": "implementation", "freshWorkspace": True}, True),
        ({"runType": "implementation"}, False),
    ],
)
def test_fresh_as_the_platform_decides_it(make_client: MakeClient, spec: dict[str, Any], fresh: bool) -> None:
    run = stored_coderun("cleo-run", "run-uid-9", **spec)
    job = job_of(run, "job-uid-9")
    http, _ = make_client(cluster((run, job)))
    assert admit_pod(http, pod_of(job))[0] == (GEN2 if fresh else GEN1)


def test_a_dry_run_makes_nothing_and_says_what_it_would(make_client: MakeClient) -> None:
    http, store = make_client(cluster((FRESH, FRESH_JOB)))
    answer = mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]", freshWorkspace=True), dry_run=True))
    assert any("its first Pod would make generation 2" in w for w in answer["response"]["warnings"])
    mounted, response = admit_pod(http, pod_of(FRESH_JOB), dry_run=True)
    assert mounted == GEN2 and any("would be created" in w for w in response["warnings"])
    assert ("agents", GEN2) not in store.pvcs


def test_the_first_fresh_run_of_a_new_workspace_makes_generation_one(make_client: MakeClient) -> None:
    http, store = make_client(cluster((FRESH, FRESH_JOB)))
    del store.pvcs[("agents", GEN1)]
    assert admit_pod(http, pod_of(FRESH_JOB))[0] == GEN1
    assert store.pvcs[("agents", GEN1)]["metadata"]["annotations"]["agents.platform/fresh-for"] == "run-uid-1"


def test_a_generation_being_deleted_hands_over_to_the_one_before(make_client: MakeClient) -> None:
    newest = old_workspace(
        GEN2,
        deletionTimestamp="2026-11-30T11:00:00Z",
        labels={"agents.platform/generation": "2", "agents.platform/generation-of": GEN1},
    )
    http, store = make_client(cluster())
    store.pvcs[("agents", GEN2)] = newest
    assert admit_pod(http, job_pod("cto", "5dlabs-cleobot"))[0] == GEN1
    store.pvcs[("agents", GEN1)]["metadata"]["deletionTimestamp"] = "2026-11-30T11:00:00Z"
    response = admit_pod(http, job_pod("cto", "5dlabs-cleobot"))[1]
    assert response["allowed"] is False and response["status"]["code"] == 409
    assert f"agents/{GEN2} is being deleted" in response["status"]["message"]  # the newest is named


def test_made_in_the_same_second_as_its_coderun_it_is_still_found_by_its_uid(make_client: MakeClient) -> None:
    # Timestamps have whole seconds: a generation made as fast as that is known by fresh-for alone.
    run = stored_coderun("cleo-intake", "run-uid-1", freshWorkspace=True)
    run["metadata"]["creationTimestamp"] = "2999-01-01T00:00:00Z"  # never before the PVC's
    job = job_of(run, "job-uid-1")
    http, store = make_client(cluster((run, job)))
    assert [admit_pod(http, pod_of(job))[0] for _ in range(2)] == [GEN2, GEN2]
    assert sorted(name for _, name in store.pvcs) == sorted([GEN1, GEN2])


# --- growing an existing workspace (WEBHOOK_GROW_EXISTING) ----------------------------------


def sized(storage: str, storage_class: str | None = "workspaces") -> MemoryStore:
    """Cleo's workspace, made by the webhook (its managed-by label), at `storage`."""
    store = cluster()
    store.pvcs[("agents", GEN1)]["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "agent-workspace-webhook"}
    spec = store.pvcs[("agents", GEN1)]["spec"]
    spec["resources"]["requests"]["storage"] = storage
    if storage_class:
        spec["storageClassName"] = storage_class
    store.storage_classes = {"workspaces": True, "fixed": False}
    return store


def test_a_smaller_workspace_grows_to_the_configured_size_and_says_so(make_client: MakeClient) -> None:
    http, store = make_client(sized("10Gi"), grow_existing=True, storage_size="20Gi")
    mounted, response = admit_pod(http, job_pod("cto", "5dlabs-cleobot"))
    assert mounted == GEN1 and store.pvcs[("agents", GEN1)]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert (
        f"PersistentVolumeClaim agents/{GEN1} grows from 10Gi to 20Gi (WEBHOOK_GROW_EXISTING)" in response["warnings"]
    )
    assert "agent_workspace_webhook_pvcs_grown_total 1.0" in probes(http).get("/metrics").text
    admit_pod(http, job_pod("cto", "5dlabs-cleobot"))  # now as large: nothing more to do, no call
    assert [call for call in store.calls if call[0] == "patch"] == [("patch", GEN1)]


@pytest.mark.parametrize(
    ("store", "settings", "says"),
    [
        (lambda: sized("10Gi", "fixed"), {}, "StorageClass fixed does not allow volume expansion"),
        (lambda: sized("10Gi", "gone"), {}, "StorageClass gone does not exist"),
        (lambda: sized("10Gi", None), {}, "names no StorageClass"),
        (lambda: sized("30Gi"), {}, None),  # larger than configured: never lowered
        (lambda: sized("10Gi"), {"grow_existing": False}, None),  # off by default
    ],
)
def test_what_cannot_grow_is_left_alone_and_the_run_goes_ahead(
    make_client: MakeClient, store: Any, settings: dict[str, Any], says: str | None
) -> None:
    http, memory = make_client(store(), **{"grow_existing": True, "storage_size": "20Gi", **settings})
    before = copy.deepcopy(memory.pvcs[("agents", GEN1)])
    mounted, response = admit_pod(http, job_pod("cto", "5dlabs-cleobot"))
    assert mounted == GEN1 and response["allowed"] is True
    assert memory.pvcs[("agents", GEN1)] == before
    warnings = response.get("warnings", [])
    assert (
        (any(says in w for w in warnings) and "stays at 10Gi, below WEBHOOK_STORAGE_SIZE 20Gi" in " ".join(warnings))
        if says
        else not warnings
    )


def test_only_a_workspace_the_webhook_made_grows(make_client: MakeClient) -> None:
    store = sized("1Gi")
    del store.pvcs[("agents", GEN1)]["metadata"]["labels"]  # made by hand, named like a workspace
    http, _ = make_client(store, grow_existing=True, storage_size="20Gi")
    mounted, response = admit_pod(http, job_pod("cto", "5dlabs-cleobot"))
    assert mounted == GEN1 and store.pvcs[("agents", GEN1)]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert any("the webhook did not make it" in w for w in response["warnings"])


def test_only_a_verified_runs_pod_grows_a_workspace(make_client: MakeClient) -> None:
    # WEBHOOK_CREATE_FOR=verified-runs: a forged bare Pod, or a CodeRun (no uid to verify yet),
    # changes nothing; the verified run's own Pod does.
    store = sized("10Gi")
    http, _ = make_client(store, grow_existing=True, storage_size="20Gi", create_for="verified-runs")
    mounted, response = admit_pod(http, job_pod("cto", "5dlabs-cleobot"))
    assert mounted == GEN1 and any("only a verified run grows a workspace" in w for w in response["warnings"])
    mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]", name="cleo-2")))
    assert store.pvcs[("agents", GEN1)]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    run = stored_coderun("cleo-3", "run-uid-3")
    job = job_of(run, "job-uid-3")
    store.owners.update({("CodeRun", "agents", "cleo-3"): run, ("Job", "agents", job["metadata"]["name"]): job})
    admit_pod(http, pod_of(job))
    assert store.pvcs[("agents", GEN1)]["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_a_dry_run_only_says_it_would_grow(make_client: MakeClient) -> None:
    http, store = make_client(sized("10Gi"), grow_existing=True, storage_size="20Gi")
    response = admit_pod(http, job_pod("cto", "5dlabs-cleobot"), dry_run=True)[1]
    assert f"dry run: PersistentVolumeClaim agents/{GEN1} would grow from 10Gi to 20Gi" in response["warnings"]
    assert store.pvcs[("agents", GEN1)]["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_a_failed_patch_is_a_warning_and_the_run_goes_ahead(make_client: MakeClient) -> None:
    store = sized("10Gi")
    store.failures = {"patch": (403, 'persistentvolumeclaims "x" is forbidden: cannot patch resource')}
    http, _ = make_client(store, grow_existing=True, storage_size="20Gi")
    mounted, response = admit_pod(http, job_pod("cto", "5dlabs-cleobot"))
    assert mounted == GEN1 and response["allowed"] is True
    assert any("grant it verb 'patch' on persistentvolumeclaims" in w for w in response["warnings"])


# --- the per-namespace ceiling (WEBHOOK_MAX_WORKSPACES_PER_NAMESPACE) ---------------------------


def test_past_the_ceiling_no_new_workspace_is_made_and_the_setting_is_named(make_client: MakeClient) -> None:
    http, store = make_client(max_workspaces_per_namespace=2)
    for service in ("alpha", "beta"):
        assert admit_pod(http, job_pod(service, "5dlabs-rex"))[0] == f"workspace-{service}-rex"
    response = admit_pod(http, job_pod("gamma", "5dlabs-rex"))[1]
    assert response["allowed"] is False and response["status"]["code"] == 403
    assert "WEBHOOK_MAX_WORKSPACES_PER_NAMESPACE=2" in response["status"]["message"]
    assert "has 2 workspace PVCs made by the webhook (every generation counts)" in response["status"]["message"]
    assert ("agents", "workspace-gamma-rex") not in store.pvcs
    # what exists is still handed out, and a new generation of one is no new workspace
    assert admit_pod(http, job_pod("alpha", "5dlabs-rex"))[0] == "workspace-alpha-rex"
    other, _ = make_client(store, max_workspaces_per_namespace=2)
    assert admit_pod(other, job_pod("gamma", "5dlabs-rex"), dry_run=True)[1]["allowed"] is False


def test_a_fresh_runs_new_generation_counts_against_the_ceiling_too(make_client: MakeClient) -> None:
    # Cleo's workspace has two generations the webhook made: at a ceiling of 2, her fresh run's
    # Pod makes no third (a fresh run for a new service, or an intake run, is no way around it).
    store = cluster((FRESH, FRESH_JOB))
    store.pvcs[("agents", GEN1)]["metadata"]["labels"] = {"agents.platform/generation-of": GEN1}
    store.pvcs[("agents", GEN2)] = later(2)
    http, _ = make_client(store, max_workspaces_per_namespace=2)
    response = admit_pod(http, pod_of(FRESH_JOB))[1]
    assert response["allowed"] is False and "WEBHOOK_MAX_WORKSPACES_PER_NAMESPACE=2" in response["status"]["message"]
    assert sorted(name for _, name in store.pvcs) == sorted([GEN1, GEN2])
    http, _ = make_client(store, max_workspaces_per_namespace=3)
    assert admit_pod(http, pod_of(FRESH_JOB))[0] == generation_name(GEN1, 3)


# --- the per-workspace rate (WEBHOOK_MAX_FRESH_PER_HOUR) ------------------------------------------


def later(number: int, made: str = "2026-11-01T10:00:00Z") -> dict[str, Any]:
    """Generation `number` of Cleo's workspace, made by the webhook at `made` (long before any run here)."""
    labels = {"agents.platform/generation": str(number), "agents.platform/generation-of": GEN1}
    return old_workspace(generation_name(GEN1, number), labels=labels, creationTimestamp=made)


def just_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_past_the_rate_a_fresh_coderun_is_refused_and_others_run_on(make_client: MakeClient) -> None:
    store = cluster()
    store.pvcs[("agents", GEN2)] = later(2, just_now())
    http, _ = make_client(store, max_fresh_per_hour=1)
    before = copy.deepcopy(store.pvcs)
    answer = mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]", name="cleo-intake", freshWorkspace=True)))
    response = answer["response"]
    assert response["allowed"] is False and response["status"]["code"] == 403
    message = response["status"]["message"]
    assert (
        f"workspace agents/{GEN1} has had 1 new generations in the last hour, its limit "
        "(WEBHOOK_MAX_FRESH_PER_HOUR=1)" in message
    )
    assert "the fresh workspace CodeRun agents/cleo-intake asks for is not made" in message
    assert "agent-workspace-webhook workspaces -n agents" in message
    assert store.pvcs == before
    # a run that is not fresh still gets the current generation
    assert admit_pod(http, job_pod("cto", "5dlabs-cleobot"))[0] == GEN2


def test_generations_made_over_an_hour_ago_never_count_however_many(make_client: MakeClient) -> None:
    # Intake runs are fresh and routine: a workspace with many old generations still gets a new one.
    store = cluster()
    for number in range(2, 40):
        store.pvcs[("agents", generation_name(GEN1, number))] = later(number)
    http, _ = make_client(store, max_fresh_per_hour=1)
    answer = mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]", name="cleo-intake", runType="intake")))
    assert answer["response"]["allowed"] is True
    assert "generation 40" in " ".join(answer["response"]["warnings"])


def test_a_fresh_runs_pod_is_refused_when_the_rate_was_reached_after_its_coderun(make_client: MakeClient) -> None:
    # Admitted below the rate; another run's generation 2 (made before this run started, within
    # the hour) reached it since.
    run = stored_coderun("cleo-intake", "run-uid-1", freshWorkspace=True)
    run["metadata"]["creationTimestamp"] = just_now()
    job = job_of(run, "job-uid-1")
    store = cluster((run, job))
    ten_minutes_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    store.pvcs[("agents", GEN2)] = later(2, ten_minutes_ago.strftime("%Y-%m-%dT%H:%M:%SZ"))
    http, _ = make_client(store, max_fresh_per_hour=1)
    response = admit_pod(http, pod_of(job))[1]
    assert response["allowed"] is False and response["status"]["code"] == 403
    assert "so the fresh workspace CodeRun agents/cleo-intake asks for is not made" in response["status"]["message"]
    assert sorted(name for _, name in store.pvcs) == sorted([GEN1, GEN2])
    # one more allowed: the same Pod makes generation 3
    http, _ = make_client(store, max_fresh_per_hour=2)
    assert admit_pod(http, pod_of(job))[0] == generation_name(GEN1, 3)


def test_a_generation_past_the_highest_number_is_a_clear_denial_not_an_internal_error(make_client: MakeClient) -> None:
    store = cluster()
    store.pvcs[("agents", generation_name(GEN1, 9999))] = later(9999)  # a label written by hand
    http, _ = make_client(store)
    answer = mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]", name="cleo-intake", freshWorkspace=True)))
    response = answer["response"]
    assert response["status"]["code"] == 403
    assert "has generation 9999, the highest number a generation can have" in response["status"]["message"]


# --- provenance (WEBHOOK_CREATE_FOR=verified-runs) -------------------------------------------


def test_verified_runs_make_workspaces_only_for_real_runs(make_client: MakeClient) -> None:
    run = stored_coderun("cleo-review", "run-uid-7")
    job = job_of(run, "job-uid-7")
    store = MemoryStore()
    store.owners[("CodeRun", "agents", "cleo-review")] = run
    store.owners[("Job", "agents", job["metadata"]["name"])] = job
    http, _ = make_client(store, create_for="verified-runs")

    answer = mutate(http, review(coderun("cto", "5DLabs-Cleo[bot]", name="cleo-review")))["response"]
    assert any("made at its first Pod, or adopted when the platform" in w for w in answer["warnings"])
    assert not store.pvcs  # the CodeRun has no uid yet: nothing to verify, so nothing made
    assert admit_pod(http, pod_of(job))[0] == GEN1  # its Job's Pod: verified, made
    assert ("agents", GEN1) in store.pvcs
    del store.pvcs[("agents", GEN1)]  # gone again: what follows would each have to make it

    bare = admit_pod(http, job_pod("billing", "5dlabs-rex"))[1]  # labels alone, no owner
    assert bare["allowed"] is False and "names no controller Job and CodeRun" in bare["status"]["message"]
    forged = admit_pod(http, pod_of(job, job_uid="made-up"))[1]
    says = "its controller Job agents/cleo-review-job with uid 'made-up' does not exist"
    assert forged["allowed"] is False and says in forged["status"]["message"]
    assert "job-uid-7" not in forged["status"]["message"]  # the real uid is not the caller's to read
    missing = pod_of(job)
    missing["metadata"]["ownerReferences"][0]["name"] = "no-such-job"
    gone = admit_pod(http, missing)[1]
    assert "its controller Job agents/no-such-job with uid 'job-uid-7' does not exist" in gone["status"]["message"]
    direct = pod_of(job)  # naming the real CodeRun, uid and all, but as its own controller: no Job between
    direct["metadata"]["ownerReferences"] = [controller_ref(run)]
    assert "names no controller Job and CodeRun" in admit_pod(http, direct)[1]["status"]["message"]
    lying = pod_of(job)
    lying["metadata"]["labels"].update({"service": "othersvc", "github-user": "5dlabs-tess"})
    disagree = admit_pod(http, lying)[1]["status"]["message"]
    assert "its labels give workspace workspace-othersvc-tess" in disagree and "gives workspace-cto-cleo" in disagree
    assert not store.pvcs  # none of them made anything
    # a workspace that exists is reused without verification (and no API call on a cache hit)
    store.pvcs[("agents", "workspace-billing-rex")] = old_workspace("workspace-billing-rex")
    assert admit_pod(http, job_pod("billing", "5dlabs-rex"))[0] == "workspace-billing-rex"
