"""A workspace's volume marked as the webhook's as it is created (rules/volume.py): the
provisioner's PV for a claim that is a PVC the webhook made gets the webhook's managed-by label,
which survives the claim, so `workspaces prune` deletes only what it can prove the webhook made.
Read from the PVC cache (a cold one: one read); whatever is unsure leaves the volume unmarked,
never refused (its entry's failurePolicy is Ignore, and a refusal would fail the provisioning)."""

from __future__ import annotations

from agent_workspace_webhook.admission.context import Context, Target, within
from agent_workspace_webhook.admission.provision import Provisioned
from agent_workspace_webhook.admission.review import Response, allowed
from agent_workspace_webhook.admission.review import patched as patched_response
from agent_workspace_webhook.rules.volume import mark_patch, volume_claim


async def admit_workspace_volume(uid: str, target: Target, ctx: Context) -> tuple[Response, Provisioned | None]:
    claim = volume_claim(target.obj)
    if claim is None:
        return allowed(uid, "not the volume of a workspace-* claim: left as it is"), None
    namespace, name = claim
    # A failure here (the API, the deadline) is answered by admit(): this entry is lenient.
    reading = f"reading PersistentVolumeClaim {namespace}/{name}"
    state = await within(target, reading, ctx.store.get_pvc(namespace, name))
    if state is None or not state.ours or state.deleting:
        return allowed(uid, f"its claim {namespace}/{name} is not a workspace the webhook made: left unmarked"), None
    return patched_response(uid, mark_patch(target.obj)), None
