"""Provenance: the run an agent Pod belongs to, verified against the API server. A real run
leaves objects there (a CodeRun; a Job it controls; the Job controller's Pod naming that Job as
its controller, uids matching), which a forged review cannot make exist. With
`WEBHOOK_CREATE_FOR=verified-runs` a workspace is made only for such a run, and its service and
agent come from the verified CodeRun; reusing one that exists needs no verification."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_workspace_webhook.admission.context import Context, Denial, Target, decide, get_owner, within
from agent_workspace_webhook.rules.facts import OwnerKind, RunFacts, coderun_facts, controller_owner
from agent_workspace_webhook.rules.names import quote
from agent_workspace_webhook.rules.workspace import Workspace


@dataclass(frozen=True)
class VerifiedRun:
    name: str
    uid: str
    facts: RunFacts


async def owning_run(target: Target, ctx: Context) -> VerifiedRun | None:
    """The CodeRun that controls the Pod, directly or through its Job, each object existing with
    the uid its child names; None when the Pod names no controller. A named controller that does
    not exist, or has another uid, is a Denial naming it (a forged owner leads nowhere)."""
    ref = await controlling_run(target, ctx)
    if ref is None:
        return None
    name, uid = ref
    run = await _existing("CodeRun", name, uid, target, ctx)
    return VerifiedRun(name, str(uid), coderun_facts(run, where=f"CodeRun {target.namespace}/{name} "))


async def controlling_run(target: Target, ctx: Context) -> tuple[str, str | None] | None:
    """(name, uid) of the CodeRun the Pod's controller chain names: the Pod's own controller, or
    its Job's once that Job is verified (one GET); None when the chain leads to no CodeRun. A Job
    that does not exist, or has another uid, is a Denial naming it."""
    owner = controller_owner(target.obj)
    if owner is None:
        return None
    uid = controller_uid(target.obj)
    if owner[0] == "Job":
        job = await _existing("Job", owner[1], uid, target, ctx)
        owner = controller_owner(job, where=f"Job {target.namespace}/{owner[1]} ")
        if owner is None:
            return None
        uid = controller_uid(job)
    if owner[0] != "CodeRun":
        return None
    return owner[1], uid


async def _existing(kind: OwnerKind, name: str, uid: str | None, target: Target, ctx: Context) -> Mapping[str, Any]:
    namespace = target.namespace
    found = await get_owner(target, ctx, kind, namespace, name)
    if found is None or (found.get("metadata") or {}).get("uid") != uid:
        # One message for both: naming the real uid, or telling a missing name from another uid,
        # would show a caller who may create Pods (or forge reviews) what it cannot read.
        raise Denial(
            403,
            f"its controller {kind} {namespace}/{name} with uid {quote(str(uid), 40)} does not exist; a workspace "
            "is made only for a real run",
        )
    return found


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid in the object's controller ownerReference (controller_owner has checked there is one)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            uid = ref.get("uid")
            return uid if isinstance(uid, str) else None
    return None


async def verify_run(workspace: Workspace, target: Target, ctx: Context) -> None:
    """WEBHOOK_CREATE_FOR=verified-runs: the Pod's controller chain must lead to a CodeRun that
    exists, and that CodeRun's service and agent must give the same workspace as the Pod's labels."""
    verifying = f"verifying the Job and CodeRun that own {target.who}"
    run = await within(target, verifying, owning_run(target, ctx))
    if run is None:
        raise Denial(
            403,
            "no workspace is made for it: it names no controller Job and CodeRun, and WEBHOOK_CREATE_FOR="
            "verified-runs makes one only for a run whose Job and CodeRun exist (set it to any to let bare Pods "
            "have one, with the risk SECURITY.md names)",
        )
    verified = decide(run.facts, ctx)
    if verified.pvc != workspace.pvc:
        raise Denial(
            403,
            f"its labels give workspace {workspace.pvc} (service {workspace.service}, agent {workspace.agent}) but "
            f"its CodeRun {target.namespace}/{run.name} gives {verified.pvc} (service {verified.service}, agent "
            f"{verified.agent}); the labels must agree with the run they belong to",
        )
