"""The platform controller's per-run workspace cleanup (pure).

When a CodeRun is deleted, the controller (5dlabs/cto, resources.rs cleanup_workspace_subdir)
creates a Job that removes the run's directory, `rm -rf /workspace/runs/{name}-{uid8}`, from the
PVC it computes for the run, mounted as `workspace`. Its Pod template has no labels (so the Pod
webhook never sees it); the Job has these. The run worked in the workspace the webhook gave it,
which the CodeRun's annotation names: the cleanup must go there, or the runs' directories pile up
in the agents' workspaces until they are full.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE
from agent_workspace_webhook.rules.names import MAX_LABEL, is_object_name
from agent_workspace_webhook.rules.workspace import is_workspace_name

# The controller's cleanup labels (crates/controller/src/tasks/cleanup.rs).
LABEL_RUN_KIND = "cleanup.cto.dev/run-kind"
LABEL_RUN = "cleanup.cto.dev/run"
WORKSPACE_CLEANUP = "workspace-cleanup"


class CleanupRun(msgspec.Struct, frozen=True):
    """The CodeRun a cleanup Job is for: its name, and the first 8 characters of its uid when the
    Job's command names its directory (`runs/{name}-{uid8}`)."""

    name: str
    uid8: str | None = None


# The run's directory in the cleanup command: a CodeRun name, then the uid's first 8 (or "nouid").
_RUN_DIR = re.compile(r"/workspace/runs/([a-z0-9][-a-z0-9.]{0,252})-([0-9a-f]{8}|nouid)(?![-a-z0-9.])")
# Bounds on what is searched: a forged review's template may hold anything.
MAX_CONTAINERS, MAX_ARGUMENTS, MAX_ARGUMENT = 4, 8, 4096


def cleanup_run(job: Mapping[str, Any]) -> CleanupRun | None:
    """The run a workspace-cleanup Job cleans up after; None for any other Job, and for a label
    that is no object's name (a forged review's: never looked up, never echoed). The controller
    cuts the label to 63 characters, so a longer run's full name comes from the command's run
    directory, when that agrees with the label."""
    metadata = job.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if not isinstance(labels, Mapping) or labels.get(LABEL_RUN_KIND) != WORKSPACE_CLEANUP:
        return None
    label = labels.get(LABEL_RUN)
    if not isinstance(label, str) or len(label) > MAX_LABEL or not is_object_name(label):
        return None
    for name, uid8 in _run_dirs(job_template(job)):
        if label_of(name) == label:
            return CleanupRun(name, None if uid8 == "nouid" else uid8)
    return CleanupRun(label)


def label_of(name: str) -> str:
    """A CodeRun name as the controller writes it into the cleanup label (sanitize_label_value:
    a CodeRun name keeps its characters; cut to 63, ending on a letter or digit)."""
    return name[:MAX_LABEL].rstrip("-.")


def _run_dirs(template: Mapping[str, Any] | None) -> Iterable[tuple[str, str]]:
    spec = template.get("spec") if isinstance(template, Mapping) else None
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    if not isinstance(containers, list):
        return
    for container in containers[:MAX_CONTAINERS]:
        if not isinstance(container, Mapping):
            continue
        for key in ("command", "args"):
            arguments = container.get(key)
            for argument in arguments[:MAX_ARGUMENTS] if isinstance(arguments, list) else ():
                if isinstance(argument, str):
                    for found in _RUN_DIR.finditer(argument[:MAX_ARGUMENT]):
                        yield found.group(1), found.group(2)


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
