"""The labels and annotation that record a run's workspace, on the run and on its PVC (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from agent_workspace_webhook.rules.names import MAX_LABEL

LABEL_SERVICE = "agents.platform/service"
LABEL_AGENT = "agents.platform/agent"
LABEL_WORKSPACE = "agents.platform/workspace"
ANNOTATION_WORKSPACE = "agents.platform/workspace"
# On a workspace created as a clone: the PVC it was cloned from.
ANNOTATION_CLONED_FROM = "agents.platform/cloned-from"
# On every workspace PVC the webhook creates: its generation (rules/generations.py), and the name
# of its generation 1, which every generation of one workspace shares (the cache groups by it).
LABEL_GENERATION = "agents.platform/generation"
LABEL_GENERATION_OF = "agents.platform/generation-of"
MAX_GENERATION = 9999  # a bound for a label anyone may have written by hand
# On a generation made for a fresh run: the uid of the CodeRun it was made for, so that a retried
# or reinvoked admission, or another replica, finds it instead of making another.
ANNOTATION_FRESH_FOR = "agents.platform/fresh-for"
# On every generation the webhook makes: what it was made from (empty, clone of X, fresh for a
# CodeRun, restore of generation N).
ANNOTATION_MADE_FROM = "agents.platform/made-from"
# On the PVCs the webhook creates, beside the labels above.
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = {MANAGED_BY_KEY: "agent-workspace-webhook"}
COMPONENT = {"app.kubernetes.io/component": "agent-workspace"}


def workspace_labels(service: str, agent: str | None, pvc: str) -> dict[str, str]:
    labels = {LABEL_SERVICE: service}
    if agent is not None:
        labels[LABEL_AGENT] = agent
    if len(pvc) <= MAX_LABEL:  # only a long legacy name can exceed it; the annotation still has it
        labels[LABEL_WORKSPACE] = pvc
    return labels


def generation_of(labels: Mapping[str, str] | None) -> int:
    """A PVC's generation from its label; 1 when it has none (made before generations, or by others)."""
    text = (labels or {}).get(LABEL_GENERATION, "1")
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_GENERATION else 1


def generation_labels(number: int, base: str) -> dict[str, str]:
    return {LABEL_GENERATION: str(number), LABEL_GENERATION_OF: base}


def plain_pvc_labels(service: str, agent: str | None) -> dict[str, str]:
    """The plain labels the platform's tooling selects workspace PVCs on (its own design's)."""
    labels = {"service": service, "component": "agent-workspace"}
    if agent is not None:
        labels["agent"] = agent
    return labels
