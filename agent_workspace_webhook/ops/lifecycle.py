"""`workspaces restore` and `workspaces prune`, as plans (pure, over the histories of
ops/history.py) that the CLI prints and, when told to, carries out with kube/changes.py.

Restore makes an earlier life current again as a NEW generation, so history only grows and
nothing is overwritten: a clone of an older generation that still exists, or a PVC bound to a
Released volume. Prune removes retained copies beyond the N newest of each workspace, only what
the webhook made, never the current generation or a copy a Pod still mounts; a volume is handed
back to its class to delete (reclaimPolicy Delete), which is what frees the storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_workspace_webhook.ops.history import Copy, retained
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.rules.labels import generation_labels, plain_pvc_labels, workspace_labels
from agent_workspace_webhook.rules.pvc import Clone, PvcSpec, pvc_manifest, pvc_state


class PlanError(ValueError):
    """What was asked cannot be done; the message says why and what can."""


@dataclass(frozen=True)
class Restore:
    manifest: dict[str, Any]  # the new generation's PVC
    volume: str | None  # the Released volume it binds (None: a clone)
    lines: tuple[str, ...]


def restore_plan(
    namespace: str,
    workspace: str,
    service: str,
    agent: str | None,
    copies: Sequence[Copy],
    pvcs: Mapping[str, Mapping[str, Any]],
    spec: PvcSpec,
    *,
    generation: int | None = None,
    released: str | None = None,
) -> Restore:
    """The new generation that brings back generation `generation`, or the Released volume
    `released`, of the workspace whose generation 1 is `workspace`."""
    if not copies:
        raise PlanError(f"workspace {namespace}/{workspace} has no generations and no Released volumes")
    number = max(c.generation for c in copies) + 1
    name = generation_name(workspace, number)
    labels = {**plain_pvc_labels(service, agent), **workspace_labels(service, agent, name)}
    labels.update(generation_labels(number, workspace))
    known = ", ".join(f"{c.generation} ({c.state})" for c in copies)
    if released is None:
        source = next((c for c in copies if c.generation == generation and not c.released), None)
        if source is None:
            raise PlanError(
                f"workspace {namespace}/{workspace} has no generation {generation} to clone (it has: {known}); "
                "a deleted one is restored from its Released volume: --released PV"
            )
        if not source.ours:
            raise PlanError(
                f"{source.pvc} was not made by the webhook (the platform's controller re-makes that name after "
                "deleting it for a fresh run, or someone made it by hand), so it is not generation "
                f"{generation}'s content; a deleted generation is restored from its Released volume: --released PV "
                f"(`agent-workspace-webhook workspaces -n {namespace}` lists them)"
            )
        if source.state != "Bound":
            raise PlanError(f"generation {generation} ({source.pvc}) is {source.state}: only a Bound one can be cloned")
        made_from = f"restore of generation {generation} ({source.pvc})"
        clone = Clone(source.pvc, pvc_state(pvcs[source.pvc]))
        manifest = pvc_manifest(name, namespace, labels, spec, clone, made_from=made_from)
        line = (
            f"create PersistentVolumeClaim {namespace}/{name} (generation {number}) as a clone of {source.pvc} "
            f"(generation {generation}, {source.size})"
        )
        return Restore(manifest, None, (line,))
    volume = next((c for c in copies if c.released and c.pv == released), None)
    if volume is None:
        raise PlanError(
            f"PersistentVolume {released} is not a Released volume of workspace {namespace}/{workspace} "
            f"(its copies: {known})"
        )
    manifest = pvc_manifest(name, namespace, labels, spec, made_from=f"restore of released volume {released}")
    manifest["spec"]["resources"]["requests"]["storage"] = volume.size
    manifest["spec"]["volumeName"] = released
    return Restore(
        manifest,
        released,
        (
            f"create PersistentVolumeClaim {namespace}/{name} (generation {number}) bound to volume {released} "
            f"({volume.size}, once {volume.pvc}, generation {volume.generation})",
            f"point PersistentVolume {released}'s claimRef at {namespace}/{name}",
        ),
    )


def volume_spec(pv: Mapping[str, Any], restore: Restore) -> None:
    """A claim bound to a given volume takes that volume's class and access modes."""
    spec = pv.get("spec") or {}
    restore.manifest["spec"]["accessModes"] = list(spec.get("accessModes") or restore.manifest["spec"]["accessModes"])
    if spec.get("storageClassName"):
        restore.manifest["spec"]["storageClassName"] = spec["storageClassName"]
    else:
        restore.manifest["spec"].pop("storageClassName", None)


@dataclass
class Prune:
    pvcs: list[Copy] = field(default_factory=list)  # older generations: reclaim their volume, delete them
    volumes: list[Copy] = field(default_factory=list)  # Released volumes: reclaim
    kept_mounted: list[Copy] = field(default_factory=list)  # over the limit, but a Pod mounts them

    @property
    def freed(self) -> int:
        return sum(c.bytes for c in (*self.pvcs, *self.volumes))

    def lines(self) -> list[str]:
        out = [f"delete PersistentVolumeClaim {c.namespace}/{c.pvc} (generation {c.generation} of {c.workspace}, "
               f"{c.size}) and its volume {c.pv or '-'}" for c in self.pvcs]  # fmt: skip
        out += [f"delete Released volume {c.pv} ({c.size}; was {c.namespace}/{c.pvc}, generation {c.generation} of "
                f"{c.workspace})" for c in self.volumes]  # fmt: skip
        out += [f"keep {c.namespace}/{c.pvc} (over the limit, but mounted by {', '.join(c.mounted_by)})"
                for c in self.kept_mounted]  # fmt: skip
        return out


def prune_plan(histories: Mapping[tuple[str, str], Sequence[Copy]], keep: int) -> Prune:
    """Per workspace, the retained copies the webhook made beyond the `keep` newest."""
    if keep < 0:
        raise PlanError(f"--keep must be 0 or more, not {keep}")
    plan = Prune()
    for copies in histories.values():
        for copy in retained(c for c in copies if c.ours)[keep:]:
            if copy.mounted_by:
                plan.kept_mounted.append(copy)
            elif copy.released:
                plan.volumes.append(copy)
            else:
                plan.pvcs.append(copy)
    return plan
