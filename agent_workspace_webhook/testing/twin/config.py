"""The twin's settings: the platform controller's configuration that changes what it does with
workspaces (5dlabs/cto crates/controller/src/tasks/config.rs, commit 079cc9ed, as its serde
defaults fill a deployed config.yaml), and the twin's own loop timing. Tests may change any
field between runs (`twin.config.storage_class = "workspaces"`): every reconcile reads it anew."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TwinConfig:
    # config.rs StorageConfig: storage.storageClassName (unset: the cluster's default class) and
    # storage.workspaceSize, for the PVCs ensure_pvc_exists creates.
    storage_class: str | None = None
    workspace_size: str = "10Gi"
    # controller.rs extract_max_retries: what it returns when no *_MAX_RETRIES env key parses (a
    # constant 1 in the code, not a config key); 0 means unlimited.
    max_retries: int = 1
    # resources.rs delete_pvc_if_exists: 30 polls, 1 s apart, for a deleted PVC to go.
    fresh_delete_polls: int = 30
    poll_interval: float = 1.0
    # controller.rs delete_job_with_cascade(wait_for_deletion = true) before a retry: 2 s.
    retry_delete_wait: float = 2.0
    # config.rs CleanupConfig (serde defaults): cleanup.enabled, successTTLSeconds,
    # failureTTLSeconds, completedJobDelayMinutes, failedJobDelayMinutes. A delay other than 0
    # only logs (the controller has no timer for it): the Job stays for its own TTL.
    cleanup_enabled: bool = True
    success_ttl_seconds: int = 3600
    failure_ttl_seconds: int = 7200
    completed_job_delay_minutes: int = 5
    failed_job_delay_minutes: int = 60
    # config.rs AgentConfig.agentCliConfigs: githubApp -> its default cliConfig (CRD JSON form),
    # merged into every run's spec before the claim and the Job are computed. Empty by default:
    # the platform's own values live in its Helm values, which the twin does not have.
    agent_cli_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The twin's loop: how often it lists the CodeRuns and their Jobs. A CodeRun is reconciled when
    # it or one of its Jobs changed since its last reconcile (the real controller's watch events),
    # else once `requeue_seconds` have passed (mod.rs requeues after 90 s, or 10 s after a retry).
    resync_seconds: float = 0.5
    requeue_seconds: float = 10.0
    # Every API call's timeout, so that stop() is never held up for long.
    request_timeout: float = 10.0
