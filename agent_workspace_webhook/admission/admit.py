"""The one admission flow, shared by /mutate and the `review` command.

request -> the Pod's or the CodeRun's own path (facts) -> provision (decide the workspace, ensure
its PVC) -> patch -> Response, plus a Record of what happened for the log line and the metrics.
Every "no" is raised as a Refusal and turned into a Response in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from agent_workspace_webhook.admission.review import AdmissionRequest, Decision, Response, allowed, denied, errored
from agent_workspace_webhook.admission.review import patched as patched_response
from agent_workspace_webhook.kube.store import ClusterError, PvcAction, WorkspaceStore
from agent_workspace_webhook.rules.agents import AgentError, AgentRules, compile_rules, extract_agent
from agent_workspace_webhook.rules.facts import FactsError, RunFacts, coderun_facts, pod_facts
from agent_workspace_webhook.rules.labels import workspace_labels
from agent_workspace_webhook.rules.patch import find_volume, shape_problem, workspace_patch
from agent_workspace_webhook.rules.pvc import PvcSpec, pvc_manifest
from agent_workspace_webhook.rules.selector import Selector, parse_selector
from agent_workspace_webhook.rules.workspace import (
    NamingError,
    NamingPolicy,
    Workspace,
    choose_workspace,
    validate_service,
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


@dataclass(frozen=True)
class Record:
    """What the log line and the metrics say about one admission (never sent to the caller)."""

    uid: str
    kind: str
    operation: str
    namespace: str | None
    name: str | None
    dry_run: bool
    decision: Decision
    message: str | None = None
    service: str | None = None
    agent: str | None = None
    pvc: str | None = None
    pvc_action: PvcAction | None = None

    def log_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Provisioned:
    """The outcome of the shared provisioning step: which PVC the run mounts, and what was done."""

    service: str
    agent: str | None
    pvc: str
    action: PvcAction
    warnings: tuple[str, ...]


class Refusal(Exception):
    """An admission that ends in a denial (the request's fault) or an error (ours, or the API's)."""

    def __init__(self, code: int, message: str, decision: Decision = "denied") -> None:
        super().__init__(message)
        self.code, self.message, self.decision = code, message, decision


@dataclass(frozen=True)
class Target:
    """The object under admission, checked enough to work on."""

    obj: Mapping[str, Any]
    namespace: str
    who: str  # "Pod agents/code-run-x7" for messages
    dry_run: bool
    budget: float  # seconds for all the Kubernetes calls of this admission
    deadline: float  # event-loop time by which they must be done


async def admit(request: AdmissionRequest, ctx: Context) -> tuple[Response, Record]:
    name = request.name or _object_name(request.object)
    namespace = request.namespace
    provisioned: Provisioned | None = None
    try:
        target = _target(request, name, ctx)
        namespace = target.namespace
        response, provisioned = await _route(request, target, ctx)
    except Refusal as refusal:
        make = errored if refusal.decision == "error" else denied
        response = make(request.uid, refusal.code, refusal.message)
    record = Record(
        uid=request.uid,
        kind=request.kind.kind,
        operation=request.operation,
        namespace=namespace,
        name=name,
        dry_run=request.dry_run,
        decision=response.decision,
        message=response.message,
        service=provisioned.service if provisioned else None,
        agent=provisioned.agent if provisioned else None,
        pvc=provisioned.pvc if provisioned else None,
        pvc_action=provisioned.action if provisioned else None,
    )
    return response, record


async def _route(request: AdmissionRequest, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    """Each kind its own path; bad facts in the object are the request's fault (400)."""
    try:
        if request.operation != "CREATE":
            return allowed(request.uid, f"operation {request.operation} is left alone"), None
        await _check_scope(target, ctx)
        if _is_pod(request):
            return await _admit_pod(request.uid, target, ctx)
        return await _admit_coderun(request.uid, target, ctx)
    except (FactsError, NamingError) as exc:
        raise Refusal(400, f"{target.who}: {exc}") from None


async def _check_scope(target: Target, ctx: Context) -> None:
    """Only namespaces in scope get workspaces, whoever sends the review (a forged one included)."""
    namespace, selector = target.namespace, ctx.scope.text
    if namespace in (ctx.settings.own_namespace, "kube-system"):
        raise Refusal(
            403, f"{target.who}: namespace {namespace} never gets workspaces (the webhook's own, or kube-system)"
        )
    in_scope = await _within(
        target, f"reading Namespace {namespace}", ctx.store.namespace_in_scope(namespace, ctx.scope)
    )
    if in_scope is None:
        raise Refusal(404, f"{target.who}: namespace {namespace} does not exist")
    if not in_scope:
        raise Refusal(
            403,
            f"{target.who}: namespace {namespace} is not in the webhook's scope: its labels do not match "
            f"WEBHOOK_NAMESPACE_SELECTOR {selector!r}; label the namespace to match it if its runs should get "
            "workspaces",
        )


def _is_pod(request: AdmissionRequest) -> bool:
    kind = request.kind
    return (kind.group, kind.version, kind.kind) == ("", "v1", "Pod")


