"""The platform controller's decisions about one CodeRun that need no API call (pure): the
state of its Job, whether and how often it retries, when its resources are cleaned up.

Follows 5dlabs/cto crates/controller/src/tasks/code/controller.rs (commit 16f243e3) and
crates/controller/src/tasks/cleanup.rs (commit 34d5adfb)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

JobState = Literal["NotFound", "Running", "Completed", "Failed"]

# cleanup.rs: the annotations a run may carry.
ANNOTATION_PRESERVE = "cleanup.cto.dev/preserve"
ANNOTATION_TTL_SECONDS = "cleanup.cto.dev/ttl-seconds"
# controller.rs extract_max_retries: the first of these env keys that parses as a u32 wins.
RETRY_KEYS = (
    "EXECUTION_MAX_RETRIES",
    "FACTORY_MAX_RETRIES",
    "CODEX_MAX_RETRIES",
    "CURSOR_MAX_RETRIES",
    "CLAUDE_MAX_RETRIES",
    "OPENCODE_MAX_RETRIES",
)
_UNSIGNED = re.compile(r"\+?[0-9]+")  # what Rust's u32/u64 `parse` accepts
NEEDS_FIXES = ("needs-fixes", "failed-remediation")


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """chrono's to_rfc3339 (an offset, not `Z`)."""
    return moment.isoformat()


def parse_time(raw: object) -> datetime | None:
    """DateTime::parse_from_rfc3339(...).ok()."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _unsigned(raw: object, bits: int) -> int | None:
    if not isinstance(raw, str) or not _UNSIGNED.fullmatch(raw.strip()):
        return None
    value = int(raw.strip())
    return value if value < 1 << bits else None


def job_state(job: Mapping[str, Any] | None) -> JobState:
    """controller.rs check_code_job_state / determine_code_job_state: conditions first, then the
    counters; a Job with no status (or none of these) counts as Running."""
    if job is None:
        return "NotFound"
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Complete" and condition.get("status") == "True":
            return "Completed"
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return "Failed"
    if (status.get("succeeded") or 0) > 0:
        return "Completed"
    if (status.get("failed") or 0) > 0:
        return "Failed"
    return "Running"


def max_retries(spec: Mapping[str, Any], default: int = 1) -> int:
    """controller.rs extract_max_retries: from spec.env, else 1 (`default`); 0 means unlimited."""
    env = spec.get("env") or {}
    for key in RETRY_KEYS:
        parsed = _unsigned(env.get(key), 32)
        if parsed is not None:
            return parsed
    return default


def retry_reason(coderun: Mapping[str, Any]) -> str | None:
    """controller.rs determine_retry_reason for a completed Job, by the `workflow-stage` label."""
    status = coderun.get("status")
    if not isinstance(status, Mapping):
        return None
    stage = (coderun.get("metadata", {}).get("labels") or {}).get("workflow-stage")
    remediation, qa = status.get("remediationStatus"), status.get("qaStatus")
    if stage == "implementation":
        if remediation in NEEDS_FIXES:
            return "Implementation agent requested fixes"
        pr = status.get("pullRequestUrl")
        if not (isinstance(pr, str) and pr.strip() not in ("", "no-pr")):
            return "Implementation attempt did not produce a pull request"
    elif stage in ("quality", "testing"):
        if qa == "changes_requested":
            return "Quality review requested changes" if stage == "quality" else "Testing agent requested changes"
        if remediation == "needs-fixes" or (stage == "testing" and remediation == "failed-remediation"):
            return f"{stage.capitalize()} workflow reported remediation needed"
    elif stage == "security" and remediation in NEEDS_FIXES:
        return "Security workflow reported critical issues"
    return None


def manual_intervention(coderun: Mapping[str, Any]) -> str | None:
    """controller.rs, Completed: the failure message when the agent asked for manual fixes."""
    status = coderun.get("status") or {}
    remediation = status.get("remediationStatus")
    if remediation not in NEEDS_FIXES:
        return None
    message = status.get("message")
    detail = f": {message}" if isinstance(message, str) and message else ""
    return f"Implementation agent requested manual intervention ({remediation}){detail}"


def lacks_required_pr(coderun: Mapping[str, Any]) -> bool:
    """controller.rs, Completed: a `code` run of an implementation stage must report a PR URL."""
    spec, labels = coderun.get("spec", {}), coderun.get("metadata", {}).get("labels") or {}
    implementation = spec.get("runType", "implementation") == "code" and labels.get("stage") in (
        "implementation",
        "frontend",
        None,
    )
    pr = (coderun.get("status") or {}).get("pullRequestUrl")
    return implementation and not (isinstance(pr, str) and pr not in ("", "no-pr"))


def has_workflow_owner(coderun: Mapping[str, Any]) -> bool:
    """resources.rs build_job_spec / controller.rs: an ownerReference of kind Workflow (Argo)."""
    return any(ref.get("kind") == "Workflow" for ref in coderun.get("metadata", {}).get("ownerReferences") or [])


def is_preserved(coderun: Mapping[str, Any]) -> bool:
    """cleanup.rs is_preserved: `cleanup.cto.dev/preserve` is `true` in any case."""
    value = (coderun.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_PRESERVE)
    return isinstance(value, str) and value.lower() == "true"


def ttl_override(coderun: Mapping[str, Any]) -> int | None:
    """cleanup.rs ttl_override_seconds: `cleanup.cto.dev/ttl-seconds` as a u64."""
    return _unsigned((coderun.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_TTL_SECONDS), 64)


def cleanup_deadline(
    coderun: Mapping[str, Any], phase: str, finished: datetime, *, enabled: bool, success_ttl: int, failure_ttl: int
) -> datetime | None:
    """controller.rs compute_cleanup_deadline: finishedAt + TTL, unless cleanup is off, the run
    is preserved, an expireAt is already set, or the TTL is 0."""
    if not enabled or phase not in ("Succeeded", "Failed") or is_preserved(coderun):
        return None
    if (coderun.get("status") or {}).get("expireAt") is not None:
        return None
    ttl = ttl_override(coderun)
    if ttl is None:
        ttl = success_ttl if phase == "Succeeded" else failure_ttl
    return None if ttl == 0 else finished + timedelta(seconds=ttl)


def ttl_cleanup_due(coderun: Mapping[str, Any], *, enabled: bool, at: datetime) -> bool | None:
    """controller.rs try_cleanup_after_ttl: None when it does not apply (the reconcile goes on),
    False while the deadline is ahead (it requeues, nothing else happens: a deleted run waits
    for it), True when the cleanup is due now."""
    status = coderun.get("status")
    if not enabled or is_preserved(coderun) or not isinstance(status, Mapping):
        return None
    if status.get("cleanupCompletedAt") is not None or status.get("phase") not in ("Succeeded", "Failed"):
        return None
    deadline = parse_time(status.get("expireAt"))
    if deadline is None:
        return None
    return deadline <= at
