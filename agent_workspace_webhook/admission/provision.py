"""Provisioning, the step Pods and CodeRuns share: decide the workspace from the run's facts, then
find its current generation (denying one being deleted) or make one: generation 1, empty or as a
clone of the service's legacy workspace, or, for the first Pod of a run that asks for a fresh
workspace, the next generation, empty (admission/fresh.py). Earlier generations stay as they are."""

from __future__ import annotations

from typing import Literal, NoReturn

import msgspec

from agent_workspace_webhook.admission.context import Context, Denial, Target, decide, within
from agent_workspace_webhook.admission.fresh import announce_fresh, deny_past_rate, fresh_run_of_pod
from agent_workspace_webhook.admission.grow import grow
from agent_workspace_webhook.admission.owners import verify_run
from agent_workspace_webhook.kube.store import PvcAction
from agent_workspace_webhook.rules.facts import RunFacts
from agent_workspace_webhook.rules.generations import (
    FreshRun,
    Generation,
    current_generation,
    generation_name,
    next_generation,
    wants_fresh,
)
from agent_workspace_webhook.rules.labels import (
    generation_labels,
    plain_pvc_labels,
    workspace_labels,
)
from agent_workspace_webhook.rules.pvc import Clone, clone_problem, pvc_manifest
from agent_workspace_webhook.rules.workspace import Workspace, legacy_pvc_name


class Provisioned(msgspec.Struct, frozen=True):
    """The outcome of the shared provisioning step: which PVC the run mounts, and what was done."""

    service: str
    agent: str | None
    pvc: str
    action: PvcAction
    warnings: tuple[str, ...]
    access_modes: tuple[str, ...] = ()  # the PVC's: ReadWriteOnce makes its Pods share a node
    cloned_from: str | None = None
    generation: int = 1


async def provision(facts: RunFacts, target: Target, ctx: Context, kind: Literal["Pod", "CodeRun"]) -> Provisioned:
    """The step both kinds share: which workspace the facts give, and make sure its current
    generation exists, never handing out a dying one. A CodeRun that asks for a fresh workspace
    creates nothing: the first Pod that its owner chain leads back to it makes the new generation."""
    workspace = decide(facts, ctx)
    warnings = [*facts.warnings, *workspace.warnings]
    base, generations = await _existing(workspace, target, ctx)
    if kind == "CodeRun" and wants_fresh(target.obj.get("spec") or {}):
        deny_past_rate(target, base, generations, ctx.settings.max_fresh_per_hour, target.who)
        number = next_generation(generations)
        warnings.append(announce_fresh(target, base, number, current_generation(generations)))
        return _provisioned(workspace, generation_name(base, number), "deferred", warnings, number=number)
    if kind == "CodeRun" and not generations and ctx.settings.create_for == "verified-runs":
        warnings.append(
            f"its workspace PersistentVolumeClaim {target.namespace}/{workspace.pvc} is made at its first Pod, "
            "or adopted when the platform's controller creates it first (WEBHOOK_CREATE_FOR=verified-runs: a "
            "workspace only for a run whose Job and CodeRun exist)"
        )
        return _provisioned(workspace, workspace.pvc, "deferred", warnings)
    fresh = await fresh_run_of_pod(workspace, generations, target, ctx) if kind == "Pod" else None
    if fresh is not None:
        return await _make_fresh(workspace, base, generations, fresh, target, ctx, warnings)
    if generations:
        current = current_generation(generations)
        if current is None:
            _deny_dying(target.namespace, generations[-1])
        action: PvcAction = "exists"
        if ctx.settings.grow_existing:
            action = await grow(current, workspace, target, ctx, warnings, kind)
        modes = current.state.access_modes
        return _provisioned(workspace, current.pvc, action, warnings, modes, number=current.number)
    return await _make_first(workspace, target, ctx, warnings)


async def _existing(workspace: Workspace, target: Target, ctx: Context) -> tuple[str, list[Generation]]:
    """The workspace's generations: the legacy owner's shared one if it exists, else its own;
    (the name of generation 1, the generations that exist)."""
    for base in (workspace.prefer_existing, workspace.pvc):
        if base is None:
            continue
        generations = await existing_generations(base, target, ctx)
        if generations:
            return base, generations
    return workspace.pvc, []


async def existing_generations(base: str, target: Target, ctx: Context) -> list[Generation]:
    """The generations of the workspace whose generation 1 is `base`: from the cache, else one read."""
    generations = ctx.store.generations_now(target.namespace, base)
    if generations is None:
        reading = f"reading PersistentVolumeClaim {target.namespace}/{base} and its generations"
        generations = await within(target, reading, ctx.store.generations(target.namespace, base))
    return generations


async def _make_first(workspace: Workspace, target: Target, ctx: Context, warnings: list[str]) -> Provisioned:
    """Generation 1 of a new workspace, empty or as a clone of the legacy workspace, below the
    namespace's ceiling."""
    if ctx.settings.create_for == "verified-runs":  # a Pod: a CodeRun's was deferred above
        await verify_run(workspace, target, ctx)
    else:
        _deny_unknown_agent(workspace, ctx)
    await _deny_past_ceiling(workspace.pvc, target, ctx)
    clone = await clone_source(workspace, target, ctx, warnings)
    return await _create(workspace, workspace.pvc, 1, target, ctx, warnings, clone)