def _target(request: AdmissionRequest, name: str | None, ctx: Context) -> Target:
    """The object, once the kind is one we handle and the object is one we can patch."""
    kind, settings = request.kind, ctx.settings
    coderun = (settings.coderun_group, settings.coderun_version, "CodeRun")
    if not _is_pod(request) and (kind.group, kind.version, kind.kind) != coderun:
        raise Refusal(
            400,
            f"kind {kind} is not handled by this webhook (it admits v1 Pod and {settings.coderun_group}/"
            f"{settings.coderun_version} CodeRun); fix the rules of its MutatingWebhookConfiguration",
        )
    obj = request.object
    if not isinstance(obj, dict):
        raise Refusal(400, f"request.object must be a {kind.kind} object, not {type(obj).__name__}")
    problem = shape_problem(obj)
    if problem is not None:
        raise Refusal(400, f"{kind.kind} {name or '(unnamed)'}: {problem}")
    namespace = request.namespace or obj.get("metadata", {}).get("namespace")
    if not namespace or not isinstance(namespace, str):
        raise Refusal(
            400, f"{kind.kind} {name or '(unnamed)'}: request.namespace is empty; {kind.kind}s are namespaced"
        )
    budget = settings.kube_deadline_seconds
    who = f"{kind.kind} {namespace}/{name or '(generated name)'}"
    return Target(obj, namespace, who, request.dry_run, budget, asyncio.get_running_loop().time() + budget)


async def _admit_pod(uid: str, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    """An agent Pod: facts from its labels or its owners; its workspace volume is pointed at the PVC."""
    s = ctx.settings
    index = find_volume(target.obj, s.workspace_volume)
    if index is None:
        return allowed(uid, f"no volume named {s.workspace_volume!r}"), None
    lookup = ctx.store.get_owner
    facts = await _within(
        target,
        f"looking up the CodeRun that owns {target.who}",
        pod_facts(target.obj, target.namespace, ctx.rules, s.pod_service_label, s.pod_app_label, lookup),
    )
    if facts is None:
        return allowed(uid, "no agent labels and no owning CodeRun: not an agent pod"), None
    done = await _provision(facts, target, ctx)
    return patched_response(uid, workspace_patch(target.obj, _labels(done), done.pvc, index), done.warnings), done


async def _admit_coderun(uid: str, target: Target, ctx: Context) -> tuple[Response, Provisioned]:
    """A CodeRun: facts from its spec; it gets the labels and annotation (it has no volume)."""
    done = await _provision(coderun_facts(target.obj), target, ctx)
    return patched_response(uid, workspace_patch(target.obj, _labels(done), done.pvc, None), done.warnings), done


async def _provision(facts: RunFacts, target: Target, ctx: Context) -> Provisioned:
    """The step both kinds share: which workspace the facts give, and make sure its PVC exists."""
    workspace = decide(facts, ctx)
    warnings = [*facts.warnings, *workspace.warnings]
    namespace, prefer = target.namespace, workspace.prefer_existing
    if prefer is not None:
        checking = f"checking PersistentVolumeClaim {namespace}/{prefer}"
        if await _within(target, checking, ctx.store.pvc_exists(namespace, prefer)):
            return Provisioned(workspace.service, workspace.agent, prefer, "exists", tuple(warnings))
    labels = workspace_labels(workspace.service, workspace.agent, workspace.pvc)
    manifest = pvc_manifest(workspace.pvc, namespace, labels, ctx.pvc_spec)
    ensuring = f"ensuring PersistentVolumeClaim {namespace}/{workspace.pvc}"
    action = await _within(target, ensuring, ctx.store.ensure_pvc(manifest, dry_run=target.dry_run))
    if action == "would-create":
        warnings.append(
            f"dry run: PersistentVolumeClaim {namespace}/{workspace.pvc} does not exist and would be created"
        )
    return Provisioned(workspace.service, workspace.agent, workspace.pvc, action, tuple(warnings))


def decide(facts: RunFacts, ctx: Context) -> Workspace:
    """Which workspace these facts give; NamingError where the rules deny."""
    if facts.service is None:
        raise NamingError(f"{facts.service_field} is missing; set it to the service name, for example 'cto'")
    service = validate_service(facts.service, facts.service_field)
    agent: str | None = None
    problem: str | None = None
    if facts.app is None:
        problem = f"{facts.app_field} is missing; set it to the run's GitHub App, for example '5DLabs-Rex'"
    else:
        try:
            agent = extract_agent(facts.app, ctx.rules)
        except AgentError as exc:
            problem = (
                f"{facts.app_field}: {exc}; set it to one of the GitHub Apps in agent_table, for example '5DLabs-Rex'"
            )
    return choose_workspace(service, agent, problem, ctx.policy)


async def _within(target: Target, doing: str, call: Awaitable[T]) -> T:
    """Await one step that talks to Kubernetes, inside the admission's shared deadline."""
    try:
        async with asyncio.timeout_at(target.deadline):
            return await call
    except ClusterError as exc:
        raise Refusal(exc.code, f"{target.who}: {exc}", "error") from None
    except TimeoutError:
        raise Refusal(
            504,
            f"{target.who}: the Kubernetes API did not answer within {target.budget}s while {doing}; check the API "
            "server's health and WEBHOOK_KUBE_DEADLINE_SECONDS",
            "error",
        ) from None


def _labels(done: Provisioned) -> dict[str, str]:
    return workspace_labels(done.service, done.agent, done.pvc)


def _object_name(obj: object) -> str | None:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None
    name = metadata.get("name") or metadata.get("generateName")
    return str(name) if name else None
