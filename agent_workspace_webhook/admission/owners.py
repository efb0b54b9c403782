"""The one walk of a Pod's owners: Pod -> Job -> CodeRun, following each object's controller
reference only, each object read at most once per admission (context.get_owner). Two readings,
chosen by `verified`:

- unverified, for the facts (what the owners say when the Pod's labels do not): Pod -> Job ->
  CodeRun or Pod -> CodeRun; a missing owner ends the walk, uids are not compared.
- verified, for provenance (WEBHOOK_CREATE_FOR=verified-runs, growth, the fresh check): a real
  run leaves objects a forged review cannot make exist: a CodeRun, a Job it controls, the Job
  controller's Pod naming that Job, each existing with the uid its child names. A Pod naming a
  CodeRun directly is no run's (the platform's Pods all come through a Job); an owner missing or
  with another uid is a Denial, with one message for both: naming the real uid, or telling a
  missing name from another uid, would show a caller what it cannot read."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_workspace_webhook.admission.context import Context, Denial, Target, decide, get_owner, within
from agent_workspace_webhook.rules.facts import OwnerKind, OwnerRef, RunFacts, coderun_facts, controller_ref
from agent_workspace_webhook.rules.names import quote
from agent_workspace_webhook.rules.workspace import Workspace

# (kind, namespace, name) -> the object, or None when it does not exist
OwnerLookup = Callable[[OwnerKind, str, str], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class OwningRun:
    namespace: str
    name: str
    uid: str | None
    coderun: Mapping[str, Any] | None  # None when the walk stopped at its reference (read_run=False)

    def facts(self) -> RunFacts:
        assert self.coderun is not None
        return coderun_facts(self.coderun, where=f"CodeRun {self.namespace}/{self.name} ")


async def walk(
    obj: Mapping[str, Any], namespace: str, lookup: OwnerLookup, *, verified: bool, read_run: bool = True
) -> OwningRun | None:
    """The CodeRun `obj` (a Pod) belongs to, or None when its controller chain leads to none;
    with read_run=False its reference only (name and uid), the CodeRun itself not read."""
    ref = controller_ref(obj)
    if ref is not None and ref.kind == "Job":
        job = await lookup("Job", namespace, ref.name)
        if verified:
            job = _checked(ref, job, namespace)
        elif job is None:
            return None
        ref = controller_ref(job, where=f"Job {namespace}/{ref.name} ")
    elif verified:
        return None  # no Job between it and a CodeRun: not the Job controller's Pod of a run
    if ref is None or ref.kind != "CodeRun":
        return None
    if not read_run:
        return OwningRun(namespace, ref.name, ref.uid, None)
    run = await lookup("CodeRun", namespace, ref.name)
    if verified:
        run = _checked(ref, run, namespace)
    elif run is None:
        return None
    return OwningRun(namespace, ref.name, ref.uid, run)


def _checked(ref: OwnerRef, found: Mapping[str, Any] | None, namespace: str) -> Mapping[str, Any]:
    if found is None or (found.get("metadata") or {}).get("uid") != ref.uid:
        raise Denial(
            403,
            f"its controller {ref.kind} {namespace}/{ref.name} with uid {quote(str(ref.uid), 40)} does not exist; "
            "a workspace is made only for a real run",
        )
    return found


async def owning_run(target: Target, ctx: Context, *, verified: bool, read_run: bool = True) -> OwningRun | None:
    """walk() for the object under admission, its GETs memoised in the Target."""
    lookup = functools.partial(get_owner, target, ctx)
    return await walk(target.obj, target.namespace, lookup, verified=verified, read_run=read_run)


async def verify_run(workspace: Workspace, target: Target, ctx: Context) -> None:
    """WEBHOOK_CREATE_FOR=verified-runs: the Pod's controller chain must lead to a CodeRun that
    exists, and that CodeRun's service and agent must give the same workspace as the Pod's labels."""
    verifying = f"verifying the Job and CodeRun that own {target.who}"
    run = await within(target, verifying, owning_run(target, ctx, verified=True))
    if run is None:
        raise Denial(
            403,
            "no workspace is made for it: it names no controller Job and CodeRun, and WEBHOOK_CREATE_FOR="
            "verified-runs makes one only for a run whose Job and CodeRun exist (set it to any to let bare Pods "
            "have one, with the risk SECURITY.md names)",
        )
    verified = decide(run.facts(), ctx)
    if verified.pvc != workspace.pvc:
        raise Denial(
            403,
            f"its labels give workspace {workspace.pvc} (service {workspace.service}, agent {workspace.agent}) but "
            f"its CodeRun {target.namespace}/{run.name} gives {verified.pvc} (service {verified.service}, agent "
            f"{verified.agent}); the labels must agree with the run they belong to",
        )
