"""Provisioning, the step Pods and CodeRuns share: decide the workspace from the run's facts,
then find its PVC (denying one being deleted) or create it, empty or as a clone of the
service's legacy workspace."""

from __future__ import annotations

from dataclasses import dataclass

from agent_workspace_webhook.admission.context import Context, Denial, Target, within
from agent_workspace_webhook.kube.store import PvcAction
from agent_workspace_webhook.rules.agents import AgentError, extract_agent
from agent_workspace_webhook.rules.facts import RunFacts
from agent_workspace_webhook.rules.labels import plain_pvc_labels, workspace_labels
from agent_workspace_webhook.rules.names import DNS1123_LABEL, is_dns1123_label, quote
from agent_workspace_webhook.rules.pvc import Clone, PvcState, clone_problem, pvc_manifest
from agent_workspace_webhook.rules.workspace import (
    NamingError,
    Workspace,
    choose_workspace,
    legacy_pvc_name,
    validate_service,
)


@dataclass(frozen=True)
class Provisioned:
    """The outcome of the shared provisioning step: which PVC the run mounts, and what was done."""

    service: str
    agent: str | None
    pvc: str
    action: PvcAction
    warnings: tuple[str, ...]
    access_modes: tuple[str, ...] = ()  # the PVC's: ReadWriteOnce makes its Pods share a node
    cloned_from: str | None = None


async def provision(facts: RunFacts, target: Target, ctx: Context) -> Provisioned:
    """The step both kinds share: which workspace the facts give, and make sure its PVC exists
    (created empty or as a clone of the legacy workspace), never handing out a dying one."""
    workspace = decide(facts, ctx)
    warnings = [*facts.warnings, *workspace.warnings]
    namespace, service, agent = target.namespace, workspace.service, workspace.agent
    for name in (workspace.prefer_existing, workspace.pvc):
        if name is None:
            continue
        state = await within(
            target, f"reading PersistentVolumeClaim {namespace}/{name}", ctx.store.get_pvc(namespace, name)
        )
        if state is not None:
            _deny_if_dying(target.namespace, name, state)
            return Provisioned(service, agent, name, "exists", tuple(warnings), state.access_modes)
    clone = await _clone_source(workspace, target, ctx, warnings)
    labels = {**plain_pvc_labels(service, agent), **workspace_labels(service, agent, workspace.pvc)}
    manifest = pvc_manifest(workspace.pvc, namespace, labels, ctx.pvc_spec, clone)
    creating = f"creating PersistentVolumeClaim {namespace}/{workspace.pvc}"
    action = await within(target, creating, ctx.store.create_pvc(manifest, dry_run=target.dry_run))
    source = clone.source if clone is not None else None
    if action == "would-create":
        how = f" as a clone of {source}" if source else ""
        warnings.append(
            f"dry run: PersistentVolumeClaim {namespace}/{workspace.pvc} does not exist and would be created{how}"
        )
    modes = tuple(manifest["spec"]["accessModes"])
    return Provisioned(service, agent, workspace.pvc, action, tuple(warnings), modes, source)


async def _clone_source(workspace: Workspace, target: Target, ctx: Context, warnings: list[str]) -> Clone | None:
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


def _deny_if_dying(namespace: str, pvc: str, state: PvcState) -> None:
    """A workspace being deleted cannot be mounted (the Pod would stay Pending, then for good
    once the PVC is gone): deny, and the Job controller's retry gets a fresh one later."""
    if not state.deleting:
        return
    held = ", still mounted by a Pod (finalizer kubernetes.io/pvc-protection)" if state.protected else ""
    raise Denial(
        409,
        f"its workspace PersistentVolumeClaim {namespace}/{pvc} is being deleted{held}; "
        "the run will be admitted with a fresh workspace once it is gone (a Job's retries do that by "
        "themselves); delete the Pods that still mount it to speed that up",
    )


def decide(facts: RunFacts, ctx: Context) -> Workspace:
    """Which workspace these facts give; NamingError where the rules deny."""
    if facts.service is None:
        raise NamingError(f"{facts.service_field} is missing; set it to the service name, for example 'cto'")
    service = validate_service(facts.service, facts.service_field)
    agent: str | None = None
    problem: str | None = None
    if facts.agent is not None:  # a bare agent name: nothing to look up, only to check
        if is_dns1123_label(facts.agent):
            agent = facts.agent
        else:
            problem = (
                f"{facts.app_field} is {quote(facts.agent)}, which is not a DNS-1123 label ({DNS1123_LABEL}); "
                "set it to the agent's name, for example 'rex'"
            )
    elif facts.app is None:
        problem = f"{facts.app_field} is missing; set it to the run's GitHub App, for example '5DLabs-Rex'"
    else:
        try:
            agent = extract_agent(facts.app, ctx.rules)
        except AgentError as exc:
            problem = (
                f"{facts.app_field}: {exc}; set it to one of the GitHub Apps in agent_table, for example '5DLabs-Rex'"
            )
    return choose_workspace(service, agent, problem, ctx.policy)