async def _make_fresh(
    workspace: Workspace,
    base: str,
    generations: list[Generation],
    run: FreshRun,
    target: Target,
    ctx: Context,
    warnings: list[str],
) -> Provisioned:
    """The next generation, empty, for the fresh run this Pod belongs to (its owner chain leads
    back to that CodeRun: a verified run); the current one is kept."""
    if ctx.settings.create_for != "verified-runs":
        _deny_unknown_agent(workspace, ctx)
    run_name = f"CodeRun {target.namespace}/{run.name}"
    deny_past_rate(target, base, generations, ctx.settings.max_fresh_per_hour, run_name)
    number = next_generation(generations)
    name = generation_name(base, number)
    await _deny_past_ceiling(name, target, ctx)
    current = current_generation(generations)
    kept = f"; generation {current.number} ({current.pvc}) is kept" if current is not None else ""
    warnings.append(f"fresh workspace for CodeRun {target.namespace}/{run.name}: generation {number} ({name}){kept}")
    made_from = f"fresh for CodeRun {target.namespace}/{run.name}"
    return await _create(workspace, base, number, target, ctx, warnings, fresh_for=run.uid, made_from=made_from)


async def _create(
    workspace: Workspace,
    base: str,
    number: int,
    target: Target,
    ctx: Context,
    warnings: list[str],
    clone: Clone | None = None,
    fresh_for: str | None = None,
    made_from: str | None = None,
) -> Provisioned:
    """Create generation `number` of the workspace whose generation 1 is `base` (none on a dry run)."""
    namespace, service, agent = target.namespace, workspace.service, workspace.agent
    name = generation_name(base, number)
    labels = {
        **plain_pvc_labels(service, agent),
        **workspace_labels(service, agent, name),
        **generation_labels(number, base),
    }
    manifest = pvc_manifest(name, namespace, labels, ctx.pvc_spec, clone, fresh_for, made_from)
    action = await within(
        target,
        f"creating PersistentVolumeClaim {namespace}/{name}",
        ctx.store.create_pvc(manifest, dry_run=target.dry_run),
    )
    source = clone.source if clone is not None else None
    if action == "would-create":
        how = f" as a clone of {source}" if source else ""
        warnings.append(f"dry run: PersistentVolumeClaim {namespace}/{name} does not exist and would be created{how}")
    modes = tuple(manifest["spec"]["accessModes"])
    return _provisioned(workspace, name, action, warnings, modes, source, number)


def _provisioned(
    workspace: Workspace,
    pvc: str,
    action: PvcAction,
    warnings: list[str],
    modes: tuple[str, ...] = (),
    cloned_from: str | None = None,
    number: int = 1,
) -> Provisioned:
    return Provisioned(workspace.service, workspace.agent, pvc, action, tuple(warnings), modes, cloned_from, number)


async def clone_source(workspace: Workspace, target: Target, ctx: Context, warnings: list[str]) -> Clone | None:
    """With seed_from_legacy=clone, a new per-agent workspace starts as a clone of the service's
    legacy workspace when that one can be cloned; otherwise it starts empty, and a warning says why."""
    legacy = legacy_pvc_name(workspace.service)
    if ctx.settings.seed_from_legacy != "clone" or workspace.pvc == legacy:
        return None
    namespace = target.namespace
    reading = f"reading PersistentVolumeClaim {namespace}/{legacy}"
    state = await within(target, reading, ctx.store.get_pvc(namespace, legacy))
    problem = clone_problem(legacy, state)
    if problem is not None or state is None:
        warnings.append(f"PersistentVolumeClaim {namespace}/{workspace.pvc} starts empty, not as a clone: {problem}")
        return None
    return Clone(legacy, state)


async def _deny_past_ceiling(pvc: str, target: Target, ctx: Context) -> None:
    """No new PVC past the namespace's ceiling: every workspace and generation the webhook made
    there counts, whatever path made it (a new workspace, a fresh run's, an adopted one, a restore)."""
    namespace, ceiling = target.namespace, ctx.settings.max_workspaces_per_namespace
    counting = f"counting the workspaces of namespace {namespace}"
    made = await within(target, counting, ctx.store.workspace_count(namespace))
    if made >= ceiling:
        raise Denial(
            403,
            f"namespace {namespace} has {made} workspace PVCs made by the webhook (every generation counts), its "
            f"ceiling (WEBHOOK_MAX_WORKSPACES_PER_NAMESPACE={ceiling}), so PersistentVolumeClaim {namespace}/{pvc} "
            "is not made; remove workspaces or generations no longer needed (agent-workspace-webhook workspaces -n "
            f"{namespace}) or raise the setting",
        )


def _deny_unknown_agent(workspace: Workspace, ctx: Context) -> None:
    """WEBHOOK_CREATE_FOR=any: no storage for an agent only the pattern names, or `5dlabs-<anything>`
    on a bare Pod would mint it. A verified run (its CodeRun exists) needs no such list: the
    platform runs whatever agents its GitHub Apps name."""
    agent = workspace.agent
    if agent is not None and agent not in ctx.known_agents:
        raise Denial(
            403,
            f"agent {agent!r} is in neither the agent table nor WEBHOOK_AGENT_ALLOWLIST, so no workspace is made "
            f"for it ({workspace.pvc}) on an unverified run (WEBHOOK_CREATE_FOR=any); add it to one of them if it "
            "is one of the platform's agents, or let only verified runs have workspaces (WEBHOOK_CREATE_FOR="
            "verified-runs, the default)",
        )


def _deny_dying(namespace: str, newest: Generation) -> NoReturn:
    """Every generation of the workspace is being deleted: none can be mounted (the Pod would stay
    Pending, then for good once the PVC is gone): deny, and the Job controller's retry gets a
    fresh one later."""
    pvc, state = newest.pvc, newest.state
    held = ", still mounted by a Pod (finalizer kubernetes.io/pvc-protection)" if state.protected else ""
    raise Denial(
        409,
        f"its workspace PersistentVolumeClaim {namespace}/{pvc} is being deleted{held}; "
        "the run will be admitted with a fresh workspace once it is gone (a Job's retries do that by "
        "themselves); delete the Pods that still mount it to speed that up",
    )
