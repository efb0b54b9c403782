"""The one admission flow, shared by /mutate and the `review` command:
request -> facts -> decision -> side effect (PVC) -> patch -> answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook.agents import AgentError, AgentRules, compile_rules, extract_agent
from webhook.cluster import ClusterError, Ensured, WorkspaceStore, pvc_manifest
from webhook.facts import FactsError, RunFacts, coderun_facts, pod_facts
from webhook.mutation import find_volume, shape_problem, workspace_labels, workspace_patch
from webhook.naming import NamingError, NamingPolicy, Workspace, choose_workspace, validate_service
from webhook.review import AdmissionRequest, answer
from webhook.settings import Settings

Decision = Literal["allowed", "patched", "denied", "error"]


@dataclass(frozen=True)
class Context:
    """What every admission needs, built once at start-up (never per request)."""

    settings: Settings
    rules: AgentRules
    policy: NamingPolicy
    store: WorkspaceStore


def make_context(settings: Settings, store: WorkspaceStore) -> Context:
    shared = {agent: group.suffix for group in settings.shared_groups for agent in group.agents}
    return Context(
        settings=settings,
        rules=compile_rules(settings.agent_table, settings.agent_pattern),
        policy=NamingPolicy(mode=settings.naming_mode, legacy_owner=settings.legacy_owner, shared=shared),
        store=store,
    )


@dataclass
class Outcome:
    """The answer plus what the log line and metrics record about it."""

    uid: str
    kind: str
    operation: str
    namespace: str | None
    name: str | None
    dry_run: bool
    decision: Decision = "allowed"
    answer: dict[str, Any] = field(default_factory=dict)
    service: str | None = None
    agent: str | None = None
    pvc: str | None = None
    ensured: Ensured | None = None
    message: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def log_fields(self) -> dict[str, Any]:
        fields = {
            "uid": self.uid,
            "kind": self.kind,
            "operation": self.operation,
            "namespace": self.namespace,
            "name": self.name,
            "dry_run": self.dry_run,
            "decision": self.decision,
            "service": self.service,
            "agent": self.agent,
            "pvc": self.pvc,
            "pvc_action": self.ensured,
            "message": self.message,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
        }
        return {k: v for k, v in fields.items() if v is not None}


def _object_name(obj: object) -> str | None:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None
    name = metadata.get("name") or metadata.get("generateName")
    return str(name) if name else None


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


async def admit(request: AdmissionRequest, ctx: Context) -> Outcome:
    obj = request.object
    out = Outcome(
        uid=request.uid,
        kind=request.kind.kind,
        operation=request.operation,
        namespace=request.namespace,
        name=request.name or _object_name(obj),
        dry_run=request.dry_run,
    )
    settings = ctx.settings

    def allow(message: str | None = None) -> Outcome:
        out.decision, out.message = "allowed", message
        out.answer = answer(request.uid, allowed=True)
        return out

    def deny(code: int, message: str, decision: Decision = "denied") -> Outcome:
        out.decision, out.message = decision, message
        out.answer = answer(request.uid, allowed=False, code=code, message=message)
        return out

    kind = request.kind
    is_pod = kind.group == "" and kind.version == "v1" and kind.kind == "Pod"
    is_coderun = (kind.group, kind.version, kind.kind) == (settings.coderun_group, settings.coderun_version, "CodeRun")
    if not (is_pod or is_coderun):
        return deny(
            400,
            f"kind {kind} is not handled by this webhook (it admits v1 Pod and "
            f"{settings.coderun_group}/{settings.coderun_version} CodeRun); fix the rules of its "
            "MutatingWebhookConfiguration",
        )
    if request.operation != "CREATE":
        return allow(f"operation {request.operation} is left alone")
    if not isinstance(obj, dict):
        return deny(400, f"request.object must be a {kind.kind} object, not {type(obj).__name__}")
    problem = shape_problem(obj)
    if problem is not None:
        return deny(400, f"{kind.kind} {out.name or '(unnamed)'}: {problem}")
    namespace = request.namespace or obj.get("metadata", {}).get("namespace")
    if not namespace or not isinstance(namespace, str):
        return deny(
            400, f"{kind.kind} {out.name or '(unnamed)'}: request.namespace is empty; {kind.kind}s are namespaced"
        )
    out.namespace = namespace
    who = f"{kind.kind} {namespace}/{out.name or '(generated name)'}"

    volume_index: int | None = None
    step = f"looking up the CodeRun that owns {who}"
    warnings: list[str] = []
    try:
        async with asyncio.timeout(settings.kube_deadline_seconds):
            if is_pod:
                volume_index = find_volume(obj, settings.workspace_volume)
                if volume_index is None:
                    return allow(f"no volume named {settings.workspace_volume!r}")
                facts = await pod_facts(
                    obj, namespace, ctx.rules, settings.pod_service_label, settings.pod_app_label, ctx.store.get_owner
                )
                if facts is None:
                    return allow("no agent labels and no owning CodeRun: not an agent pod")
            else:
                facts = coderun_facts(obj)
            warnings += facts.warnings
            workspace = decide(facts, ctx)
            out.service, out.agent, out.pvc = workspace.service, workspace.agent, workspace.pvc
            warnings += workspace.warnings
            prefer = workspace.prefer_existing
            step = f"checking PersistentVolumeClaim {namespace}/{prefer}"
            if prefer and await ctx.store.pvc_exists(namespace, prefer):
                out.pvc, out.ensured = prefer, "exists"
            else:
                labels = workspace_labels(workspace.service, workspace.agent, workspace.pvc)
                manifest = pvc_manifest(workspace.pvc, namespace, labels, settings)
                step = f"ensuring PersistentVolumeClaim {namespace}/{workspace.pvc}"
                out.ensured = await ctx.store.ensure_pvc(manifest, dry_run=request.dry_run)
    except (FactsError, NamingError) as exc:
        return deny(400, f"{who}: {exc}")
    except ClusterError as exc:
        return deny(500, f"{who}: {exc}", "error")
    except TimeoutError:
        return deny(
            504,
            f"{who}: the Kubernetes API did not answer within "
            f"{settings.kube_deadline_seconds}s while {step}; check the API server's health and "
            "WEBHOOK_KUBE_DEADLINE_SECONDS",
            "error",
        )

    assert out.pvc is not None and out.service is not None
    if out.ensured == "would-create":
        warnings.append(f"dry run: PersistentVolumeClaim {namespace}/{out.pvc} does not exist and would be created")
    labels = workspace_labels(out.service, out.agent, out.pvc)
    patch = workspace_patch(obj, labels, out.pvc, volume_index)
    out.decision = "patched" if patch else "allowed"
    out.answer = answer(request.uid, allowed=True, patch=patch, warnings=warnings)
    return out
