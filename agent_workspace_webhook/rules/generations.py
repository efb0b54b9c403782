"""Numbered generations of one workspace (pure): a fresh run starts a new, empty generation and
the previous ones stay to be restored. Their PVC names, which one is current, and whether a
CodeRun asks for a fresh workspace as the platform's controller decides it.

Generation 1 is `workspace-{service}-{agent}` as it always was (every existing PVC keeps
working); generation N > 1 is that name with `-g{N}-{hash}`, where the hash covers the full base
name and N (the rule long names follow), so names stay distinct, valid and at most 63 characters.
Which generation is current is derived from the PVCs that exist (the watch cache), never kept
anywhere: every replica agrees, and a hit costs no API call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.rules.names import MAX_LABEL

LABEL_GENERATION = "agents.platform/generation"
# On a generation made for a fresh run: the uid of the CodeRun it was made for, so that a
# retried or reinvoked admission, or another replica, finds it instead of making another.
ANNOTATION_FRESH_FOR = "agents.platform/fresh-for"
# On every generation the webhook makes: what it was made from (empty, fresh, clone of X, restore of N).
ANNOTATION_MADE_FROM = "agents.platform/made-from"
MAX_GENERATION = 9999  # a bound for labels a caller may have written by hand


def generation_name(base: str, generation: int) -> str:
    """The PVC name of that generation of the workspace whose generation 1 is `base`."""
    if generation < 1 or generation > MAX_GENERATION:
        raise ValueError(f"generation must be 1..{MAX_GENERATION}, not {generation}")
    if generation == 1:
        return base
    digest = hashlib.sha256(f"{base}\0{generation}".encode()).hexdigest()[:6]
    suffix = f"-g{generation}-{digest}"
    return base[: MAX_LABEL - len(suffix)].rstrip("-") + suffix


def generation_of(labels: Mapping[str, str] | None) -> int:
    """A PVC's generation from its label; 1 when it has none (made before generations)."""
    text = (labels or {}).get(LABEL_GENERATION, "1")
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_GENERATION else 1


def current_generation(existing: Mapping[int, bool]) -> int | None:
    """The current generation among those that exist ({generation: being deleted}): the
    highest not being deleted; None when none is usable (none exists, or all are going)."""
    alive = [generation for generation, deleting in existing.items() if not deleting]
    return max(alive) if alive else None


def wants_fresh(spec: Mapping[str, Any]) -> bool:
    """Whether the platform's controller gives this CodeRun a fresh workspace: when
    `freshWorkspace` is true, or unset with `runType: intake` (its should_use_fresh_workspace)."""
    fresh = spec.get("freshWorkspace")
    if isinstance(fresh, bool):
        return fresh
    return fresh is None and spec.get("runType") == "intake"
