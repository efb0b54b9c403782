"""The platform controller's per-run workspace cleanup (pure).

When a CodeRun is deleted, the controller (5dlabs/cto, resources.rs cleanup_workspace_subdir)
creates a Job that removes the run's directory, `rm -rf /workspace/runs/{name}-{uid8}`, from the
PVC it computes for the run, mounted as `workspace`. Its Pod template has no labels (so the Pod
webhook never sees it); the Job has these. The run worked in the workspace the webhook gave it,
which the CodeRun's annotation names: the cleanup must go there, or the runs' directories pile up
in the agents' workspaces until they are full.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE
from agent_workspace_webhook.rules.names import is_object_name
from agent_workspace_webhook.rules.workspace import is_workspace_name

# The controller's cleanup labels (crates/controller/src/tasks/cleanup.rs).
LABEL_RUN_KIND = "cleanup.cto.dev/run-kind"
LABEL_RUN = "cleanup.cto.dev/run"
WORKSPACE_CLEANUP = "workspace-cleanup"


def cleanup_run(job: Mapping[str, Any]) -> str | None:
    """The name of the CodeRun a workspace-cleanup Job cleans up after; None for any other Job,
    and for a label that is no object's name (a forged review's: never looked up, never echoed)."""
    metadata = job.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if not isinstance(labels, Mapping) or labels.get(LABEL_RUN_KIND) != WORKSPACE_CLEANUP:
        return None
    run = labels.get(LABEL_RUN)
    return run if isinstance(run, str) and is_object_name(run) else None


def job_template(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Job's Pod template, when it is an object whose spec is one (else the API server's
    validation refuses the Job: nothing to point anywhere)."""
    spec = job.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        return None
    return template


def recorded_workspace(coderun: Mapping[str, Any]) -> str | None:
    """The workspace the webhook recorded on the CodeRun at its admission (its annotation), when
    that is a workspace name at all; None for a run admitted without the webhook."""
    metadata = coderun.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    pvc = annotations.get(ANNOTATION_WORKSPACE) if isinstance(annotations, Mapping) else None
    if isinstance(pvc, str) and is_object_name(pvc) and is_workspace_name(pvc):
        return pvc
    return None


def under_template(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Pod's patch ops, rooted at a Job's Pod template instead."""
    return [{**op, "path": "/spec/template" + op["path"]} for op in ops]
