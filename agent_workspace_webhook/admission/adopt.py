"""The platform controller's own workspace PVC adopted at its creation (rules/adopt.py) as the
workspace's generation 1, when it is one: its name is the generation 1 the webhook decides for the
service and agent the controller labelled it with, the workspace has no generation yet, and no
fresh run waits for one (then the controller is re-making the name it just deleted for that run:
a placeholder, left as it is). Nothing is created or read beyond the caches (a cold cache: one
read each); whatever is unsure leaves the PVC as the controller made it, never refused, since the
controller's reconcile fails on any error and is not retried."""

from __future__ import annotations

from agent_workspace_webhook.admission.context import Context, Target, decide
from agent_workspace_webhook.admission.fresh import fresh_runs_waiting
from agent_workspace_webhook.admission.provision import Provisioned, clone_source, existing_generations
from agent_workspace_webhook.admission.review import Response, allowed
from agent_workspace_webhook.admission.review import patched as patched_response
from agent_workspace_webhook.kube.store import ClusterError
from agent_workspace_webhook.rules.adopt import (
    ADOPTED,
    adoption_patch,
    controller_pvc_facts,
    is_controller_pvc,
)
from agent_workspace_webhook.rules.facts import FactsError
from agent_workspace_webhook.rules.labels import generation_labels, plain_pvc_labels, workspace_labels
from agent_workspace_webhook.rules.names import quote
from agent_workspace_webhook.rules.pvc import pvc_manifest
from agent_workspace_webhook.rules.workspace import NamingError


async def admit_controller_pvc(uid: str, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    obj = target.obj
    name = (obj.get("metadata") or {}).get("name")
    facts = controller_pvc_facts(obj) if is_controller_pvc(obj) else None
    if facts is None or not isinstance(name, str):
        return allowed(uid, "not a workspace PVC of the platform's controller for an agent: left as it is"), None
    try:
        workspace = decide(facts, ctx)
    except (NamingError, FactsError) as exc:
        return allowed(uid, f"its labels give no workspace ({exc}): left as it is"), None
    if workspace.pvc != name or workspace.agent is None:
        why = f"not the generation 1 of the workspace its labels give ({workspace.pvc})"
        return allowed(uid, f"{quote(name)} is {why}: left as it is"), None
    # A failure here (the API, the deadline) is answered by admit(): this entry is lenient.
    generations = await existing_generations(workspace.pvc, target, ctx)
    waiting = [] if generations else await fresh_runs_waiting(workspace, generations, target, ctx)
    if generations or waiting:
        why = f"generation {generations[-1].number} exists" if generations else f"{waiting[0].name} awaits a fresh one"
        return allowed(uid, f"a placeholder of workspace {name} ({why}): left as it is"), None
    labels = {
        **plain_pvc_labels(workspace.service, workspace.agent),
        **workspace_labels(workspace.service, workspace.agent, name),
        **generation_labels(1, name),
    }
    warnings: list[str] = []
    try:  # seed_from_legacy=clone: as the webhook's own generation 1 would start
        clone = await clone_source(workspace, target, ctx, warnings)
    except ClusterError as failure:
        clone, warnings = None, [f"starts empty, not as a clone: {failure}"]
    made_from = f"clone of {clone.source}, {ADOPTED}" if clone else ADOPTED
    wanted = pvc_manifest(name, target.namespace, labels, ctx.pvc_spec, clone, made_from=made_from)
    modes = tuple(wanted["spec"]["accessModes"])
    source = clone.source if clone else None
    done = Provisioned(workspace.service, workspace.agent, name, "adopted", tuple(warnings), modes, source)
    return patched_response(uid, adoption_patch(obj, wanted), warnings), done
