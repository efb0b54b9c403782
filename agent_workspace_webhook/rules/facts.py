"""The run's service and GitHub App: from a CodeRun's spec or a Pod's labels; and an object's
controller reference, which the walk of a Pod's owners follows (admission/owners.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from agent_workspace_webhook.rules.agents import AgentRules, is_ambiguous_label
from agent_workspace_webhook.rules.failure import AdmissionFailure
from agent_workspace_webhook.rules.patch import MAPPING

OwnerKind = Literal["Job", "CodeRun"]


class FactsError(AdmissionFailure, ValueError):
    """A field that should hold a fact has the wrong type; the message names it (400)."""


class RunFacts(msgspec.Struct, frozen=True):
    service: str | None
    app: str | None
    service_field: str
    app_field: str
    warnings: tuple[str, ...] = ()
    # A bare agent name (the CodeRun's spec.implementationAgent), in place of an app; named by app_field.
    agent: str | None = None


def _string(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise FactsError(f"{path} must be a string, not {type(value).__name__}")


def _mapping(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if isinstance(value, MAPPING):
        return value
    raise FactsError(f"{path} must be an object, not {type(value).__name__}")


def coderun_facts(coderun: Mapping[str, Any], where: str = "") -> RunFacts:
    """Facts from a CodeRun: spec.service, and the agent from spec.githubApp, else
    spec.implementationAgent (today's CRD), else spec.githubUser (deprecated)."""
    spec = _mapping(coderun, "spec", f"{where}spec")
    service = _string(spec, "service", f"{where}spec.service")
    service_field = f"{where}spec.service"
    app = _string(spec, "githubApp", f"{where}spec.githubApp")
    if app:
        return RunFacts(service, app, service_field, f"{where}spec.githubApp")
    agent = _string(spec, "implementationAgent", f"{where}spec.implementationAgent")
    if agent:
        return RunFacts(service, None, service_field, f"{where}spec.implementationAgent", agent=agent)
    user = _string(spec, "githubUser", f"{where}spec.githubUser")
    if user:
        warning = f"{where}spec.githubUser is deprecated; set spec.githubApp instead"
        return RunFacts(service, user, service_field, f"{where}spec.githubUser", warnings=(warning,))
    # Nothing usable: the error names spec.githubApp, the field to set (an empty githubApp was
    # once reported as a missing githubUser).
    return RunFacts(service, None, service_field, f"{where}spec.githubApp")


def label_facts(obj: Mapping[str, Any], service_key: str, app_key: str) -> RunFacts | None:
    """Facts from the labels the platform's controller puts on its job pods, if any."""
    labels = _mapping(_mapping(obj, "metadata", "metadata"), "labels", "metadata.labels")
    service = _string(labels, service_key, f"metadata.labels[{service_key!r}]")
    app = _string(labels, app_key, f"metadata.labels[{app_key!r}]")
    if service is None and app is None:
        return None
    return RunFacts(service, app, f"metadata.labels[{service_key!r}]", f"metadata.labels[{app_key!r}]")


def labels_are_conclusive(facts: RunFacts | None, rules: AgentRules) -> bool:
    """The Pod's label facts are complete and unambiguous: no owner lookup is needed."""
    return (
        facts is not None
        and facts.service is not None
        and facts.app is not None
        and (not is_ambiguous_label(facts.app, rules))
    )


class OwnerRef(msgspec.Struct, frozen=True):
    """An object's controller ownerReference."""

    kind: str
    name: str
    uid: str | None


def controller_ref(obj: Mapping[str, Any], where: str = "") -> OwnerRef | None:
    """The one ownerReference with `controller: true`, or None. Only the controller is followed,
    so a Pod costs at most two GETs (its Job, then the Job's CodeRun) however many
    ownerReferences a caller puts on it."""
    metadata = _mapping(obj, "metadata", f"{where}metadata")
    refs = metadata.get("ownerReferences")
    if refs is None:
        return None
    if not isinstance(refs, list):
        raise FactsError(f"{where}metadata.ownerReferences must be a list, not {type(refs).__name__}")
    controllers = [ref for ref in refs if isinstance(ref, Mapping) and ref.get("controller") is True]
    if len(controllers) > 1:
        # The API server refuses such an object; only a forged review can carry one.
        raise FactsError(
            f"{where}metadata.ownerReferences has {len(controllers)} entries with controller: true; "
            "Kubernetes allows at most one"
        )
    if not controllers:
        return None
    kind, name, uid = (controllers[0].get(key) for key in ("kind", "name", "uid"))
    if not isinstance(kind, str) or not isinstance(name, str):
        raise FactsError(f"{where}metadata.ownerReferences: the controller's kind and name must be strings")
    return OwnerRef(kind, name, uid if isinstance(uid, str) else None)
