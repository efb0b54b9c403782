"""The `workspaces` report: which agent workspaces exist, and which legacy shared ones remain
(pure functions over PVC objects as the API returns them)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_workspace_webhook.rules.labels import LABEL_AGENT, LABEL_SERVICE
from agent_workspace_webhook.rules.workspace import PREFIX


@dataclass(frozen=True)
class Row:
    namespace: str
    service: str
    agent: str
    pvc: str
    phase: str
    size: str
    age: str
    legacy: bool


def age(created: str | None, now: datetime.datetime) -> str:
    if not created:
        return "?"
    seconds = int((now - datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def rows(pvcs: Iterable[Mapping[str, Any]], now: datetime.datetime | None = None) -> list[Row]:
    """Workspace PVCs: the ones the webhook labelled, and any other `workspace-*` (legacy)."""
    now = now or datetime.datetime.now(datetime.UTC)
    found = []
    for pvc in pvcs:
        metadata, spec, status = pvc.get("metadata", {}), pvc.get("spec", {}), pvc.get("status", {})
        name = metadata.get("name", "")
        labels = metadata.get("labels") or {}
        if LABEL_SERVICE not in labels and not name.startswith(PREFIX):
            continue
        agent = labels.get(LABEL_AGENT)
        size = (status.get("capacity") or {}).get("storage") or spec.get("resources", {}).get("requests", {}).get(
            "storage", "?"
        )
        found.append(
            Row(
                namespace=metadata.get("namespace", ""),
                service=labels.get(LABEL_SERVICE) or name.removeprefix(PREFIX),
                agent=agent or "-",
                pvc=name,
                phase=status.get("phase", "?"),
                size=size,
                age=age(metadata.get("creationTimestamp"), now),
                legacy=agent is None,
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
    headers = ("NAMESPACE", "SERVICE", "AGENT", "PVC", "PHASE", "SIZE", "AGE", "LEGACY")
    text = table(
        headers,
        [(r.namespace, r.service, r.agent, r.pvc, r.phase, r.size, r.age, "yes" if r.legacy else "no") for r in found],
    )
    legacy = [r for r in found if r.legacy]
    if legacy:
        names = ", ".join(f"{r.namespace}/{r.pvc}" for r in legacy)
        text += (
            f"\n\n{len(legacy)} legacy shared workspace(s) still exist: {names}. The webhook never deletes "
            "them; once every agent of the service has its own workspace (and any context worth keeping "
            "is copied), an operator may remove them."
        )
    return text
