"""One reconcile of one CodeRun, as the platform's controller does it, against a real API server
(the official client, plain dicts). Follows 5dlabs/cto crates/controller/src/tasks/code/
controller.rs (commit 16f243e3: reconcile_code_run, reconcile_code_create_or_update,
schedule_retry, try_cleanup_after_ttl, update_code_status_with_completion), resources.rs (commit
039c5220: reconcile_create_or_update, delete_pvc_if_exists, ensure_pvc_exists, create_job,
cleanup_resources), status.rs (commit 077089cf: update_job_started) and kube-rs's `finalizer`.

Every call is made in the reconciler's namespace (the controller's ctx.namespace), and every
error the controller propagates with `?` propagates here: the caller logs it and, as the
controller's error policy, does not retry until the CodeRun or one of its Jobs changes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from agent_workspace_webhook.testing.twin import decisions
from agent_workspace_webhook.testing.twin.api import GROUP, PLURAL, VERSION
from agent_workspace_webhook.testing.twin.naming import job_name
from agent_workspace_webhook.testing.twin.resources import Resources

log = logging.getLogger("agent_workspace_webhook.testing.twin")

FINALIZER = "coderuns.orchestrator.io/finalizer"  # tasks/types.rs CODE_FINALIZER_NAME
Expire = datetime | Literal["keep", "clear"]  # controller.rs ExpireAtUpdate


class Reconciler(Resources):
    """The controller's reconcile for the CodeRuns of one namespace."""

    # controller.rs reconcile_code_run: the TTL cleanup first, then kube-rs's `finalizer`.
    def reconcile(self, coderun: dict[str, Any]) -> None:
        if self._ttl_cleanup(coderun):
            return
        metadata = coderun["metadata"]
        finalizers: list[str] = metadata.get("finalizers") or []
        deleting = metadata.get("deletionTimestamp") is not None
        if FINALIZER in finalizers and not deleting:
            self._apply(coderun)
        elif FINALIZER in finalizers:
            self._cleanup(coderun)  # a failure keeps the finalizer: the CodeRun stays
            at = f"/metadata/finalizers/{finalizers.index(FINALIZER)}"
            self._json_patch(
                metadata["name"], [{"op": "test", "path": at, "value": FINALIZER}, {"op": "remove", "path": at}]
            )
        elif not deleting:  # add it and stop: the patch itself brings the next reconcile
            path = "/metadata/finalizers"
            test = {"op": "test", "path": path, "value": finalizers or None}
            add = (
                {"op": "add", "path": path + "/-", "value": FINALIZER}
                if finalizers
                else {"op": "add", "path": path, "value": [FINALIZER]}
            )
            self._json_patch(metadata["name"], [test, add])

    # controller.rs try_cleanup_after_ttl: True when it returned an Action (the reconcile ends).
    def _ttl_cleanup(self, coderun: dict[str, Any]) -> bool:
        due = decisions.ttl_cleanup_due(coderun, enabled=self.config.cleanup_enabled, at=decisions.now())
        if due is None:
            return False
        if due:
            log.info("TTL expired - cleaning up remaining resources of %s", coderun["metadata"]["name"])
            self._cleanup(coderun)
            status = {"cleanupCompletedAt": decisions.timestamp(decisions.now()), "expireAt": None}
            self._patch_status(coderun["metadata"]["name"], status)
        return True

    # controller.rs reconcile_code_create_or_update
    def _apply(self, coderun: dict[str, Any]) -> None:
        status = coderun.get("status")
        if isinstance(status, Mapping):
            if status.get("workCompleted") is True:
                return  # verify_github_completion_status is a stub returning true
            if status.get("phase") == "Succeeded":
                finished = decisions.parse_time(status.get("finishedAt")) or decisions.now()
                self._finish(coderun, "Succeeded", "Code implementation completed successfully", True, finished)
                return
            if status.get("phase") == "Failed":
                return  # no retry logic
        name = (status or {}).get("jobName") or job_name(coderun)  # get_job_name: the status first
        state = decisions.job_state(self._get(self.batch.read_namespaced_job, name))
        if state == "NotFound":
            self.create_or_update(coderun)
            self.update_status(coderun, "Running", "Code implementation started", False, expire="clear")
        elif state == "Running":
            self.update_status(coderun, "Running", "Code task in progress", False, expire="clear")
        elif state == "Completed":
            self._completed(self._latest(coderun), name)
        else:
            self._failed(self._latest(coderun), name)

    def _latest(self, coderun: dict[str, Any]) -> dict[str, Any]:
        """The CodeRun fetched again (the cached one if that fails), as Completed/Failed do."""
        try:
            return self._get(self._read_coderun, coderun["metadata"]["name"]) or coderun
        except Exception as exc:
            log.warning("Unable to fetch latest CodeRun %s: %s", coderun["metadata"]["name"], exc)
            return coderun

    def _finish(self, coderun: dict[str, Any], phase: str, message: str, done: bool, at: datetime) -> None:
        deadline = decisions.cleanup_deadline(
            coderun,
            phase,
            at,
            enabled=self.config.cleanup_enabled,
            success_ttl=self.config.success_ttl_seconds,
            failure_ttl=self.config.failure_ttl_seconds,
        )
        self.update_status(coderun, phase, message, done, finished=at, expire=deadline or "keep")

    def _completed(self, latest: dict[str, Any], name: str) -> None:
        manual = decisions.manual_intervention(latest)
        reason = decisions.retry_reason(latest)
        if manual is None and reason is not None:
            limit = decisions.max_retries(latest.get("spec", {}), self.config.max_retries)
            count = (latest.get("status") or {}).get("retryCount") or 0
            if limit == 0 or count < limit:
                self.schedule_retry(latest, name, count, limit, reason)
                return
            manual = f"Retry limit reached without completion: {reason}"
        elif manual is None and decisions.lacks_required_pr(latest):
            manual = "Implementation agent must create a pull request (PR URL not found in status)"
        if manual is not None:
            self._finish(latest, "Failed", manual, False, decisions.now())
            self._delete_finished(latest, name, self.config.failed_job_delay_minutes, workflow_check=True)
            return
        self._finish(latest, "Succeeded", "Code implementation completed successfully", True, decisions.now())
        self._delete_finished(latest, name, self.config.completed_job_delay_minutes, workflow_check=True)

    def _failed(self, latest: dict[str, Any], name: str) -> None:
        limit = decisions.max_retries(latest.get("spec", {}), self.config.max_retries)
        count = (latest.get("status") or {}).get("retryCount") or 0
        if limit == 0 or count < limit:
            self.schedule_retry(latest, name, count, limit, "Job failed")
            return
        self._finish(latest, "Failed", "Code implementation failed", False, decisions.now())
        self._delete_finished(latest, name, self.config.failed_job_delay_minutes, workflow_check=False)

    def _delete_finished(self, coderun: dict[str, Any], name: str, delay: int, *, workflow_check: bool) -> None:
        """A finished Job is deleted at once only when the delay is 0; otherwise the controller
        only logs the delay (it has no timer), and the Job goes by its own TTL."""
        if workflow_check and decisions.has_workflow_owner(coderun):
            return
        if self.config.cleanup_enabled and delay == 0:
            try:
                self.delete_job(name)
            except Exception as exc:
                log.warning("Failed to delete job %s: %s", name, exc)

    def schedule_retry(self, latest: dict[str, Any], name: str, count: int, limit: int, reason: str) -> None:
        """controller.rs schedule_retry: delete the Job (and wait 2 s), bump contextVersion with
        continueSession, then the status. That last update goes through the same skip as every
        other: the run is already Running, so retryCount is NOT written and the retries never
        reach the limit (the code as it stands)."""
        try:
            if self.delete_job(name):
                self.sleep(self.config.retry_delete_wait)
        except Exception as exc:
            log.warning("Failed to delete job %s before scheduling retry: %s", name, exc)
        version = int(latest.get("spec", {}).get("contextVersion", 1)) + 1
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            latest["metadata"]["name"],
            {"spec": {"contextVersion": version, "continueSession": True}},
            **self._opts(),
        )
        allowed = "∞" if limit == 0 else str(limit)
        message = f"Retry attempt {count + 1} scheduled (max {allowed}): {reason}"
        self.update_status(latest, "Running", message, False, retries=count + 1, expire="clear")

    def update_status(
        self,
        coderun: Mapping[str, Any],
        phase: str,
        message: str,
        done: bool,
        *,
        retries: int | None = None,
        finished: datetime | None = None,
        expire: Expire = "keep",
    ) -> None:
        """controller.rs update_code_status_with_completion: skipped when phase and workCompleted
        are already those of the CodeRun as this reconcile read it."""
        current = coderun.get("status") or {}
        if current.get("phase", "") == phase and bool(current.get("workCompleted")) == done:
            return
        status: dict[str, Any] = {
            "phase": phase,
            "message": message,
            "lastUpdate": decisions.timestamp(decisions.now()),
            "workCompleted": done,
            "retryCount": (current.get("retryCount") or 0) if retries is None else retries,
        }
        if finished is not None:
            status["finishedAt"] = decisions.timestamp(finished)
        if expire == "clear":
            status["expireAt"] = None
        elif isinstance(expire, datetime):
            status["expireAt"] = decisions.timestamp(expire)
        self._patch_status(coderun["metadata"]["name"], status)
