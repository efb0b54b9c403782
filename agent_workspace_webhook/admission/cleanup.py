"""The platform controller's workspace-cleanup Job (rules/cleanup.py) pointed at the workspace its
run used: the CodeRun still exists when the Job is created (the controller makes it from the
CodeRun's finalizer), and its annotation names that workspace. Nothing is created, and anything
short of a clear answer leaves the Job as the controller made it (its cleanup is best effort, and
so is this: the webhook entry for these Jobs has failurePolicy Ignore)."""

from __future__ import annotations

from collections.abc import Mapping

from agent_workspace_webhook.admission.context import Context, Target, get_owner, within
from agent_workspace_webhook.admission.provision import Provisioned
from agent_workspace_webhook.admission.review import Response, allowed
from agent_workspace_webhook.admission.review import patched as patched_response
from agent_workspace_webhook.kube.store import ClusterError
from agent_workspace_webhook.rules.cleanup import cleanup_run, job_template, recorded_workspace, under_template
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
from agent_workspace_webhook.rules.workspace import is_workspace_name


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
    namespace = target.namespace
    try:  # a refusal would lose the cleanup (the controller does not retry it): an API failure leaves the Job be
        coderun = await within(
            target, f"reading CodeRun {namespace}/{run}", get_owner(target, ctx, "CodeRun", namespace, run)
        )
        pvc = None if coderun is None else recorded_workspace(coderun)
        if coderun is None or pvc is None:
            why = "is gone" if coderun is None else "names no workspace (admitted without the webhook)"
            return allowed(uid, f"CodeRun {namespace}/{run} {why}: the cleanup stays on {quote(claim)}"), None
        reading = f"reading PersistentVolumeClaim {namespace}/{pvc}"
        state = await within(target, reading, ctx.store.get_pvc(namespace, pvc))
    except ClusterError as failure:
        return allowed(uid, f"{failure}: the cleanup stays on {quote(claim)}"), None
    if state is None or state.deleting:
        why = f"the workspace of CodeRun {namespace}/{run}, {pvc}, is gone"
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
