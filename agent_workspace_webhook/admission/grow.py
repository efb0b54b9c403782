"""Growing a workspace in place (WEBHOOK_GROW_EXISTING): the one change the webhook ever makes to
a PVC it did not just create, and so only to one it made, for a verified run's Pod."""

from __future__ import annotations

from typing import Literal

from agent_workspace_webhook.admission.context import Context, Denial, Target, within
from agent_workspace_webhook.admission.owners import verify_run
from agent_workspace_webhook.kube.store import ClusterError, PvcAction
from agent_workspace_webhook.rules.generations import Generation
from agent_workspace_webhook.rules.labels import MANAGED_BY, MANAGED_BY_KEY
from agent_workspace_webhook.rules.quantity import parse_quantity
from agent_workspace_webhook.rules.workspace import Workspace


async def grow(
    current: Generation,
    workspace: Workspace,
    target: Target,
    ctx: Context,
    warnings: list[str],
    kind: Literal["Pod", "CodeRun"],
) -> PvcAction:
    """WEBHOOK_GROW_EXISTING: raise the current generation's request to the configured size when it
    is smaller and its class allows expansion; never lower it, touch nothing else, and never hold
    the run up: whatever stands in the way is a warning. Costs nothing when nothing is to grow.
    Only a PVC the webhook made, and only for a verified run's Pod: a change to an existing PVC is
    a side effect no forged review may cause."""
    state, wanted = current.state, ctx.settings.storage_size
    have = parse_quantity(state.storage or "")
    if have is None or have >= (parse_quantity(wanted) or have):
        return "exists"
    where = f"PersistentVolumeClaim {target.namespace}/{current.pvc}"
    cannot = f"{where} stays at {state.storage}, below WEBHOOK_STORAGE_SIZE {wanted}"
    if not state.ours:
        warnings.append(
            f"{cannot}: the webhook did not make it (no label {MANAGED_BY_KEY}: {MANAGED_BY[MANAGED_BY_KEY]})"
        )
        return "exists"
    if kind != "Pod":  # a CodeRun has no uid to verify yet: its first Pod grows it
        return "exists"
    if ctx.settings.create_for == "verified-runs":
        try:
            await verify_run(workspace, target, ctx)
        except Denial as unverified:
            warnings.append(f"{cannot}: only a verified run grows a workspace ({unverified.message})")
            return "exists"
    if state.storage_class is None:
        warnings.append(f"{cannot}: it names no StorageClass to ask whether it may grow")
        return "exists"
    try:
        reading = f"reading StorageClass {state.storage_class}"
        expands = await within(target, reading, ctx.store.storage_class_expands(state.storage_class))
        if not expands:
            why = "does not exist" if expands is None else "does not allow volume expansion (allowVolumeExpansion)"
            warnings.append(f"{cannot}: StorageClass {state.storage_class} {why}")
            return "exists"
        if target.dry_run:
            warnings.append(f"dry run: {where} would grow from {state.storage} to {wanted}")
            return "exists"
        await within(target, f"growing {where}", ctx.store.grow_pvc(target.namespace, current.pvc, wanted))
    except ClusterError as exc:  # the deadline among them: the run goes ahead on what it has
        warnings.append(f"{cannot}: {exc}")
        return "exists"
    warnings.append(f"{where} grows from {state.storage} to {wanted} (WEBHOOK_GROW_EXISTING)")
    return "grown"
