"""The labels and annotation that record a run's workspace, on the run and on its PVC (pure)."""

from __future__ import annotations

from agent_workspace_webhook.rules.names import MAX_LABEL

LABEL_SERVICE = "agents.platform/service"
LABEL_AGENT = "agents.platform/agent"
LABEL_WORKSPACE = "agents.platform/workspace"
ANNOTATION_WORKSPACE = "agents.platform/workspace"
# On a workspace created as a clone: the PVC it was cloned from.
ANNOTATION_CLONED_FROM = "agents.platform/cloned-from"
# On the PVCs the webhook creates, beside the labels above.
MANAGED_BY = {"app.kubernetes.io/managed-by": "agent-workspace-webhook"}
COMPONENT = {"app.kubernetes.io/component": "agent-workspace"}


def workspace_labels(service: str, agent: str | None, pvc: str) -> dict[str, str]:
    labels = {LABEL_SERVICE: service}
    if agent is not None:
        labels[LABEL_AGENT] = agent
    if len(pvc) <= MAX_LABEL:  # only a long legacy name can exceed it; the annotation still has it
        labels[LABEL_WORKSPACE] = pvc
    return labels


def plain_pvc_labels(service: str, agent: str | None) -> dict[str, str]:
    """The plain labels the platform's tooling selects workspace PVCs on (its own design's)."""
    labels = {"service": service, "component": "agent-workspace"}
    if agent is not None:
        labels["agent"] = agent
    return labels
