"""The `workspaces` report: the life of each workspace (which agent, cloned from which PVC, Bound
or being deleted, which Pods mount it now) and the legacy shared ones with the agents cloned
from them (pure functions over PVC and Pod objects as the API returns them)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_workspace_webhook.rules.labels import LABEL_AGENT, LABEL_SERVICE
from agent_workspace_webhook.rules.pvc import pvc_state
from agent_workspace_webhook.rules.workspace import PREFIX, legacy_pvc_name


@dataclass(frozen=True)
class Row:
    namespace: str
    service: str
    agent: str
    pvc: str
    state: str  # Bound, Pending, "Bound, being deleted"
    size: str
    cloned_from: str  # "-" when created empty
    mounted_by: tuple[str, ...]  # Pods (not finished) that mount it now
    age: str
    legacy: bool  # the shared workspace-{service}, whichever agent's run created it


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


def rows(
    pvcs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]] = (), now: datetime.datetime | None = None
) -> list[Row]:
    """Workspace PVCs: the ones the webhook labelled, and any other `workspace-*` (legacy)."""
    now = now or datetime.datetime.now(datetime.UTC)
    mounted = mounts(pods)
    found = []
    for pvc in pvcs:
        metadata, status = pvc.get("metadata", {}), pvc.get("status", {})
        name = metadata.get("name", "")
        labels = metadata.get("labels") or {}
        if LABEL_SERVICE not in labels and not name.startswith(PREFIX):
            continue
        service = labels.get(LABEL_SERVICE) or name.removeprefix(PREFIX)
        legacy = name == legacy_pvc_name(service)
        state = pvc_state(pvc)
        size = (status.get("capacity") or {}).get("storage") or state.storage or "?"
        namespace = metadata.get("namespace", "")
        found.append(
            Row(
                namespace=namespace,
                service=service,
                agent="-" if legacy else labels.get(LABEL_AGENT, "-"),
                pvc=name,
                state=f"{state.phase}, being deleted" if state.deleting else state.phase,
                size=size,
                cloned_from=state.cloned_from or "-",
                mounted_by=tuple(sorted(mounted.get((namespace, name), ()))),
                age=age(metadata.get("creationTimestamp"), now),
                legacy=legacy,
            )
        )
    return sorted(found, key=lambda r: (r.namespace, r.service, r.legacy, r.agent))


def table(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(out)


def report(found: Sequence[Row]) -> str:
    if not found:
        return "no workspace PVCs found"
    headers = ("NAMESPACE", "SERVICE", "AGENT", "PVC", "STATE", "SIZE", "CLONED FROM", "MOUNTED BY", "AGE", "LEGACY")
    text = table(
        headers,
        [
            (
                r.namespace,
                r.service,
                r.agent,
                r.pvc,
                r.state,
                r.size,
                r.cloned_from,
                ",".join(r.mounted_by) or "-",
                r.age,
                "yes" if r.legacy else "no",
            )
            for r in found
        ],
    )
    legacy = [r for r in found if r.legacy]
    if legacy:
        lines = []
        for shared in legacy:
            clones = sorted(r.agent for r in found if r.namespace == shared.namespace and r.cloned_from == shared.pvc)
            seeded = f"cloned into: {', '.join(clones)}" if clones else "no agent workspace cloned from it"
            lines.append(f"  {shared.namespace}/{shared.pvc}: {seeded}")
        text += (
            f"\n\n{len(legacy)} legacy shared workspace(s) still exist:\n"
            + "\n".join(lines)
            + "\nThe webhook never deletes them; once every agent of the service has its own workspace "
            "(WEBHOOK_SEED_FROM_LEGACY=clone carries the context over), an operator may remove them."
        )
    return text
