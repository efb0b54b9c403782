"""What every admission step shares: the Context built once at start-up, the Target under
admission, Refusal (every "no"), and `within`, which runs a Kubernetes step inside the
admission's one deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from agent_workspace_webhook.admission.review import Decision
from agent_workspace_webhook.kube.store import ClusterError, WorkspaceStore
from agent_workspace_webhook.rules.agents import AgentRules, compile_rules
from agent_workspace_webhook.rules.pvc import PvcSpec
from agent_workspace_webhook.rules.selector import Selector, parse_selector
from agent_workspace_webhook.rules.workspace import NamingPolicy
from agent_workspace_webhook.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What every admission needs, built once at start-up (never per request)."""

    settings: Settings
    rules: AgentRules
    policy: NamingPolicy
    pvc_spec: PvcSpec
    scope: Selector  # the namespaces whose runs get workspaces
    store: WorkspaceStore


def make_context(settings: Settings, store: WorkspaceStore) -> Context:
    shared = {agent: group.suffix for group in settings.shared_groups for agent in group.agents}
    return Context(
        settings=settings,
        rules=compile_rules(settings.agent_table, settings.agent_pattern),
        policy=NamingPolicy(mode=settings.naming_mode, legacy_owner=settings.legacy_owner, shared=shared),
        pvc_spec=PvcSpec(settings.storage_size, settings.access_modes, settings.storage_class),
        scope=parse_selector(settings.namespace_selector),
        store=store,
    )


class Refusal(Exception):
    """An admission that ends in a denial (the request's fault) or an error (ours, or the API's)."""

    def __init__(self, code: int, message: str, decision: Decision = "denied") -> None:
        super().__init__(message)
        self.code, self.message, self.decision = code, message, decision


@dataclass
class Target:
    """The object under admission, checked enough to work on."""

    obj: Mapping[str, Any]
    namespace: str
    who: str  # "Pod agents/code-run-x7" for messages
    dry_run: bool
    budget: float  # seconds for all the Kubernetes calls of this admission
    deadline: float  # event-loop time by which they must be done
    doing: str = "starting"  # the Kubernetes step under way, named if the deadline passes


async def within(target: Target, doing: str, call: Awaitable[T]) -> T:
    """Await one step that talks to Kubernetes. The admission's one deadline (admit._route) covers
    every step; this names the step for its message and turns a ClusterError into a Refusal."""
    target.doing = doing
    try:
        return await call
    except ClusterError as exc:
        raise Refusal(exc.code, f"{target.who}: {exc}", "error") from None


def deadline_passed(target: Target) -> Refusal:
    return Refusal(
        504,
        f"{target.who}: the Kubernetes API did not answer within {target.budget}s while {target.doing}; check the "
        "API server's health and WEBHOOK_KUBE_DEADLINE_SECONDS",
        "error",
    )
