"""The platform controller's workspace-cleanup Job (rules/cleanup.py) pointed at the workspace its
run used: the CodeRun still exists when the Job is created (the controller makes it from the
CodeRun's finalizer), and its annotation names that workspace. Nothing is created, and anything
short of a clear answer leaves the Job as the controller made it (its cleanup is best effort, and
so is this: the webhook entry for these Jobs has failurePolicy Ignore)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.admission.context import Context, Target, decide, get_owner, within
from agent_workspace_webhook.admission.provision import Provisioned, existing_generations
from agent_workspace_webhook.admission.review import Response, allowed
from agent_workspace_webhook.admission.review import patched as patched_response
from agent_workspace_webhook.kube.store import ClusterError
from agent_workspace_webhook.rules.cleanup import (
    CleanupRun,
    cleanup_run,
    job_template,
    recorded_workspace,
    under_template,
)
from agent_workspace_webhook.rules.facts import FactsError, coderun_facts
from agent_workspace_webhook.rules.labels import LABEL_WORKSPACE
from agent_workspace_webhook.rules.names import quote
from agent_workspace_webhook.rules.patch import (
    claim_of,
    colocation_patch,
    find_volume,
    shape_problem,
    volume_problem,
    workspace_patch,
)
from agent_workspace_webhook.rules.workspace import NamingError, is_workspace_name


async def admit_cleanup_job(uid: str, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    run = cleanup_run(target.obj)
    template = job_template(target.obj)
    if run is None or template is None or shape_problem(template) is not None:
        return allowed(uid, "not a workspace-cleanup Job of the platform's controller"), None
    index = find_volume(template, ctx.settings.workspace_volume)
    volume = None if index is None else template["spec"]["volumes"][index]
    claim = None if volume is None or volume_problem(volume) is not None else claim_of(volume)
    if index is None or claim is None or not is_workspace_name(claim):
        return allowed(uid, "its Pod template mounts no workspace-* claim: left as it is"), None
    namespace, budget, now = target.namespace, ctx.cleanup_lookups, time.monotonic()
    missing = budget.known_missing((namespace, run.name), now)
    if missing or not budget.take(now):
        why = "was not found a moment ago" if missing else "cannot be read now"
        return allowed(uid, f"CodeRun {namespace}/{run.name} {why} (cleanup lookups are bounded): left as it is"), None
    try:  # a refusal would lose the cleanup (the controller does not retry it): an API failure leaves the Job be
        reading = f"reading CodeRun {namespace}/{run.name}"
        coderun = await within(target, reading, get_owner(target, ctx, "CodeRun", namespace, run.name))
        if coderun is None:
            budget.missing((namespace, run.name), now)
        if coderun is None or not _is_the_run(coderun, run):
            why = "is gone" if coderun is None else "is another run of that name (its uid differs)"
            return allowed(uid, f"CodeRun {namespace}/{run.name} {why}: the cleanup stays on {quote(claim)}"), None
        pvc = await _workspace_used(coderun, target, ctx)
        if pvc is None:
            why = "names no workspace of its own agent (admitted without the webhook, or its annotation changed)"
            return allowed(uid, f"CodeRun {namespace}/{run.name} {why}: the cleanup stays on {quote(claim)}"), None
        reading = f"reading PersistentVolumeClaim {namespace}/{pvc}"
        state = await within(target, reading, ctx.store.get_pvc(namespace, pvc))
    except ClusterError as failure:
        return allowed(uid, f"{failure}: the cleanup stays on {quote(claim)}"), None
    if state is None or state.deleting:
        why = f"the workspace of CodeRun {namespace}/{run.name}, {pvc}, is gone"
        return allowed(uid, f"{why}: the cleanup stays on {quote(claim)}"), None
    ops = workspace_patch(template, {LABEL_WORKSPACE: pvc}, pvc, index)
    if ctx.settings.colocate and "ReadWriteOnce" in state.access_modes:
        ops += colocation_patch(template, pvc)
    spec = coderun.get("spec")
    service = spec.get("service") if isinstance(spec, Mapping) else None
    done = Provisioned(
        service=service if isinstance(service, str) else "",
        agent=None,
        pvc=pvc,
        action="exists",
        warnings=(),
        access_modes=state.access_modes,
    )
    return patched_response(uid, under_template(ops), ()), done


def _is_the_run(coderun: Mapping[str, Any], run: CleanupRun) -> bool:
    """The CodeRun read is the one the Job cleans up after, as far as the Job says (its uid's start)."""
    metadata = coderun.get("metadata")
    found = metadata.get("uid") if isinstance(metadata, Mapping) else None
    return run.uid8 is None or (isinstance(found, str) and found.startswith(run.uid8))


async def _workspace_used(coderun: Mapping[str, Any], target: Target, ctx: Context) -> str | None:
    """The workspace the run worked in: the generation made fresh for it, if one was (two fresh
    runs of one agent that raced may have made another than each announced), else the one its
    admission recorded, if that is a generation of the workspace its spec gives."""
    recorded = recorded_workspace(coderun)
    metadata = coderun.get("metadata")
    run_uid = metadata.get("uid") if isinstance(metadata, Mapping) else None
    try:
        base = decide(coderun_facts(coderun), ctx).pvc
    except (FactsError, NamingError):
        return None
    generations = await existing_generations(base, target, ctx)
    for generation in generations:
        if run_uid and generation.state.fresh_for == run_uid:
            return generation.pvc
    # The annotation is trusted only as far as it names a generation of the run's own workspace:
    # whoever may patch the CodeRun cannot point its cleanup at another agent's workspace.
    return recorded if recorded in {generation.pvc for generation in generations} else None
