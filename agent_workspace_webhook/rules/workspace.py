"""Service validation, PVC naming, naming modes and shared groups (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from agent_workspace_webhook.rules.failure import AdmissionFailure
from agent_workspace_webhook.rules.names import DNS1123_LABEL, MAX_LABEL, is_dns1123_label, quote

PREFIX = "workspace-"
NamingMode = Literal["legacy", "dual", "agent"]


class NamingError(AdmissionFailure, ValueError):
    """The run's facts do not give a valid workspace; the message names the field."""


@dataclass(frozen=True)
class NamingPolicy:
    mode: NamingMode = "dual"
    legacy_owner: str | None = None
    # agent -> shared suffix; "" means the service's shared workspace-{service}
    shared: Mapping[str, str] = field(default_factory=dict)


class Workspace(msgspec.Struct, frozen=True):
    """Which PVC a run mounts, and why."""

    pvc: str
    service: str
    agent: str | None
    # Use this PVC instead of `pvc` if it already exists (the legacy owner keeps its context).
    prefer_existing: str | None = None
    warnings: tuple[str, ...] = ()


def validate_service(service: str, field_path: str) -> str:
    if not is_dns1123_label(service):
        raise NamingError(
            f"{field_path} is {quote(service)}, which is not a DNS-1123 label "
            f"({DNS1123_LABEL}, at most {MAX_LABEL} characters); set it to the service name, "
            "for example 'cto'"
        )
    return service


def is_workspace_name(name: str) -> bool:
    """Whether a PVC's name is in the workspaces' naming, ``workspace-*``: every workspace the
    platform's controller computes for a run, and every one the webhook makes. Only such a claim
    is one the webhook may point elsewhere; any other is a PVC the platform chose on purpose, as
    ``healer-workspace``, which its healer runs share with the healer's monitor Deployment: moving
    it would cut them apart."""
    return name.startswith(PREFIX)


def is_healer_run(spec: Mapping[str, Any]) -> bool:
    """The controller's own test for a healer (remediation) run, whose workspace is the shared
    ``healer-workspace`` (resources.rs): ``spec.cliConfig.settings.template`` starts with
    ``healer/``, or ``spec.service`` contains ``healer`` in any case."""
    service = spec.get("service")
    if isinstance(service, str) and "healer" in service.lower():
        return True
    cli = spec.get("cliConfig")
    settings = cli.get("settings") if isinstance(cli, Mapping) else None
    template = settings.get("template") if isinstance(settings, Mapping) else None
    return isinstance(template, str) and template.startswith("healer/")


def legacy_pvc_name(service: str) -> str:
    """Today's shared workspace, named exactly as the platform's controller names it."""
    return PREFIX + service


def pvc_name(service: str, agent: str) -> str:
    """``workspace-{service}-{agent}``, at most 63 characters.

    When too long, the service part is shortened and a hash of the full service name added,
    so two services never share a workspace; an agent name too long even for that is
    shortened too, with a hash of both.
    """
    name = f"{PREFIX}{service}-{agent}"
    if len(name) <= MAX_LABEL:
        return name
    digest = _digest(service, 8)
    room = MAX_LABEL - len(PREFIX) - len(f"-{digest}-{agent}")
    if room >= 1:
        return f"{PREFIX}{service[:room].rstrip('-')}-{digest}-{agent}"
    digest = _digest(f"{service}\0{agent}", 10)
    head = f"{service}-{agent}"[: MAX_LABEL - len(PREFIX) - len(digest) - 1].rstrip("-")
    return f"{PREFIX}{head}-{digest}"


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def choose_workspace(service: str, agent: str | None, agent_problem: str | None, policy: NamingPolicy) -> Workspace:
    """The workspace for a validated service and an agent (or the reason there is none).

    Raises NamingError where the mode denies: in ``agent`` mode an agent is required.
    """
    legacy = legacy_pvc_name(service)
    if policy.mode == "legacy":
        return Workspace(pvc=legacy, service=service, agent=agent)
    if agent is None:
        problem = agent_problem or "no GitHub App given"
        if policy.mode == "agent":
            raise NamingError(problem)
        return Workspace(
            pvc=legacy,
            service=service,
            agent=None,
            warnings=(f"{problem}; using the shared workspace {legacy} (naming_mode dual)",),
        )
    suffix = policy.shared.get(agent, agent)  # an agent in no group is a group of its own
    pvc = pvc_name(service, suffix) if suffix else legacy
    prefer = legacy if policy.mode == "dual" and agent == policy.legacy_owner and pvc != legacy else None
    return Workspace(pvc=pvc, service=service, agent=agent, prefer_existing=prefer)
