"""What every admission step shares: the Context built once at start-up, `decide` (the facts'
workspace, by the rules the Context holds), the Target under admission, the failures a step
raises (Denial, DeadlinePassed; admit.answer_failure turns them into answers), and `within`,
which runs a Kubernetes step inside the admission's one deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from agent_workspace_webhook.kube.store import ClusterError, WorkspaceStore
from agent_workspace_webhook.rules.agents import AgentRules, compile_rules
from agent_workspace_webhook.rules.budget import LookupBudget
from agent_workspace_webhook.rules.decide import decide_workspace
from agent_workspace_webhook.rules.facts import OwnerKind, RunFacts
from agent_workspace_webhook.rules.failure import AdmissionFailure
from agent_workspace_webhook.rules.pvc import PvcSpec
from agent_workspace_webhook.rules.selector import Selector, parse_selector
from agent_workspace_webhook.rules.workspace import (
    NamingPolicy,
    Workspace,
)
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
    # The agents a new workspace may be made for: the agent table's and the allow-list.
    known_agents: frozenset[str] = frozenset()
    # decide()'s answers by facts (the rules are fixed at start-up, and a workspace's runs repeat
    # the same facts): bounded, since the facts come from requests.
    decided: dict[RunFacts, Workspace] = field(default_factory=dict)
    # What cleanup Jobs (which anyone may forge a review of) make the webhook read.
    cleanup_lookups: LookupBudget = field(default_factory=LookupBudget)


DECIDED_MAX = 4096


def naming_rules(settings: Settings) -> tuple[AgentRules, NamingPolicy]:
    """What rules/decide.py decides a workspace by, from the settings (the CLI's commands use it
    too: they need no Context for a rule)."""
    shared = {agent: group.suffix for group in settings.shared_groups for agent in group.agents}
    rules = compile_rules(settings.agent_table, settings.agent_pattern)
    return rules, NamingPolicy(mode=settings.naming_mode, legacy_owner=settings.legacy_owner, shared=shared)


def make_context(settings: Settings, store: WorkspaceStore) -> Context:
    rules, policy = naming_rules(settings)
    return Context(
        settings=settings,
        rules=rules,
        policy=policy,
        pvc_spec=PvcSpec(settings.storage_size, settings.access_modes, settings.storage_class),
        scope=parse_selector(settings.namespace_selector),
        store=store,
        known_agents=frozenset([*settings.agent_table.values(), *settings.agent_allowlist]),
    )


def decide(facts: RunFacts, ctx: Context) -> Workspace:
    """Which workspace these facts give; NamingError where the rules deny."""
    known = ctx.decided.get(facts)
    if known is None:
        known = decide_workspace(facts, ctx.rules, ctx.policy)
        if len(ctx.decided) >= DECIDED_MAX:
            ctx.decided.clear()
        ctx.decided[facts] = known
    return known


class Denial(AdmissionFailure):
    """An admission step's check failed: the request's fault, denied with this code and message
    (admit.answer_failure names the object in front of it)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message, code)


class DeadlinePassed(ClusterError):
    """The Kubernetes API did not answer within the admission's budget; names the step under way."""

    def __init__(self, step: str, budget: float) -> None:
        super().__init__(
            f"the Kubernetes API did not answer within {budget}s while {step}; check the API server's health and "
            "WEBHOOK_KUBE_DEADLINE_SECONDS",
            504,
        )
        self.step = step


class Target(msgspec.Struct, frozen=True):
    """The object under admission, checked enough to work on."""

    obj: Mapping[str, Any]
    namespace: str
    who: str  # "Pod agents/code-run-x7" for messages
    dry_run: bool
    budget: float  # seconds for all the Kubernetes calls of this admission
    # When they must all be done by (time.monotonic()): now + budget. Each step that waits is
    # bounded by it (within); a hit, answered from the caches at once, waits for nothing, arms no
    # timer and does not look up the event loop (asyncio's lookup is a getpid() system call).
    expires: float
    # The owners read so far ((kind, namespace, name) -> object or None): the facts, the fresh
    # check and provenance each walk the same chain, and pay for each GET once.
    owners: dict[tuple[OwnerKind, str, str], Mapping[str, Any] | None] = msgspec.field(default_factory=dict)


async def get_owner(
    target: Target, ctx: Context, kind: OwnerKind, namespace: str, name: str
) -> Mapping[str, Any] | None:
    """The owner, read from the API (or the store's cache) at most once per admission."""
    key = (kind, namespace, name)
    if key not in target.owners:
        target.owners[key] = await ctx.store.get_owner(kind, namespace, name)
    return target.owners[key]


async def within(target: Target, step: str, call: Awaitable[T]) -> T:
    """Await one step that talks to Kubernetes, before the admission's deadline. When the deadline
    cuts it off, the step is named in the DeadlinePassed raised instead; any other cancellation
    (a shutdown) goes on up."""
    scope = asyncio.timeout(max(0.0, target.expires - time.monotonic()))
    try:
        async with scope:
            return await call
    except TimeoutError:
        if not scope.expired():
            raise
        raise DeadlinePassed(step, target.budget) from None
