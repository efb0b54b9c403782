import copy
from typing import Any

import jsonpatch
import pytest

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE, workspace_labels
from agent_workspace_webhook.rules.patch import find_volume, shape_problem, workspace_patch
from agent_workspace_webhook.testing.objects import claim, coderun, job_pod

LABELS = workspace_labels("cto", "rex", "workspace-cto-rex")


def patched(obj: dict[str, Any], volume: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    index = find_volume(obj, "workspace") if volume else None
    patch = workspace_patch(obj, LABELS, "workspace-cto-rex", index)
    return patch, jsonpatch.apply_patch(copy.deepcopy(obj), patch)


def test_pod_gets_claim_labels_and_annotation_and_keeps_the_rest() -> None:
    pod = job_pod("cto", "5dlabs-rex")
    patch, result = patched(pod)
    assert claim(result) == "workspace-cto-rex"
    assert result["metadata"]["labels"] == {**pod["metadata"]["labels"], **LABELS}
    assert result["metadata"]["annotations"] == {ANNOTATION_WORKSPACE: "workspace-cto-rex"}
    assert result["spec"]["containers"] == pod["spec"]["containers"]
    assert all(op["op"] in ("add", "replace") for op in patch)


def test_patch_is_minimal_and_idempotent() -> None:
    pod = job_pod("cto", "5dlabs-rex")
    patch, result = patched(pod)
    assert len(patch) == 5  # annotations, three labels, the claim
    again, _ = patched(result)
    assert again == []


def test_other_volume_sources_are_replaced_and_read_only_kept() -> None:
    pod = job_pod(volume={"name": "workspace", "emptyDir": {}})
    _, result = patched(pod)
    assert result["spec"]["volumes"][0] == {
        "name": "workspace",
        "persistentVolumeClaim": {"claimName": "workspace-cto-rex"},
    }
    ro = job_pod(volume={"name": "workspace", "persistentVolumeClaim": {"claimName": "x", "readOnly": True}})
    _, result = patched(ro)
    assert result["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "workspace-cto-rex", "readOnly": True}


def test_only_the_workspace_volume_changes() -> None:
    pod = job_pod()
    pod["spec"]["volumes"].insert(0, {"name": "config", "configMap": {"name": "agent-config"}})
    _, result = patched(pod)
    assert result["spec"]["volumes"][0] == {"name": "config", "configMap": {"name": "agent-config"}}
    assert claim(result) == "workspace-cto-rex"


def test_coderun_gets_labels_and_annotation_only() -> None:
    run = coderun()
    _, result = patched(run, volume=False)
    assert result["metadata"]["labels"] == LABELS
    assert result["metadata"]["annotations"][ANNOTATION_WORKSPACE] == "workspace-cto-rex"
    assert result["spec"] == run["spec"]


def test_object_without_metadata() -> None:
    _, result = patched({"kind": "CodeRun", "spec": {}}, volume=False)
    assert result["metadata"]["labels"] == LABELS


def test_long_legacy_workspace_is_recorded_in_the_annotation_only() -> None:
    pvc = "workspace-" + "s" * 63
    labels = workspace_labels("s" * 63, None, pvc)
    assert "agents.platform/workspace" not in labels
    assert all(len(v) <= 63 for v in labels.values())


def test_find_volume_and_shape_problems() -> None:
    assert find_volume({"spec": {"volumes": [{"name": "a"}, {"name": "workspace"}]}}, "workspace") == 1
    assert find_volume({"spec": {}}, "workspace") is None
    assert find_volume({"spec": {"volumes": "nope"}}, "workspace") is None
    assert shape_problem({"metadata": {"labels": {"a": 1}}}) == "metadata.labels must be an object of strings"
    assert shape_problem({"metadata": []}) == "metadata must be an object"
    assert shape_problem({"metadata": {}}) is None


PODS = [
    job_pod("cto", "5dlabs-rex"),
    {"spec": {"volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "x", "readOnly": True}}]}},
    {"spec": {"volumes": [{"name": "workspace", "persistentVolumeClaim": {}}]}},
    {"spec": {"volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "x", "bogus": 1}}]}},
    {"spec": {"volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "x"}, "emptyDir": {}}]}},
    job_pod(volume={"name": "workspace", "emptyDir": {"medium": "Memory"}}),
    {"kind": "CodeRun", "spec": {}},
    {"metadata": {"annotations": {"a/b~c": "1"}}, "spec": {"volumes": [{"name": "workspace"}]}},
    {
        "metadata": {"labels": {**LABELS, "agents.platform/agent": "cleo"}},
        "spec": {
            "volumes": [
                {"name": "x"},
                {"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace-cto-rex"}},
            ]
        },
    },
]


def expected_object(obj: dict[str, Any], index: int | None) -> dict[str, Any]:
    """What the object must look like once patched, built without our patch code: every label and
    annotation kept, ours added or overwritten; the workspace volume a PVC source holding only
    claimName (and readOnly, when that volume was already a PVC that had it); nothing else changed."""
    result = copy.deepcopy(obj)
    metadata = result.setdefault("metadata", {})
    metadata["labels"] = {**metadata.get("labels", {}), **LABELS}
    metadata["annotations"] = {**metadata.get("annotations", {}), ANNOTATION_WORKSPACE: "workspace-cto-rex"}
    if index is not None:
        old = obj["spec"]["volumes"][index]
        source: dict[str, Any] = {"claimName": "workspace-cto-rex"}
        if set(old) == {"name", "persistentVolumeClaim"} and "readOnly" in old["persistentVolumeClaim"]:
            source["readOnly"] = old["persistentVolumeClaim"]["readOnly"]
        result["spec"]["volumes"][index] = {"name": old["name"], "persistentVolumeClaim": source}
    return result


@pytest.mark.parametrize("obj", PODS)
def test_patch_reaches_the_expected_object_with_no_more_ops_than_a_diff(obj: dict[str, Any]) -> None:
    """Our written-out ops, applied by jsonpatch, give exactly the object built by hand above; and
    they are no more than jsonpatch.make_patch's diff from the object to that one."""
    index = find_volume(obj, "workspace")
    ours = workspace_patch(obj, LABELS, "workspace-cto-rex", index)
    expected = expected_object(obj, index)
    assert jsonpatch.apply_patch(copy.deepcopy(obj), ours) == expected
    assert len(ours) <= len(jsonpatch.make_patch(obj, expected).patch)
