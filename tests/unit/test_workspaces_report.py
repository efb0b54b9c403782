"""The `workspaces` report marks the webhook's workspaces that no run names (ops/workspaces.py):
a PVC made for an admission whose answer was then lost belongs to no CodeRun and no Pod."""

from __future__ import annotations

from typing import Any

from agent_workspace_webhook.ops.workspaces import report, rows, unnamed
from agent_workspace_webhook.rules.labels import MANAGED_BY, generation_labels, workspace_labels
from agent_workspace_webhook.testing.objects import stored_pvc


def workspace(name: str, agent: str, ours: bool = True) -> dict[str, Any]:
    """Generation 1 of a billing workspace, made by the webhook (`ours`) or only labelled like one."""
    labels = {**workspace_labels("billing", agent, name), **generation_labels(1, name)}
    return stored_pvc(name, labels=labels | MANAGED_BY if ours else labels)


def coderun(name: str, workspace: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "agents", "annotations": {"agents.platform/workspace": workspace}}}


def pod(name: str, claim: str) -> dict[str, Any]:
    volume = {"name": "workspace", "persistentVolumeClaim": {"claimName": claim}}
    return {
        "metadata": {"name": name, "namespace": "agents"},
        "spec": {"volumes": [volume]},
        "status": {"phase": "Running"},
    }


PVCS = [
    workspace("workspace-billing-rex", "rex"),
    workspace("workspace-billing-cleo", "cleo"),
    workspace("workspace-billing-tess", "tess"),
]


def test_a_workspace_no_coderun_names_and_no_pod_mounts_is_marked() -> None:
    found = rows(PVCS, [pod("p1", "workspace-billing-cleo")], coderuns=[coderun("task-1", "workspace-billing-rex")])
    runs = {r.agent: r.runs for r in found}
    assert runs == {"rex": ("task-1",), "cleo": (), "tess": ()}
    assert [r.pvc for r in unnamed(found)] == ["workspace-billing-tess"]  # cleo is mounted: in use
    text = report(found)
    assert (
        "1 workspace(s) made by the webhook that no CodeRun names and no Pod mounts:\n  agents/workspace-billing-tess"
        in text
    )
    assert "`pvc created` line" in text


def test_a_later_generation_counts_as_named_through_its_workspace() -> None:
    second = workspace("workspace-billing-rex-2", "rex")
    second["metadata"]["labels"] |= generation_labels(2, "workspace-billing-rex")
    found = rows([PVCS[0], second], coderuns=[coderun("task-2", "workspace-billing-rex-2")])
    assert unnamed(found) == [] and {r.runs for r in found} == {("task-2",)}


def test_a_pvc_the_webhook_did_not_make_is_never_marked() -> None:
    assert unnamed(rows([workspace("workspace-billing-rex", "rex", ours=False)], coderuns=[])) == []


def test_without_the_coderuns_the_report_says_it_cannot_tell() -> None:
    text = report(rows(PVCS))
    assert "RUNS ?: the CodeRuns could not be listed" in text and "no CodeRun names" not in text
