"""The one admission flow, shared by /mutate and the `review` command.

request -> the Pod's or the CodeRun's own path (facts) -> provision (provision.py: decide the
workspace, find or create its PVC) -> patch -> Response, plus a Record of what happened for the
log line and the metrics. Every failure is raised as an AdmissionFailure (rules/failure.py: a
code and a message) and turned into a Response in one place, answer_failure; an entry whose
webhook may never refuse (lenient) turns that into the object left as it is.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from agent_workspace_webhook.admission.adopt import admit_controller_pvc
from agent_workspace_webhook.admission.cleanup import admit_cleanup_job
from agent_workspace_webhook.admission.context import Context, Denial, Target, make_context, within
from agent_workspace_webhook.admission.owners import owning_run
from agent_workspace_webhook.admission.provision import Provisioned, provision
from agent_workspace_webhook.admission.review import Decision, Request, Response, allowed, denied, error
from agent_workspace_webhook.admission.review import patched as patched_response
from agent_workspace_webhook.admission.volumes import admit_workspace_volume
from agent_workspace_webhook.kube.store import PvcAction
from agent_workspace_webhook.rules.facts import (
    coderun_facts,
    label_facts,
    labels_are_conclusive,
)
from agent_workspace_webhook.rules.failure import AdmissionFailure
from agent_workspace_webhook.rules.labels import LABEL_WORKSPACE, workspace_labels
from agent_workspace_webhook.rules.names import quote
from agent_workspace_webhook.rules.patch import (
    claim_of,
    colocation_patch,
    find_volume,
    shape_problem,
    volume_problem,
    workspace_patch,
)
from agent_workspace_webhook.rules.volume import volume_claim
from agent_workspace_webhook.rules.workspace import is_healer_run, is_workspace_name

__all__ = ["Context", "Record", "admit", "make_context"]


class Record(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the log line and the metrics say about one admission (never sent to the caller)."""

    uid: str
    kind: str
    operation: str
    namespace: str | None = None
    name: str | None = None
    dry_run: bool
    decision: Decision
    message: str | None = None
    service: str | None = None
    agent: str | None = None
    pvc: str | None = None
    pvc_action: PvcAction | None = None
    cloned_from: str | None = None

    def log_fields(self) -> dict[str, Any]:
        """The fields that are set (omit_defaults: every None is left out)."""
        fields: dict[str, Any] = msgspec.to_builtins(self)
        return fields


async def admit(request: Request, ctx: Context) -> tuple[Response, Record]:
    name = request.name or _object_name(request.object)
    namespace = request.namespace
    provisioned: Provisioned | None = None
    who: str | None = None
    entry = _entry(request, ctx)
    try:
        if entry is None:
            raise _unhandled(request, ctx)
        target = _target(request, entry, name, ctx)
        namespace, who = target.namespace, target.who
        response, provisioned = await _route(request, entry, target, ctx)
    except AdmissionFailure as failure:  # anything else is a bug (answered 500 by server/mutator.py)
        response = answer_failure(request.uid, who, failure)
        if entry is not None and entry.lenient:  # its webhook's failurePolicy is Ignore: never a refusal
            response = allowed(request.uid, f"{response.message}: left as it is")
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
        cloned_from=provisioned.cloned_from if provisioned else None,
    )
    return response, record


def answer_failure(uid: str, who: str | None, failure: AdmissionFailure) -> Response:
    """The one place a failure becomes an answer. The request's fault is `denied`; ours or the
    Kubernetes API's (`failure.ours`: a ClusterError, the deadline among them) an `error`. Both
    reach the user as allowed: false with the failure's code and message, led by the object's
    name once it is known; the decision is for the logs and metrics."""
    answer = error if failure.ours else denied
    return answer(uid, failure.code, f"{who}: {failure.message}" if who else failure.message)


Handler = Callable[[str, Target, Context], Awaitable[tuple[Response, Provisioned | None]]]


@dataclass(frozen=True)
class Entry:
    """One webhook entry of the MutatingWebhookConfiguration: the kind it sends, its path."""

    handle: Handler
    # Its webhook has failurePolicy Ignore (the controller's own objects, whose calls must never
    # fail): any failure, the scope check's included, leaves the object as it is, never refused.
    lenient: bool = False
    # For a cluster-scoped kind: the namespace the object belongs to (a volume's claim's), which
    # the scope is checked against; None for a namespaced kind (the review's namespace).
    namespace_of: Callable[[Mapping[str, Any]], str | None] | None = None


def _entry(request: Request, ctx: Context) -> Entry | None:
    kind, settings = request.kind, ctx.settings
    if (kind.group, kind.version, kind.kind) == (settings.coderun_group, settings.coderun_version, "CodeRun"):
        return CODERUN_ENTRY
    return ENTRIES.get((kind.group, kind.version, kind.kind))


