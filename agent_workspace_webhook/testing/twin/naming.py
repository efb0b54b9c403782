"""The names the platform's controller gives a CodeRun's Jobs (pure): its Job and its workspace
cleanup Job, as 5dlabs/cto crates/controller/src/tasks/code/naming.rs (ResourceNaming) computes
them, byte for byte, with the CLI and provider names of crates/controller/src/cli/types.rs.

Lengths are counted in bytes as Rust's `str::len` does; a model or service name with non-ASCII
characters would make the controller panic on a byte slice, which the twin does not reproduce."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_NAME = 63  # naming.rs MAX_K8S_NAME_LENGTH
CLEANUP_SUFFIX = "-workspace-cleanup"  # naming.rs WORKSPACE_CLEANUP_JOB_SUFFIX

# cli/types.rs CLIType::from_str_ci: accepted spellings -> the name Display prints.
CLI_TYPES = {
    "": "claude", "claude": "claude", "code": "code", "every-code": "code", "everycode": "code",
    "codex": "codex", "dexter": "dexter", "opencode": "opencode", "open-code": "opencode",
    "cursor": "cursor", "factory": "factory", "copilot": "copilot", "github-copilot": "copilot",
    "kimi": "kimi", "kimi-cli": "kimi", "openhands": "openhands", "open-hands": "openhands",
    "grok": "grok", "gemini": "gemini", "qwen": "qwen", "minimax": "minimax", "mini-max": "minimax",
}  # fmt: skip
# cli/types.rs Provider::from_str_ci, likewise.
PROVIDERS = {
    "fireworks": "fireworks", "fireworks-ai": "fireworks", "anthropic": "anthropic",
    "google": "google", "gemini": "google", "openai": "openai", "cursor": "cursor",
    "factory": "factory", "droid": "factory", "moonshot": "moonshot", "kimi": "moonshot",
}  # fmt: skip


class SpecError(ValueError):
    """A CodeRun the controller could not even deserialize (an unknown cliType or provider): its
    watcher reports the object and never reconciles it."""


def cli_type(spec: Mapping[str, Any]) -> str | None:
    """The spec's CLI type as the controller prints it; None without a cliConfig."""
    config = spec.get("cliConfig")
    if not isinstance(config, Mapping):
        return None
    raw = str(config.get("cliType", ""))
    if raw.strip().lower() not in CLI_TYPES:
        raise SpecError(f"unknown cliType {raw!r}")
    return CLI_TYPES[raw.strip().lower()]


def provider(spec: Mapping[str, Any]) -> str | None:
    """cliConfig.provider as the controller prints it; None when unset."""
    config = spec.get("cliConfig")
    raw = config.get("provider") if isinstance(config, Mapping) else None
    if raw is None:
        return None
    if str(raw).strip().lower() not in PROVIDERS:
        raise SpecError(f"unknown provider {raw!r}")
    return PROVIDERS[str(raw).strip().lower()]


def _blen(text: str) -> int:
    return len(text.encode())


def ensure_length(name: str, limit: int) -> str:
    """naming.rs ensure_k8s_name_length: keep pr, task, the third part, uid and version."""
    if _blen(name) <= limit:
        return name
    parts = name.split("-")
    if len(parts) < 5:
        return name[:limit]
    pr = parts[0] if parts[0].startswith("pr") else None
    task_at = 1 if pr else 0
    task, agent = parts[task_at], parts[task_at + 1]
    suffix = f"{parts[-2]}-{parts[-1]}"
    base = f"{pr}-{task}-{agent}-{suffix}" if pr else f"{task}-{agent}-{suffix}"
    if _blen(base) <= limit:
        return base
    return (f"{pr}-{task}-{suffix}" if pr else f"{task}-{suffix}")[:limit]


def shorten_model(model: str) -> str:
    """naming.rs shorten_model_name: no date suffix, no path, dots to dashes, at most 20."""
    lower = model.lower()
    head, dash, tail = lower.rpartition("-")
    stripped = head if dash and len(tail) == 8 and tail.isascii() and tail.isdigit() else lower
    base = stripped.rsplit("/", 1)[-1]
    kept = "".join(c for c in base.replace(".", "-") if c.isalnum() or c == "-")
    result = "-".join(part for part in kept.split("-") if part)
    return result if len(result) <= 20 else result[:20].rstrip("-")


def shorten_cli(cli: str) -> str:
    """naming.rs shorten_cli_name."""
    return "".join(c for c in cli.lower().replace(" ", "-") if c.isalnum() or c == "-")


def shorten_provider(name: str) -> str:
    """naming.rs shorten_provider_name."""
    lower = name.lower().replace("open router", "open-router").replace("openrouter", "open-router")
    return "".join(c for c in lower.replace(" ", "-") if c.isalnum() or c == "-")


def naming_agent(spec: Mapping[str, Any]) -> str:
    """naming.rs: implementationAgent as given, else the githubApp's last `-` part lower-cased
    (its own extract_agent_name, not the classifier's regex), else `default`."""
    implementation = spec.get("implementationAgent")
    if isinstance(implementation, str) and implementation:
        return implementation
    app = spec.get("githubApp")
    return app.split("-")[-1].lower() if isinstance(app, str) else "default"


