"""The `workspaces` commands at the terminal: the report, `restore` and `prune`. Reads through
kube/listings.py, decides with the pure plans of ops/history.py and ops/lifecycle.py, and writes
(only when told: never on --dry-run, and prune only with --yes) through kube/changes.py."""

from __future__ import annotations

from collections.abc import Callable

from agent_workspace_webhook.kube.listings import list_coderuns, list_pods, list_pvcs, list_pvs
from agent_workspace_webhook.kube.store import ClusterError
from agent_workspace_webhook.ops.history import histories
from agent_workspace_webhook.ops.lifecycle import PlanError, prune_plan, restore_plan, volume_spec
from agent_workspace_webhook.ops.workspaces import mounts, report, rows
from agent_workspace_webhook.rules.facts import RunFacts
from agent_workspace_webhook.rules.pvc import PvcSpec
from agent_workspace_webhook.settings import Settings

Say = Callable[[str], None]


def show(settings: Settings, namespace: str | None, say: Say = print) -> int:
    pvs = [pv for pv in list_pvs(settings) if namespace is None or _claimed_in(pv, namespace)]
    try:
        coderuns: list[dict[str, object]] | None = list_coderuns(settings, namespace)
    except ClusterError:  # no CRD, or no right to list them: the report says RUNS ?
        coderuns = None
    say(report(rows(list_pvcs(settings, namespace), list_pods(settings, namespace), pvs, coderuns=coderuns)))
    return 0


def _claimed_in(pv: dict[str, object], namespace: str) -> bool:
    """Whether a volume is (or was) bound to a claim of that namespace: PVs are cluster-wide."""
    spec = pv.get("spec")
    claim = spec.get("claimRef") if isinstance(spec, dict) else None
    return isinstance(claim, dict) and claim.get("namespace") == namespace


def restore(
    settings: Settings,
    namespace: str,
    service: str,
    agent: str,
    *,
    generation: int | None,
    released: str | None,
    dry_run: bool,
    say: Say = print,
) -> int:
    """Make an earlier life of the agent's workspace current again, as a new generation."""
    from agent_workspace_webhook.admission.context import naming_rules
    from agent_workspace_webhook.kube.changes import Changes
    from agent_workspace_webhook.rules.decide import decide_workspace

    if (generation is None) == (released is None):
        raise PlanError("give one of --generation N (a generation that still exists) or --released PV")
    workspace = decide_workspace(RunFacts(service, None, "SERVICE", "AGENT", agent=agent), *naming_rules(settings))
    pvcs = list_pvcs(settings, namespace)
    pvs = list_pvs(settings)
    found = histories(pvcs, pvs)
    base = next((b for b in (workspace.prefer_existing, workspace.pvc) if b and (namespace, b) in found), workspace.pvc)
    by_name = {p["metadata"]["name"]: p for p in pvcs}
    spec = PvcSpec(settings.storage_size, settings.access_modes, settings.storage_class)
    plan = restore_plan(
        namespace, base, workspace.service, workspace.agent, found.get((namespace, base), []), by_name, spec,
        generation=generation, released=released,
    )  # fmt: skip
    if plan.volume is not None:
        volume_spec(next(pv for pv in pvs if pv["metadata"]["name"] == plan.volume), plan)
    for line in plan.lines:
        say(("would " if dry_run else "") + line)
    if dry_run:
        return 0
    changes = Changes(settings)
    try:
        changes.create_pvc(plan.manifest)
        if plan.volume is not None:
            changes.claim_volume(plan.volume, namespace, plan.manifest["metadata"]["name"])
    finally:
        changes.close()
    say(f"restored: the agent's next run mounts {namespace}/{plan.manifest['metadata']['name']}")
    return 0


def prune(settings: Settings, namespace: str | None, keep: int, yes: bool, say: Say = print) -> int:
    """Remove retained copies beyond the `keep` newest of each workspace (a dry run unless `yes`)."""
    from agent_workspace_webhook.kube.changes import Changes

    pvs = [pv for pv in list_pvs(settings) if namespace is None or _claimed_in(pv, namespace)]
    found = histories(list_pvcs(settings, namespace), pvs, mounts(list_pods(settings, namespace)))
    plan = prune_plan(found, keep)
    for line in plan.lines():
        say(("" if yes else "would ") + line)
    gone = len(plan.pvcs) + len(plan.volumes)
    scope = f"namespace {namespace}" if namespace is not None else "every namespace"
    freed = f"{'freed' if yes else 'would free'} {plan.freed / 2**30:.1f} GiB in {gone} copies in {scope}"
    kept = f"keeping the {keep} newest of each workspace beside its current generation"
    say(f"{freed} ({kept})" + ("" if yes else "; run again with --yes to do it"))
    if not yes:
        return 0
    changes = Changes(settings)
    try:
        for copy in plan.pvcs:
            if copy.pv:
                changes.reclaim(copy.pv)  # else the Retain class would keep the volume after the PVC goes
            changes.delete_pvc(copy.namespace, copy.pvc)
        for copy in plan.volumes:
            if copy.pv:
                changes.reclaim(copy.pv)  # Released: the PV controller now deletes it and its storage
    finally:
        changes.close()
    return 0
