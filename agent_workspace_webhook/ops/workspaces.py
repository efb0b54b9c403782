"""The `workspaces` report: the history of each workspace (its generations, the current one
starred, and the Released volumes it left; which agent, made from what, Bound or being deleted,
which Pods mount it now, how many CodeRuns name it), the legacy shared ones with the agents
cloned from them, and the webhook's workspaces that no run names (pure functions over PVC, PV,
Pod and CodeRun objects as the API returns them)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_workspace_webhook.ops.history import histories
from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE
from agent_workspace_webhook.rules.workspace import PREFIX, legacy_pvc_name


@dataclass(frozen=True)
class Row:
    namespace: str
    service: str
    agent: str
    generation: str  # "2*": the current one is starred
    pvc: str  # a Released volume: the PVC it was bound to
    state: str  # Bound, Pending, "Bound, being deleted", "Released (pv-...)"
    size: str
    made_from: str  # clone of X, fresh for CodeRun ns/x, restore of ..., "-" (empty); or "not the webhook"
    cloned_from: str  # "-" when not a clone
    mounted_by: tuple[str, ...]  # Pods (not finished) that mount it now
    age: str
    legacy: bool  # the shared workspace-{service}, whichever agent's run created it
    # The CodeRuns that name the workspace, any generation of it (the annotation their admission
    # wrote); None when the CodeRuns could not be listed.
    runs: tuple[str, ...] | None = None
    ours: bool = False  # made by the webhook
    workspace: str = ""  # the name of its generation 1: what groups a workspace's rows


def age(created: str | None, now: datetime.datetime) -> str:
    if not created:
        return "?"
    seconds = int((now - datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def mounts(pods: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(namespace, PVC) -> the names of the Pods, not finished, whose volumes claim it."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        metadata = pod.get("metadata") or {}
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                found[(metadata.get("namespace", ""), claim)].append(metadata.get("name", "?"))
    return found


def named_by(coderuns: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(namespace, PVC) -> the names of the CodeRuns whose admission recorded that workspace."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for run in coderuns:
        metadata = run.get("metadata") or {}
        pvc = (metadata.get("annotations") or {}).get(ANNOTATION_WORKSPACE)
        if isinstance(pvc, str):
            found[(metadata.get("namespace", ""), pvc)].append(metadata.get("name", "?"))
    return found


def rows(
    pvcs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]] = (),
    pvs: Iterable[Mapping[str, Any]] = (),
    now: datetime.datetime | None = None,
    coderuns: Iterable[Mapping[str, Any]] | None = None,
) -> list[Row]:
    """Every generation of each workspace and its retained copies (Released volumes), the current
    generation starred; PVCs the webhook labelled, and any other `workspace-*` (legacy). With
    `coderuns`, each row says which of them name its workspace."""
    now = now or datetime.datetime.now(datetime.UTC)
    names = named_by(coderuns) if coderuns is not None else None
    found = []
    for (namespace, workspace), copies in histories(pvcs, pvs, mounts(pods)).items():
        service = next((c.service for c in copies if c.service), workspace.removeprefix(PREFIX))
        agent = next((c.agent for c in copies if c.agent), "-")
        legacy = workspace == legacy_pvc_name(service)
        runs = None
        if names is not None:
            runs = tuple(
                sorted({r for pvc in {workspace, *(c.pvc for c in copies)} for r in names.get((namespace, pvc), ())})
            )
        found += [
            Row(
                namespace=namespace,
                service=service,
                agent="-" if legacy else agent,
                generation=f"{copy.generation}{'*' if copy.current else ''}",
                pvc=copy.pvc,
                state=f"Released ({copy.pv})" if copy.released else copy.state,
                size=copy.size,
                made_from=copy.made_from,
                cloned_from=copy.cloned_from or "-",
                mounted_by=copy.mounted_by,
                age=age(copy.created or None, now),
                legacy=legacy,
                runs=runs,
                ours=copy.ours,
                workspace=workspace,
            )
            for copy in copies
        ]
    return sorted(found, key=lambda r: (r.namespace, r.service, r.legacy, r.agent))


def table(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(out)


def report(found: Sequence[Row]) -> str:
    if not found:
        return "no workspace PVCs found"
    headers = (
        "NAMESPACE",
        "SERVICE",
        "AGENT",
        "GEN",
        "PVC",
        "STATE",
        "SIZE",
        "MADE FROM",
        "MOUNTED BY",
        "RUNS",
        "AGE",
        "LEGACY",
    )
    text = table(
        headers,
        [
            (
                r.namespace,
                r.service,
                r.agent,
                r.generation,
                r.pvc,
                r.state,
                r.size,
                r.made_from,
                ",".join(r.mounted_by) or "-",
                "?" if r.runs is None else str(len(r.runs)),
                r.age,
                "yes" if r.legacy else "no",
            )
            for r in found
        ],
    )
    text += (
        "\n\n* the current generation: where the agent's next run goes. Older generations and Released "
        "volumes are its earlier lives: `workspaces restore` brings one back, `workspaces prune` removes the oldest."
    )
    text += _unnamed(found)
    legacy = [r for r in found if r.legacy]
    if legacy:
        lines = []
        for shared in legacy:
            if shared.state.startswith("Released"):
                continue
            clones = sorted({r.agent for r in found if r.namespace == shared.namespace and r.cloned_from == shared.pvc})
            seeded = f"cloned into: {', '.join(clones)}" if clones else "no agent workspace cloned from it"
            lines.append(f"  {shared.namespace}/{shared.pvc}: {seeded}")
        text += (
            f"\n\n{len(legacy)} legacy shared workspace(s) still exist:\n"
            + "\n".join(lines)
            + "\nThe webhook never deletes them; once every agent of the service has its own workspace "
            "(WEBHOOK_SEED_FROM_LEGACY=clone carries the context over), an operator may remove them."
        )
    return text


def unnamed(found: Sequence[Row]) -> list[Row]:
    """The current generation of each workspace the webhook made that no CodeRun names and no Pod
    mounts (in any generation): an admission that failed after the PVC was made (its `pvc
    created` log line has no admission line after it), or runs since deleted."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in found:
        groups[(r.namespace, r.workspace)].append(r)
    return [
        r
        for group in groups.values()
        if not any(g.runs or g.mounted_by or g.runs is None or g.legacy for g in group)
        for r in group
        if r.generation.endswith("*") and r.ours
    ]


def _unnamed(found: Sequence[Row]) -> str:
    if any(r.runs is None for r in found):
        return "\n\nRUNS ?: the CodeRuns could not be listed, so which workspaces no run names is unknown."
    lonely = unnamed(found)
    if not lonely:
        return ""
    listed = "\n".join(f"  {r.namespace}/{r.pvc}" for r in lonely)
    return (
        f"\n\n{len(lonely)} workspace(s) made by the webhook that no CodeRun names and no Pod mounts:\n{listed}\n"
        "Either an admission failed after its PVC was made (the webhook's log has the `pvc created` line, and no "
        "admission line after it), or its runs were deleted. The webhook never deletes a workspace: remove it if "
        "no run will need it."
    )
