"""What the platform's controller does to the cluster for a CodeRun whose Job is missing, and
when it cleans up after one: 5dlabs/cto crates/controller/src/tasks/code/resources.rs (commit
039c5220: reconcile_create_or_update, delete_pvc_if_exists, ensure_pvc_exists, create_job,
cleanup_resources, cleanup_old_jobs, cleanup_workspace_subdir) and status.rs (commit 077089cf:
update_job_started). The ConfigMap of task files it makes first is not modelled."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.testing.kube import json_body
from agent_workspace_webhook.testing.twin import decisions
from agent_workspace_webhook.testing.twin.api import NamespaceApi, api_status
from agent_workspace_webhook.testing.twin.claims import claim_for_spec, merged_spec, wants_fresh
from agent_workspace_webhook.testing.twin.labels import job_selector
from agent_workspace_webhook.testing.twin.manifests import cleanup_job_manifest, job_manifest, pvc_manifest
from agent_workspace_webhook.testing.twin.naming import job_name

log = logging.getLogger("agent_workspace_webhook.testing.twin")


class Resources(NamespaceApi):
    """resources.rs CodeResourceManager, for one namespace."""

    # resources.rs reconcile_create_or_update (the ConfigMap of task files is not modelled).
    def create_or_update(self, coderun: dict[str, Any]) -> None:
        merged = {**coderun, "spec": merged_spec(coderun.get("spec", {}), self.config.agent_cli_configs)}
        spec = merged["spec"]
        claim = claim_for_spec(spec)
        if wants_fresh(spec):
            self.delete_pvc_if_exists(claim)
        self.ensure_pvc_exists(claim, spec)
        name = job_name(merged)  # create_or_get_job: the computed name, not the status's
        if self._get(self.batch.read_namespaced_job, name) is not None:
            return
        body = job_manifest(merged)  # ConfigError without a githubApp: after the PVC step
        try:
            self.batch.create_namespaced_job(self.namespace, body, **self._opts())  # type: ignore[arg-type]
        except Exception as exc:
            if api_status(exc) == 409:
                return
            raise
        self._job_started(merged, name)

    def _job_started(self, coderun: Mapping[str, Any], name: str) -> None:
        """status.rs update_job_started: a failure is only logged."""
        at = decisions.timestamp(decisions.now())
        message = "Code implementation job started"
        condition = {"type": "Running", "status": "True", "lastTransitionTime": at, "reason": "JobStarted"}
        status = {
            "phase": "Running",
            "message": message,
            "lastUpdate": at,
            "jobName": name,
            "retryCount": (coderun.get("status") or {}).get("retryCount") or 0,
            "conditions": [{**condition, "message": message}],
        }
        try:
            self._patch_status(coderun["metadata"]["name"], status)
        except Exception as exc:
            log.error("Failed to update CodeRun status for %s: %s", coderun["metadata"]["name"], exc)

    def delete_pvc_if_exists(self, claim: str) -> None:
        """resources.rs delete_pvc_if_exists: GET, DELETE (default options), then up to 30 polls
        1 s apart; errors of the GET and the DELETE fail the reconcile, those of the polls are
        logged; a PVC still there (held by a Pod: Terminating) is left, "proceeding anyway"."""
        if self._get(self.core.read_namespaced_persistent_volume_claim, claim) is None:
            return
        try:
            self.core.delete_namespaced_persistent_volume_claim(claim, self.namespace, **self._opts())
        except Exception as exc:
            if api_status(exc) == 404:
                return
            raise
        for _ in range(self.config.fresh_delete_polls):
            self.sleep(self.config.poll_interval)
            try:
                if self._get(self.core.read_namespaced_persistent_volume_claim, claim) is None:
                    return
            except Exception as exc:
                log.error("Error checking PVC deletion status: %s", exc)
        log.info("PVC %s still exists after %ss, proceeding anyway", claim, self.config.fresh_delete_polls)

    def ensure_pvc_exists(self, claim: str, spec: Mapping[str, Any]) -> None:
        """resources.rs ensure_pvc_exists: create it only when a GET says 404 (an existing one,
        even Terminating, is left as it is); a 409 is fine."""
        if self._get(self.core.read_namespaced_persistent_volume_claim, claim) is not None:
            return
        body = pvc_manifest(claim, spec, self.config.storage_class, self.config.workspace_size)
        try:
            self.core.create_namespaced_persistent_volume_claim(self.namespace, body, **self._opts())  # type: ignore[arg-type]
        except Exception as exc:
            if api_status(exc) != 409:
                raise

    # resources.rs cleanup_resources (ConfigMaps: not modelled, the twin makes none).
    def _cleanup(self, coderun: dict[str, Any]) -> None:
        self._cleanup_old_jobs(coderun)
        try:  # cleanup_workspace_subdir: a 409 counts as done, other errors are only logged
            self.batch.create_namespaced_job(self.namespace, cleanup_job_manifest(coderun), **self._opts())  # type: ignore[arg-type]
        except Exception as exc:
            if api_status(exc) != 409:
                log.warning("Failed to create cleanup job for %s: %s", coderun["metadata"]["name"], exc)

    def _cleanup_old_jobs(self, coderun: dict[str, Any]) -> None:
        """resources.rs cleanup_old_jobs: the Job the status names (deleted or already gone: done),
        else every Job its labels select; a failed list fails the cleanup."""
        name = (coderun.get("status") or {}).get("jobName")
        if name:
            try:
                self.delete_job(name)
                return
            except Exception as exc:
                log.warning("Failed to delete job %s: %s", name, exc)
        selector = job_selector(coderun)
        listed = json_body(self.batch.list_namespaced_job(self.namespace, label_selector=selector, **self._opts()))
        for job in listed["items"]:
            try:
                self.delete_job(job["metadata"]["name"])
            except Exception as exc:
                log.debug("ignored: %s", exc)
