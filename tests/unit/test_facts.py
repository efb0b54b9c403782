import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from agent_workspace_webhook.admission.context import Denial
from agent_workspace_webhook.admission.owners import walk
from agent_workspace_webhook.rules.agents import compile_rules
from agent_workspace_webhook.rules.facts import (
    FactsError,
    OwnerKind,
    RunFacts,
    coderun_facts,
    label_facts,
    labels_are_conclusive,
)
from agent_workspace_webhook.settings import DEFAULT_AGENT_PATTERN, DEFAULT_AGENT_TABLE
from agent_workspace_webhook.testing.objects import coderun, job_pod

RULES = compile_rules(DEFAULT_AGENT_TABLE, DEFAULT_AGENT_PATTERN)


class Lookup:
    """Owner lookup over a dict, recording what was asked."""

    def __init__(self, objects: dict[tuple[str, str], Mapping[str, Any]]) -> None:
        self.objects = objects
        self.asked: list[tuple[str, str, str]] = []

    async def __call__(self, kind: OwnerKind, namespace: str, name: str) -> Mapping[str, Any] | None:
        self.asked.append((kind, namespace, name))
        return self.objects.get((kind, name))


def facts_for(pod: dict[str, Any], lookup: Lookup) -> RunFacts | None:
    """A Pod's facts as admission/admit.py reads them: its labels when they are conclusive (no
    lookup), else its owning CodeRun, else whatever the labels had."""
    labels = label_facts(pod, "service", "github-user")
    if labels_are_conclusive(labels, RULES):
        return labels
    run = asyncio.run(walk(pod, "agents", lookup, verified=False))
    return run.facts() if run is not None else labels


def owned_job(coderun_name: str) -> dict[str, Any]:
    owner = {"kind": "CodeRun", "name": coderun_name, "controller": True}
    return {"metadata": {"name": "job-1", "ownerReferences": [owner]}}


def test_coderun_facts() -> None:
    facts = coderun_facts(coderun("cto", "5DLabs-Tess"))
    assert (facts.service, facts.app, facts.app_field) == ("cto", "5DLabs-Tess", "spec.githubApp")
    assert not facts.warnings


def test_coderun_github_user_is_a_deprecated_fallback() -> None:
    facts = coderun_facts(coderun("cto", None, githubUser="5DLabs-Rex"))
    assert (facts.app, facts.app_field) == ("5DLabs-Rex", "spec.githubUser")
    assert "deprecated" in facts.warnings[0]


def test_wrong_types_name_the_field() -> None:
    with pytest.raises(FactsError, match=r"spec\.service must be a string, not int"):
        coderun_facts(coderun(42))  # type: ignore[arg-type]
    with pytest.raises(FactsError, match="spec must be an object"):
        coderun_facts({"spec": ["x"]})


def test_complete_labels_need_no_lookup() -> None:
    lookup = Lookup({})
    facts = facts_for(job_pod("cto", "5dlabs-cleobot", owner_job="job-1"), lookup)
    assert facts is not None and (facts.service, facts.app) == ("cto", "5dlabs-cleobot")
    assert facts.app_field == "metadata.labels['github-user']"
    assert lookup.asked == []


def test_missing_label_follows_pod_job_coderun() -> None:
    lookup = Lookup({("Job", "job-1"): owned_job("run-7"), ("CodeRun", "run-7"): coderun("cto", "5DLabs-Cleo[bot]")})
    facts = facts_for(job_pod("cto", None, owner_job="job-1"), lookup)
    assert facts is not None
    assert (facts.service, facts.app) == ("cto", "5DLabs-Cleo[bot]")
    assert facts.app_field == "CodeRun agents/run-7 spec.githubApp"
    assert lookup.asked == [("Job", "agents", "job-1"), ("CodeRun", "agents", "run-7")]


def test_ambiguous_label_asks_the_coderun_which_is_authoritative() -> None:
    lookup = Lookup({("Job", "job-1"): owned_job("run-7"), ("CodeRun", "run-7"): coderun("cto", "5DLabs-Ro[bot]")})
    facts = facts_for(job_pod("cto", "5dlabs-robot", owner_job="job-1"), lookup)
    assert facts is not None and facts.app == "5DLabs-Ro[bot]"


def test_ambiguous_label_without_owner_is_taken_literally() -> None:
    facts = facts_for(job_pod("cto", "5dlabs-robot"), Lookup({}))
    assert facts is not None and facts.app == "5dlabs-robot"


def test_no_facts_and_no_owner_is_not_an_agent_pod() -> None:
    assert facts_for(job_pod(None, None, owner_job="job-1"), Lookup({})) is None


def test_pod_owned_directly_by_a_coderun() -> None:
    pod = job_pod(None, None)
    pod["metadata"]["ownerReferences"] = [{"kind": "CodeRun", "name": "run-9", "controller": True}]
    facts = facts_for(pod, Lookup({("CodeRun", "run-9"): coderun("svc", "5DLabs-Rex")}))
    assert facts is not None and (facts.service, facts.app) == ("svc", "5DLabs-Rex")


