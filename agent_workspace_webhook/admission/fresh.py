"""Fresh workspaces (rules/generations.py). A CodeRun that asks for one (the platform's rule:
`freshWorkspace: true`, or unset with `runType: intake`) is admitted with a warning naming the
generation its first Pod will make: the CodeRun has no uid yet at its own admission, and the uid
is what keeps a retried or reinvoked admission, or a second replica, from making two. The Pod
makes it once its owner chain (Pod -> Job -> CodeRun) leads back to that very CodeRun.

Every other Pod costs nothing here: the fresh CodeRuns come from a watch cache, and only a Pod
of a workspace that has one still waiting follows its owner chain (one GET, of its Job)."""

from __future__ import annotations

import datetime

from agent_workspace_webhook.admission.context import Context, Denial, Target, decide, within
from agent_workspace_webhook.admission.owners import owning_run
from agent_workspace_webhook.rules.generations import (
    FreshRun,
    Generation,
    awaits_fresh_generation,
    generation_name,
    made_since,
    next_generation,
)
from agent_workspace_webhook.rules.labels import MAX_GENERATION
from agent_workspace_webhook.rules.workspace import NamingError, Workspace


def deny_past_rate(target: Target, base: str, generations: list[Generation], per_hour: int, run: str) -> None:
    """A fresh run gets no new generation once the workspace has had `per_hour` new ones in the
    last hour (each fresh run keeps every earlier one: a loop of fresh CodeRuns would fill the
    pool; a rate, since routine intake runs are fresh and never end), or when the next number
    would pass the highest a generation can have. `run`: "CodeRun ns/name"."""
    namespace = target.namespace
    hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    recent = made_since(generations, hour_ago)
    if recent >= per_hour:
        why = (
            f"has had {recent} new generations in the last hour, its limit (WEBHOOK_MAX_FRESH_PER_HOUR={per_hour}); "
            "a loop of fresh CodeRuns? The next is admitted once the oldest of them is an hour old"
        )
    elif next_generation(generations) > MAX_GENERATION:
        why = f"has generation {MAX_GENERATION}, the highest number a generation can have"
    else:
        return
    raise Denial(
        403,
        f"workspace {namespace}/{base} {why}, so the fresh workspace {run} asks for is not made; stop what "
        f"creates the runs, raise the setting if this rate is routine, or delete generations no longer needed "
        f"(`agent-workspace-webhook workspaces -n {namespace}` lists them; a Retain class keeps their volumes)",
    )


def announce_fresh(target: Target, base: str, number: int, current: Generation | None) -> str:
    """The warning a fresh CodeRun is admitted with."""
    name = generation_name(base, number)
    kept = f"; generation {current.number} ({current.pvc}) is kept" if current is not None else ""
    verb = "would make" if target.dry_run else "makes"
    return (
        f"fresh workspace requested: its first Pod {verb} generation {number} of the workspace, "
        f"PersistentVolumeClaim {target.namespace}/{name}, empty{kept}"
    )


async def fresh_runs_waiting(
    workspace: Workspace, generations: list[Generation], target: Target, ctx: Context
) -> list[FreshRun]:
    """The fresh CodeRuns of this workspace that still await their new generation."""
    namespace = target.namespace
    runs = ctx.store.fresh_runs_now(namespace)
    if runs is None:
        reading = f"reading the CodeRuns of namespace {namespace} that ask for a fresh workspace"
        runs = await within(target, reading, ctx.store.fresh_runs(namespace))
    waiting = []
    for run in runs:
        try:
            same = decide(run.facts, ctx).pvc == workspace.pvc
        except NamingError:
            continue  # its own admission was denied for that
        if same and awaits_fresh_generation(run, generations):
            waiting.append(run)
    return waiting


async def fresh_run_of_pod(
    workspace: Workspace, generations: list[Generation], target: Target, ctx: Context
) -> FreshRun | None:
    """The fresh CodeRun this Pod runs for, if it still awaits its new generation; else None."""
    waiting = await fresh_runs_waiting(workspace, generations, target, ctx)
    if not waiting:
        return None
    looking = f"looking up the Job that owns {target.who}"
    try:
        owner = await within(target, looking, owning_run(target, ctx, verified=True, read_run=False))
    except Denial:  # a forged or missing Job: not the fresh run's Pod
        return None
    return next((run for run in waiting if owner is not None and run.uid == owner.uid), None)