async def _route(request: Request, entry: Entry, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    """Each kind its own path, every Kubernetes step of it inside the one deadline."""
    if request.operation != "CREATE":
        return allowed(request.uid, f"operation {request.operation} is left alone"), None
    # Every await below that may wait is a context.within step, which names itself if the deadline
    # passes; what the caches answer at once (a hit) is read without one.
    await _check_scope(target, ctx)
    return await entry.handle(request.uid, target, ctx)


async def _check_scope(target: Target, ctx: Context) -> None:
    """Only namespaces in scope get workspaces, whoever sends the review (a forged one included)."""
    namespace, selector = target.namespace, ctx.scope.text
    if namespace in (ctx.settings.own_namespace, "kube-system"):
        raise Denial(403, f"namespace {namespace} never gets workspaces (the webhook's own, or kube-system)")
    in_scope = ctx.store.in_scope_now(namespace, ctx.scope)
    if in_scope is None:
        reading = f"reading Namespace {namespace}"
        in_scope = await within(target, reading, ctx.store.namespace_in_scope(namespace, ctx.scope))
    if in_scope is None:
        raise Denial(404, f"namespace {namespace} does not exist")
    if not in_scope:
        raise Denial(
            403,
            f"namespace {namespace} is not in the webhook's scope: its labels do not match "
            f"WEBHOOK_NAMESPACE_SELECTOR {selector!r}; label the namespace to match it if its runs should get "
            "workspaces",
        )


def _unhandled(request: Request, ctx: Context) -> Denial:
    settings = ctx.settings
    return Denial(
        400,
        f"kind {request.kind} is not handled by this webhook (it admits v1 Pod, batch/v1 Job, v1 "
        f"PersistentVolumeClaim, v1 PersistentVolume and {settings.coderun_group}/{settings.coderun_version} "
        "CodeRun); fix the rules "
        "of its MutatingWebhookConfiguration",
    )


def _target(request: Request, entry: Entry, name: str | None, ctx: Context) -> Target:
    """The object, once its kind is one we handle and it is one we can patch."""
    kind, settings = request.kind, ctx.settings
    obj = request.object
    if not isinstance(obj, dict):
        raise Denial(400, f"request.object must be a {kind.kind} object, not {type(obj).__name__}")
    problem = shape_problem(obj)
    if problem is not None:
        raise Denial(400, f"{kind.kind} {name or '(unnamed)'}: {problem}")
    own = obj.get("metadata", {}).get("namespace")
    namespace = entry.namespace_of(obj) if entry.namespace_of is not None else request.namespace or own
    if not namespace or not isinstance(namespace, str):
        raise Denial(400, f"{kind.kind} {name or '(unnamed)'}: request.namespace is empty; {kind.kind}s are namespaced")
    if own and own != namespace:  # the API server never sends this: a forged review reaching across
        raise Denial(
            400,
            f"{kind.kind} {name or '(unnamed)'}: its metadata.namespace {quote(str(own), 63)} is not the review's "
            f"namespace {quote(namespace, 63)}",
        )
    budget = settings.kube_deadline_seconds
    who = f"{kind.kind} {namespace}/{name or '(generated name)'}"
    return Target(obj, namespace, who, request.dry_run, budget, time.monotonic() + budget)


async def _admit_pod(uid: str, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    """An agent Pod: facts from its labels or its owners; its workspace volume is pointed at the PVC."""
    s = ctx.settings
    index = find_volume(target.obj, s.workspace_volume)
    if index is None:
        return allowed(uid, f"no volume named {s.workspace_volume!r}"), None
    volume = target.obj["spec"]["volumes"][index]
    problem = volume_problem(volume)  # refused below, once the Pod is known to be an agent's
    claim = None if problem is not None else claim_of(volume)
    if claim is not None and not is_workspace_name(claim):
        why = "not a workspace-* claim but one the platform chose (as the healer runs' healer-workspace)"
        return allowed(uid, f"its workspace claim {quote(claim)} is {why}: left as it is"), None
    facts = label_facts(target.obj, s.pod_service_label, s.pod_app_label)
    if not labels_are_conclusive(facts, ctx.rules):  # the owners say, one or two GETs
        looking = f"looking up the CodeRun that owns {target.who}"
        run = await within(target, looking, owning_run(target, ctx, verified=False))
        facts = run.facts() if run is not None else facts  # the owning CodeRun's are authoritative
    if facts is None:
        return allowed(uid, "no agent labels and no owning CodeRun: not an agent pod"), None
    if problem is not None:
        raise Denial(400, problem)
    done = await provision(facts, target, ctx, "Pod")
    patch = workspace_patch(target.obj, _labels(done), done.pvc, index)
    if s.colocate and "ReadWriteOnce" in done.access_modes and LABEL_WORKSPACE in _labels(done):
        patch += colocation_patch(target.obj, done.pvc)
    return patched_response(uid, patch, done.warnings), done


async def _admit_coderun(uid: str, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    """A CodeRun: facts from its spec; it gets the labels and annotation (it has no volume)."""
    spec = target.obj.get("spec")
    if isinstance(spec, Mapping) and is_healer_run(spec):
        return allowed(uid, "a healer run: its workspace is the platform's healer-workspace, left as it is"), None
    done = await provision(coderun_facts(target.obj), target, ctx, "CodeRun")
    return patched_response(uid, workspace_patch(target.obj, _labels(done), done.pvc, None), done.warnings), done


def _labels(done: Provisioned) -> dict[str, str]:
    return workspace_labels(done.service, done.agent, done.pvc)


def _object_name(obj: object) -> str | None:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None
    name = metadata.get("name") or metadata.get("generateName")
    return str(name) if name else None


def _claim_namespace(pv: Mapping[str, Any]) -> str | None:
    claim = volume_claim(pv)
    return claim[0] if claim is not None else None


CODERUN_ENTRY = Entry(_admit_coderun)
# The rest by (group, version, kind); the CodeRun's group and version are settings.
ENTRIES = {
    ("", "v1", "Pod"): Entry(_admit_pod),
    ("batch", "v1", "Job"): Entry(admit_cleanup_job, lenient=True),
    ("", "v1", "PersistentVolumeClaim"): Entry(admit_controller_pvc, lenient=True),
    ("", "v1", "PersistentVolume"): Entry(admit_workspace_volume, lenient=True, namespace_of=_claim_namespace),
}
