"""The rules behind a workspace's life (issue 12): cloning the legacy workspace, what is kept of
an existing PVC, one node per ReadWriteOnce workspace, and today's CodeRun (pure)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from agent_workspace_webhook.rules.facts import coderun_facts
from agent_workspace_webhook.rules.patch import REQUIRED, colocation_patch, colocation_term
from agent_workspace_webhook.rules.pvc import (
    Clone,
    PvcSpec,
    clone_problem,
    larger,
    pvc_manifest,
    pvc_state,
)
from agent_workspace_webhook.testing.objects import coderun, job_pod

SPEC = PvcSpec("10Gi", ["ReadWriteOnce"], "fast-ssd")


def legacy_pvc(**changes: Any) -> dict[str, Any]:
    pvc: dict[str, Any] = {
        "metadata": {"name": "workspace-cto", "finalizers": ["kubernetes.io/pvc-protection"]},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "standard-csi",
            "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "50Gi"}},
        },
        "status": {"phase": "Bound"},
    }
    pvc["metadata"].update(changes.pop("metadata", {}))
    pvc.update(changes)
    return pvc


def test_the_state_kept_of_a_pvc() -> None:
    state = pvc_state(legacy_pvc())
    assert (state.phase, state.deleting, state.protected) == ("Bound", False, True)
    assert (state.access_modes, state.storage_class, state.volume_mode, state.storage) == (
        ("ReadWriteOnce",),
        "standard-csi",
        "Filesystem",
        "50Gi",
    )
    dying = pvc_state(legacy_pvc(metadata={"deletionTimestamp": "2026-11-25T10:00:00Z"}))
    assert dying.deleting and dying.protected
    assert pvc_state({"metadata": {"name": "x"}}).phase == "Pending"


def test_a_clone_takes_the_legacy_class_and_mode_and_no_smaller_size() -> None:
    manifest = pvc_manifest(
        "workspace-cto-rex", "agents", {"agent": "rex"}, SPEC, Clone("workspace-cto", pvc_state(legacy_pvc()))
    )
    assert manifest["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "dataSource": {"kind": "PersistentVolumeClaim", "name": "workspace-cto"},
        "resources": {"requests": {"storage": "50Gi"}},  # the legacy one is larger than our 10Gi
        "storageClassName": "standard-csi",  # the legacy one's, not the settings' fast-ssd
    }
    assert manifest["metadata"]["annotations"] == {
        "agents.platform/cloned-from": "workspace-cto",
        "agents.platform/made-from": "clone of workspace-cto",
    }


def test_a_smaller_legacy_keeps_our_size_and_no_clone_keeps_our_class() -> None:
    small = pvc_state(
        legacy_pvc(spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}})
    )
    manifest = pvc_manifest("workspace-cto-rex", "agents", {}, SPEC, Clone("workspace-cto", small))
    assert manifest["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in manifest["spec"]  # the legacy PVC has none: the default class, as it had
    plain = pvc_manifest("workspace-cto-rex", "agents", {}, SPEC)
    assert plain["spec"]["storageClassName"] == "fast-ssd" and "dataSource" not in plain["spec"]
    assert plain["metadata"]["annotations"] == {"agents.platform/made-from": "empty"}  # no cloned-from


def test_larger_of_two_sizes() -> None:
    assert larger("10Gi", "20000Mi") == "20000Mi"
    assert larger("10Gi", "1G") == "10Gi"
    assert larger("10Gi", None) == "10Gi"


@pytest.mark.parametrize(
    ("pvc", "says"),
    [
        (None, "there is no legacy PersistentVolumeClaim workspace-cto"),
        (legacy_pvc(status={"phase": "Pending"}), "is Pending, not Bound"),
        (legacy_pvc(metadata={"deletionTimestamp": "2026-11-25T10:00:00Z"}), "is being deleted"),
    ],
)
def test_when_a_clone_is_not_possible(pvc: dict[str, Any] | None, says: str) -> None:
    problem = clone_problem("workspace-cto", None if pvc is None else pvc_state(pvc))
    assert problem is not None and says in problem
    assert clone_problem("workspace-cto", pvc_state(legacy_pvc())) is None


def test_colocation_is_added_to_a_pod_without_affinity() -> None:
    pod = job_pod("cto", "5dlabs-rex")
    after = jsonpatch.apply_patch(pod, colocation_patch(pod, "workspace-cto-rex"))
    assert after["spec"]["affinity"] == {"podAffinity": {REQUIRED: [colocation_term("workspace-cto-rex")]}}
    assert colocation_term("workspace-cto-rex") == {
        "labelSelector": {"matchLabels": {"agents.platform/workspace": "workspace-cto-rex"}},
        "topologyKey": "kubernetes.io/hostname",
    }


def test_colocation_merges_into_an_existing_affinity_and_is_idempotent() -> None:
    pod = job_pod("cto", "5dlabs-rex")
    node_affinity: dict[str, Any] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    theirs = {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "topology.kubernetes.io/zone"}
    preferred = [{"weight": 1, "podAffinityTerm": theirs}]
    pod["spec"]["affinity"] = {
        "nodeAffinity": node_affinity,
        "podAffinity": {REQUIRED: [theirs], "preferredDuringSchedulingIgnoredDuringExecution": preferred},
    }
    once = jsonpatch.apply_patch(pod, colocation_patch(pod, "workspace-cto-rex"))
    assert once["spec"]["affinity"]["nodeAffinity"] == node_affinity
    assert once["spec"]["affinity"]["podAffinity"][REQUIRED] == [theirs, colocation_term("workspace-cto-rex")]
    assert once["spec"]["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
    assert colocation_patch(once, "workspace-cto-rex") == []  # reinvocation: no second term
    only_node = job_pod("cto", "5dlabs-rex")
    only_node["spec"]["affinity"] = {"nodeAffinity": node_affinity}
    merged = jsonpatch.apply_patch(only_node, colocation_patch(only_node, "workspace-cto-rex"))
    assert merged["spec"]["affinity"]["nodeAffinity"] == node_affinity
    assert merged["spec"]["affinity"]["podAffinity"] == {REQUIRED: [colocation_term("workspace-cto-rex")]}


def test_implementation_agent_is_read_when_github_app_is_absent_or_empty() -> None:
    for app in (None, ""):
        facts = coderun_facts(coderun("cto", app, implementationAgent="cleo"))
        assert (facts.agent, facts.app, facts.app_field) == ("cleo", None, "spec.implementationAgent")


def test_github_app_wins_over_implementation_agent_and_github_user_comes_last() -> None:
    both = coderun_facts(coderun("cto", "5DLabs-Rex", implementationAgent="cleo"))
    assert (both.app, both.agent) == ("5DLabs-Rex", None)
    agent_and_user = coderun_facts(coderun("cto", None, implementationAgent="tess", githubUser="5DLabs-Rex"))
    assert (agent_and_user.agent, agent_and_user.app, agent_and_user.warnings) == ("tess", None, ())
