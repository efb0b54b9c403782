"""Which workspace claim the platform's controller gives a CodeRun, and the other per-run facts
it derives from the spec (pure: no Kubernetes client).

Follows 5dlabs/cto crates/controller/src/tasks/code/agent.rs (AgentClassifier, commit 8d2f2f13)
and resources.rs (commit 039c5220): the claim as reconcile_create_or_update, build_job_spec and
cleanup_workspace_subdir compute it, populate_cli_config_if_needed, sanitize_label_value,
container_name_for_cli and the run's directory (workspace_subdir)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.rules.generations import wants_fresh
from agent_workspace_webhook.rules.workspace import is_healer_run

__all__ = [
    "HEALER_PVC",
    "IMPLEMENTATION_AGENTS",
    "agent_pvc_name",
    "claim_for_spec",
    "container_name_for_cli",
    "extract_agent_name",
    "merged_spec",
    "run_dir",
    "run_subdir",
    "sanitize_label_value",
    "wants_fresh",
]

# agent.rs AGENT_NAME_REGEX, applied with `captures` (unanchored: the leftmost match anywhere).
# Python's \w and Rust's Unicode \w differ only on marks and a few non-ASCII characters, and any
# non-ASCII agent fails the name check below either way.
AGENT_PATTERN = re.compile(r"5dlabs[_-]?(\w+)(?:\[bot\])?", re.IGNORECASE)
# agent.rs AgentClassifier::new: the implementation agents, which share workspace-{service}.
IMPLEMENTATION_AGENTS = frozenset({"rex", "blaze", "vex"})
# agent.rs get_healer_pvc_name: one ArgoCD-managed PVC for every healer run, whatever its service.
HEALER_PVC = "healer-workspace"
PREFIX = "workspace-"
MAX_NAME = 63


def _valid_name(name: str) -> bool:
    """agent.rs validate_k8s_name: 1..63 ASCII lower-case letters, digits and inner `-`."""
    allowed = all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in name)
    return 0 < len(name) <= MAX_NAME and allowed and not name.startswith("-") and not name.endswith("-")


def extract_agent_name(app: str) -> str | None:
    """agent.rs extract_agent_name: the regex's group, lower-cased and checked; None for Err
    (`5DLabs-Code-Reviewer` -> `code`, `5DLabs_Tess` -> `tess`, `5DLabs__Tess` -> None)."""
    found = AGENT_PATTERN.search(app)
    if found is None:
        return None
    agent = found.group(1).lower()
    return agent if _valid_name(agent) else None


def agent_pvc_name(service: str, app: str) -> str | None:
    """agent.rs get_pvc_name: workspace-{service} for an implementation agent, else
    workspace-{service}-{agent}; past 63 the service is cut (isolated) or the whole name (shared),
    not hashed. None when the agent cannot be extracted (the caller falls back)."""
    agent = extract_agent_name(app)
    if agent is None:
        return None
    shared = agent in IMPLEMENTATION_AGENTS
    name = f"{PREFIX}{service}" if shared else f"{PREFIX}{service}-{agent}"
    if len(name.encode()) <= MAX_NAME:
        return name
    if shared:
        return name[:MAX_NAME]
    room = max(MAX_NAME - len(PREFIX) - len(agent) - 1, 0)  # saturating_sub: may still be > 63
    return f"{PREFIX}{service[:room]}-{agent}"


def claim_for_spec(spec: Mapping[str, Any]) -> str:
    """resources.rs reconcile_create_or_update / build_job_spec / cleanup_workspace_subdir: the
    claim for a spec (the caller chooses merged or not): healer-workspace for a healer run, else
    the agent's, falling back to workspace-{service} (no githubApp, or an agent it cannot read)."""
    service = str(spec.get("service", ""))
    if is_healer_run(spec):
        return HEALER_PVC
    app = spec.get("githubApp")
    if isinstance(app, str):
        return agent_pvc_name(service, app) or f"{PREFIX}{service}"
    return f"{PREFIX}{service}"


def merged_spec(spec: Mapping[str, Any], agent_cli_configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """resources.rs populate_cli_config_if_needed + merge_cli_config: the agent's default CLI
    config (controller config agent.agentCliConfigs, keyed by the exact githubApp) fills what the
    spec leaves out. apply_cli_provider (settings.provider/modelProvider) is not modelled: it
    changes neither the claim nor the names."""
    merged = copy.deepcopy(dict(spec))
    app = merged.get("githubApp")
    defaults = agent_cli_configs.get(app) if isinstance(app, str) else None
    if defaults is None:
        return merged
    existing = merged.get("cliConfig")
    if not isinstance(existing, dict):
        merged["cliConfig"] = copy.deepcopy(dict(defaults))
        return merged
    if not str(existing.get("model", "")).strip():
        existing["model"] = defaults.get("model", "")
    for key in ("maxTokens", "temperature", "modelRotation", "provider", "providerBaseUrl", "apiKeyEnvVar"):
        if existing.get(key) is None and defaults.get(key) is not None:
            existing[key] = copy.deepcopy(defaults[key])
    settings = existing.setdefault("settings", {})
    for key, value in (defaults.get("settings") or {}).items():
        settings.setdefault(key, copy.deepcopy(value))
    return merged


def run_subdir(coderun: Mapping[str, Any]) -> str:
    """resources.rs workspace_subdir: `runs/{name}-{uid[:8]}`, one per CodeRun (kept across its
    retries), `nouid` without a uid."""
    metadata = coderun.get("metadata", {})
    uid = metadata.get("uid") or "nouid"
    return f"runs/{metadata.get('name', '')}-{uid[:8]}"


def run_dir(coderun: Mapping[str, Any]) -> str:
    """The run's directory as the Job sees it: workingDir and WORKSPACE_DIR."""
    return f"/workspace/{run_subdir(coderun)}"


def sanitize_label_value(text: str) -> str:
    """resources.rs sanitize_label_value: lower-case, spaces and `_` to `-`, only alphanumerics,
    `-`, `_`, `.`, trimmed to alphanumerics at both ends, cut to 63 and back to an alphanumeric."""
    if not text:
        return ""
    kept = "".join(c for c in text.lower().replace(" ", "-").replace("_", "-") if c.isalnum() or c in "-_.")
    ends = [i for i, c in enumerate(kept) if c.isalnum()]
    start, end = (ends[0], ends[-1]) if ends else (0, len(kept) - 1)
    if start <= end:
        kept = kept[start : end + 1]
    if len(kept) > MAX_NAME:
        kept = kept[:MAX_NAME]
        last = max((i for i, c in enumerate(kept) if c.isalnum()), default=None)
        if last is not None:
            kept = kept[: last + 1]
    return kept


def container_name_for_cli(cli: str, model: str) -> str:
    """resources.rs container_name_for_cli: `{cli}-{model}` in [a-z0-9-], dashes collapsed, at
    most 58 (so that the Datadog annotation key fits 63)."""
    name = cli
    if model.strip():
        mapped = "".join(
            c if ("a" <= c <= "z" or "0" <= c <= "9") else c.lower() if "A" <= c <= "Z" else "-" for c in model
        )
        if mapped.strip("-"):
            name += "-" + mapped.strip("-")
    final = "-".join(part for part in name.split("-") if part) or cli
    if len(final) > 58:
        final = final[:58].rstrip("-")
    return final or "cli"