def _acp_first(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    acp = spec.get("acp")
    return acp[0] if isinstance(acp, list) and acp and isinstance(acp[0], Mapping) else None


def _cli_readable(spec: Mapping[str, Any]) -> str:
    """naming.rs extract_cli_readable: the first ACP entry's CLI, else cliConfig's, else unknown."""
    first = _acp_first(spec)
    if first is not None:
        return shorten_cli(str(first.get("cli", "")))
    cli = cli_type(spec)
    return "unknown" if cli is None else shorten_cli(cli)


def _provider_readable(spec: Mapping[str, Any]) -> str:
    """naming.rs extract_provider_readable. It reads the first ACP entry's `provider.name`, which
    the newest stored CRD spells `providers[]`: the twin takes either (the plural is inferred)."""
    first = _acp_first(spec)
    if first is not None:
        single, many = first.get("provider"), first.get("providers")
        entry = single if isinstance(single, Mapping) else many[0] if isinstance(many, list) and many else {}
        return shorten_provider(str(entry.get("name", "")))
    chosen = provider(spec)
    return "default" if chosen is None else shorten_provider(chosen)


def pr_number(coderun: Mapping[str, Any]) -> str | None:
    """The `pr-number` label, else a non-empty, non-zero env PR_NUMBER."""
    labels = coderun.get("metadata", {}).get("labels") or {}
    if "pr-number" in labels:
        return str(labels["pr-number"])
    env = coderun.get("spec", {}).get("env") or {}
    value = env.get("PR_NUMBER")
    return value if isinstance(value, str) and value not in ("", "0") else None


def job_name(coderun: Mapping[str, Any]) -> str:
    """naming.rs ResourceNaming::job_name for a stored CodeRun (its uid given)."""
    metadata, spec = coderun.get("metadata", {}), coderun.get("spec", {})
    labels = metadata.get("labels") or {}
    uid = metadata.get("uid")
    uid8 = uid[:8] if isinstance(uid, str) else "unknown"
    task, version = spec.get("taskId") or 0, spec.get("contextVersion", 1)
    pr, agent, model = pr_number(coderun), naming_agent(spec), shorten_model(str(spec.get("model", "")))
    run_type, service = spec.get("runType", "implementation"), str(spec.get("service", ""))
    if run_type in ("review", "remediate"):
        base = f"pr{pr}-{agent}-{model}-{uid8}-v{version}" if pr else f"{agent}-{model}-{uid8}-v{version}"
        return _prefixed(f"{run_type}-", base)
    if run_type == "intake":
        cli = cli_type(spec) or "unknown"
        return _prefixed("intake-", f"t{task}-{agent}-{cli}-{uid8}-v{version}")
    if run_type == "play":
        return _prefixed("play-", f"{service}-{uid8}-v{version}")
    settings = (spec.get("cliConfig") or {}).get("settings") or {}
    raw_template = settings.get("template")
    template = raw_template if isinstance(raw_template, str) else ""
    heal_label = labels.get("agents.platform/type") == "heal-remediation"
    if heal_label or template.lower().startswith("heal/") or service.lower() == "heal":
        return _prefixed("heal-remediation-", f"t{task}-{agent}-{uid8}-v{version}")
    task_type = labels.get("task-type")
    if isinstance(task_type, str) and task_type.startswith("mcp-server-"):
        key = labels.get("mcp-server-key", "unknown")
        return _prefixed("mcp-", f"{task_type.removeprefix('mcp-server-')}-{key}-{uid8}-v{version}")
    if template.startswith("watch/") or "watch" in service.lower():
        prefix = "remediation-" if settings.get("watchRole") == "remediation" else "monitor-"
        return _prefixed(prefix, f"t{task}-{agent}-{uid8}-v{version}")
    tail = f"t{task}-{_cli_readable(spec)}-{model}-{_provider_readable(spec)}-{uid8}-v{version}"
    return ensure_length(f"pr{pr}-{tail}" if pr else tail, MAX_NAME)  # no prefix any more


def _prefixed(prefix: str, base: str) -> str:
    return prefix + ensure_length(base, MAX_NAME - len(prefix))


def cleanup_job_name(coderun: Mapping[str, Any]) -> str:
    """naming.rs cleanup_job_name: the Job name and `-workspace-cleanup`, hashed when too long."""
    base = job_name(coderun)
    room = MAX_NAME - len(CLEANUP_SUFFIX)
    if _blen(base) <= room:
        return base + CLEANUP_SUFFIX
    digest = rust_default_hash_hex(base)[:8]
    prefix = base[: room - len(digest) - 1].rstrip("-")
    return f"{prefix}-{digest}{CLEANUP_SUFFIX}" if prefix else f"{digest}{CLEANUP_SUFFIX}"


_MASK = (1 << 64) - 1


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _sip_round(v: list[int]) -> None:
    v[0] = (v[0] + v[1]) & _MASK
    v[1] = _rotl(v[1], 13) ^ v[0]
    v[0] = _rotl(v[0], 32)
    v[2] = (v[2] + v[3]) & _MASK
    v[3] = _rotl(v[3], 16) ^ v[2]
    v[0] = (v[0] + v[3]) & _MASK
    v[3] = _rotl(v[3], 21) ^ v[0]
    v[2] = (v[2] + v[1]) & _MASK
    v[1] = _rotl(v[1], 17) ^ v[2]
    v[2] = _rotl(v[2], 32)


def rust_default_hash(text: str) -> int:
    """`text.hash(&mut DefaultHasher::new())`: SipHash-1-3 with zero keys over the UTF-8 bytes
    and the 0xff that Rust's `Hash for str` appends (naming.rs hash_string)."""
    data = text.encode() + b"\xff"
    v = [0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573]
    whole = len(data) - len(data) % 8
    for at in range(0, whole, 8):
        word = int.from_bytes(data[at : at + 8], "little")
        v[3] ^= word
        _sip_round(v)
        v[0] ^= word
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v[3] ^= last
    _sip_round(v)
    v[0] ^= last
    v[2] ^= 0xFF
    for _ in range(3):
        _sip_round(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def rust_default_hash_hex(text: str) -> str:
    """`format!("{:x}", hash)`: lower-case hex without leading zeros."""
    return format(rust_default_hash(text), "x")