def test_label_facts_of_a_plain_pod() -> None:
    assert label_facts({"metadata": {"labels": {"app": "nginx"}}}, "service", "github-user") is None


def test_only_the_controller_owner_is_followed() -> None:
    # 1,500 forged Job references cost nothing; the one controller costs at most two lookups.
    pod = job_pod(None, None)
    decoys = [{"kind": "Job", "name": f"decoy-{i}"} for i in range(1500)]
    pod["metadata"]["ownerReferences"] = [*decoys, {"kind": "Job", "name": "job-1", "controller": True}]
    lookup = Lookup({("Job", "job-1"): owned_job("run-7"), ("CodeRun", "run-7"): coderun("cto", "5DLabs-Rex")})
    facts = facts_for(pod, lookup)
    assert facts is not None and facts.app == "5DLabs-Rex"
    assert lookup.asked == [("Job", "agents", "job-1"), ("CodeRun", "agents", "run-7")]


def test_owners_that_are_not_controllers_make_no_lookup() -> None:
    pod = job_pod(None, None)
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": f"j-{i}"} for i in range(1500)]
    lookup = Lookup({})
    assert facts_for(pod, lookup) is None
    assert lookup.asked == []


def test_two_controllers_are_refused_by_name() -> None:
    pod = job_pod(None, None)
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": n, "controller": True} for n in ("a", "b")]
    with pytest.raises(FactsError, match=r"metadata\.ownerReferences has 2 entries with controller: true"):
        facts_for(pod, Lookup({}))


def test_a_job_without_a_controller_coderun_ends_the_search() -> None:
    job = {"metadata": {"name": "job-1", "ownerReferences": [{"kind": "CodeRun", "name": "run-7"}]}}
    lookup = Lookup({("Job", "job-1"): job, ("CodeRun", "run-7"): coderun("cto", "5DLabs-Rex")})
    assert facts_for(job_pod(None, None, owner_job="job-1"), lookup) is None
    assert lookup.asked == [("Job", "agents", "job-1")]


# --- the verified reading: a real run's chain, each owner with the uid its child names -----------


def chain() -> tuple[dict[str, Any], Lookup]:
    """A Pod of Job job-1 (uid j1) of CodeRun run-7 (uid r7), and a lookup holding both."""
    owner = {"kind": "CodeRun", "name": "run-7", "uid": "r7", "controller": True}
    job: dict[str, Any] = {"metadata": {"name": "job-1", "uid": "j1", "ownerReferences": [owner]}}
    run = coderun("cto", "5DLabs-Rex")
    run["metadata"]["uid"] = "r7"
    pod = job_pod(None, None)
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "job-1", "uid": "j1", "controller": True}]
    return pod, Lookup({("Job", "job-1"): job, ("CodeRun", "run-7"): run})


def test_a_real_runs_chain_is_verified_and_its_reference_read_without_the_coderun() -> None:
    pod, lookup = chain()
    run = asyncio.run(walk(pod, "agents", lookup, verified=True))
    assert run is not None and (run.name, run.uid, run.facts().app) == ("run-7", "r7", "5DLabs-Rex")
    lookup.asked.clear()
    ref = asyncio.run(walk(pod, "agents", lookup, verified=True, read_run=False))
    assert ref is not None and (ref.name, ref.uid, ref.coderun) == ("run-7", "r7", None)
    assert lookup.asked == [("Job", "agents", "job-1")]


@pytest.mark.parametrize("forgery", ["missing job", "job uid", "missing run", "run uid"])
def test_a_forged_owner_is_denied_with_one_message_whatever_is_wrong(forgery: str) -> None:
    pod, lookup = chain()
    kind, what = forgery.split()
    key = ("Job", "job-1") if kind == "job" else ("CodeRun", "run-7")
    if what == "uid":
        lookup.objects[key] = {**lookup.objects[key], "metadata": {**lookup.objects[key]["metadata"], "uid": "other"}}
    else:
        del lookup.objects[key]
    with pytest.raises(Denial) as denied:
        asyncio.run(walk(pod, "agents", lookup, verified=True))
    name = "Job agents/job-1 with uid 'j1'" if kind == "job" else "CodeRun agents/run-7 with uid 'r7'"
    assert denied.value.code == 403 and denied.value.message == (
        f"its controller {name} does not exist; a workspace is made only for a real run"
    )
    assert "other" not in denied.value.message


def test_a_pod_naming_a_coderun_directly_is_no_runs_when_verified() -> None:
    pod = job_pod(None, None)
    pod["metadata"]["ownerReferences"] = [{"kind": "CodeRun", "name": "run-9", "uid": "r9", "controller": True}]
    run = coderun("svc", "5DLabs-Rex")
    run["metadata"]["uid"] = "r9"
    lookup = Lookup({("CodeRun", "run-9"): run})
    assert asyncio.run(walk(pod, "agents", lookup, verified=True)) is None and lookup.asked == []
    assert asyncio.run(walk(pod, "agents", lookup, verified=False)) is not None  # its facts still count
