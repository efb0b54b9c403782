"""A twin of the platform's CodeRun controller (5dlabs/cto crates/controller, Rust), running in a
thread against a real API server, so that the webhook's tests meet the controller's actual
behaviour: the PVCs it creates and deletes, the Jobs it makes, retries and cleans up after.

The real controller is namespaced: it watches the CodeRuns of the one namespace it is started
for (tasks/mod.rs run_task_controller, ctx.namespace) and makes every call there. The twin
reconciles a set of namespaces (`manage` / `release`), each as if its own controller ran there.

Its loop lists the CodeRuns of every managed namespace every `resync_seconds` and reconciles
each (reconcile.py). Where the real controller reacts to watch events (the CodeRun, and the Jobs
it owns: mod.rs `Controller::new(...).owns(jobs)`) and requeues after 90 s or 10 s, the twin
simply reconciles again at the next pass: its steps are idempotent, so this only makes it prompt.
Its error policy (mod.rs error_policy_code) is kept: a failed reconcile is not retried until the
CodeRun's resourceVersion or one of its Jobs changes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from agent_workspace_webhook.testing.kube import json_body
from agent_workspace_webhook.testing.twin.api import GROUP, PLURAL, VERSION, Interrupted, api_status
from agent_workspace_webhook.testing.twin.claims import claim_for_spec, merged_spec
from agent_workspace_webhook.testing.twin.config import TwinConfig
from agent_workspace_webhook.testing.twin.naming import job_name
from agent_workspace_webhook.testing.twin.reconcile import Reconciler

__all__ = ["ControllerTwin", "TwinConfig", "claim_for", "job_name_for", "release_coderuns", "wait_for_job"]

log = logging.getLogger("agent_workspace_webhook.testing.twin")

Signature = tuple[str, tuple[tuple[str, str], ...]]  # a CodeRun's resourceVersion, its Jobs'


def _merged(coderun: Mapping[str, Any], config: TwinConfig | None) -> dict[str, Any]:
    defaults = (config or TwinConfig()).agent_cli_configs
    return {**coderun, "spec": merged_spec(coderun.get("spec", {}), defaults)}


def job_name_for(coderun: Mapping[str, Any], config: TwinConfig | None = None) -> str:
    """The name of the Job the twin (and the controller) creates for the CodeRun as it is now
    (its contextVersion included), its spec merged with the agent's CLI defaults."""
    return job_name(_merged(coderun, config))


def claim_for(coderun: Mapping[str, Any], config: TwinConfig | None = None) -> str:
    """The claim the controller's Job mounts as `workspace` (and its PVC step makes) for the
    CodeRun. Its cleanup Job recomputes it from the spec as stored: claim_for_spec(spec)."""
    return claim_for_spec(_merged(coderun, config)["spec"])


class ControllerTwin:
    """`start()` it, `manage(namespace)`, create CodeRuns; `stop()` it at the end. Tests that
    step by hand call `reconcile_once()` instead of starting it. `config` may be changed at any
    time: each reconcile reads it."""

    def __init__(self, api_client: Any, config: TwinConfig | None = None) -> None:
        self.api_client = api_client
        self.config = config or TwinConfig()
        self._namespaces: set[str] = set()
        self._lock = threading.Lock()  # the namespaces and the failures
        self._pass = threading.Lock()  # one pass at a time (the loop, or a test by hand)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: dict[tuple[str, str], Signature] = {}  # (namespace, uid) -> as it failed
        self._done: dict[tuple[str, str], tuple[Signature, float]] = {}  # -> as last reconciled, when

    def manage(self, namespace: str) -> None:
        """Reconcile the CodeRuns of this namespace from the next pass on."""
        with self._lock:
            self._namespaces.add(namespace)

    def release(self, namespace: str) -> None:
        """Leave this namespace alone (its objects stay as they are); returns once no pass is in
        flight, so nothing the twin does there follows."""
        with self._pass, self._lock:
            self._namespaces.discard(namespace)
            self._failed = {key: value for key, value in self._failed.items() if key[0] != namespace}
            self._done = {key: value for key, value in self._done.items() if key[0] != namespace}

    @property
    def namespaces(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._namespaces)

    def start(self) -> None:
        """Run the loop in a daemon thread (a second start while running does nothing)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="controller-twin", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop: a reconcile waiting (a fresh PVC's polls, a retry's 2 s) ends at once,
        one in an API call at its end (config.request_timeout at most)."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the controller twin did not stop within {timeout}s")
        self._stopping.clear()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.reconcile_once()
            except Interrupted:
                return
            except Exception:  # a pass never kills the loop
                log.exception("controller twin: pass failed")
            self._stopping.wait(self.config.resync_seconds)

    def _sleep(self, seconds: float) -> None:
        """The controller's sleeps; cut short, and the reconcile abandoned, when stopping."""
        if self._stopping.wait(seconds):
            raise Interrupted

    def reconcile_once(self) -> None:
        """One pass: every CodeRun of every managed namespace, reconciled once."""
        with self._pass:
            for namespace in sorted(self.namespaces):
                self._reconcile_namespace(namespace)

    def _reconcile_namespace(self, namespace: str) -> None:
        from kubernetes import client

        opts: dict[str, Any] = {"_preload_content": False, "_request_timeout": self.config.request_timeout}
        try:
            listed = client.CustomObjectsApi(self.api_client).list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, **opts
            )
            coderuns: list[dict[str, Any]] = json_body(listed)["items"]
            jobs = json_body(client.BatchV1Api(self.api_client).list_namespaced_job(namespace, **opts))["items"]
        except Exception as exc:
            log.warning("controller twin: cannot list in %s: %s", namespace, exc)
            return
        owned: dict[str, list[tuple[str, str]]] = {}
        for job in jobs:  # mod.rs .owns(jobs): a change to an owned Job is a change to its CodeRun
            for ref in job["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "CodeRun":
                    owned.setdefault(ref["uid"], []).append(
                        (job["metadata"]["name"], job["metadata"]["resourceVersion"])
                    )
        reconciler = Reconciler(self.api_client, namespace, self.config, self._sleep)
        present = set()
        for coderun in coderuns:
            if self._stopping.is_set():
                raise Interrupted
            uid = coderun["metadata"]["uid"]
            present.add(uid)
            signature = (coderun["metadata"]["resourceVersion"], tuple(sorted(owned.get(uid, []))))
            key = (namespace, uid)
            with self._lock:
                if self._failed.get(key) == signature:
                    continue  # error_policy_code: Action::await_change()
                last = self._done.get(key)
                if (
                    last is not None
                    and last[0] == signature
                    and time.monotonic() - last[1] < self.config.requeue_seconds
                ):
                    continue  # no event since, and not yet requeued
            try:
                reconciler.reconcile(coderun)
            except Exception:
                log.exception("controller twin: reconcile of %s/%s failed", namespace, coderun["metadata"]["name"])
                with self._lock:
                    self._failed[key] = signature
                    self._done.pop(key, None)
            else:
                with self._lock:
                    self._failed.pop(key, None)
                    self._done[key] = (signature, time.monotonic())
        with self._lock:
            self._failed = {k: v for k, v in self._failed.items() if k[0] != namespace or k[1] in present}
            self._done = {k: v for k, v in self._done.items() if k[0] != namespace or k[1] in present}


def wait_for_job(
    api_client: Any, namespace: str, coderun_name: str, timeout: float = 60, config: TwinConfig | None = None
) -> dict[str, Any]:
    """The Job the twin made for the CodeRun as it is now (the name for its current
    contextVersion), once it exists and is not being deleted."""
    from kubernetes import client

    custom, batch = client.CustomObjectsApi(api_client), client.BatchV1Api(api_client)
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        coderun = json_body(
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, coderun_name, _preload_content=False)
        )
        name = job_name_for(coderun, config)
        try:
            job: dict[str, Any] = json_body(batch.read_namespaced_job(name, namespace, _preload_content=False))
        except Exception as exc:
            if api_status(exc) != 404:
                raise
            last = coderun.get("status")
        else:
            if job["metadata"].get("deletionTimestamp") is None:
                return job
            last = f"Job {name} is being deleted"
        time.sleep(0.1)
    raise TimeoutError(f"no Job for CodeRun {namespace}/{coderun_name} after {timeout}s: {last}")


def release_coderuns(api_client: Any, namespace: str) -> None:
    """Teardown: the namespace's CodeRuns lose the controller's finalizer, so that deleting the
    namespace never waits for a cleanup no controller will do (once the twin has left it)."""
    from kubernetes import client

    from agent_workspace_webhook.testing.twin.reconcile import FINALIZER

    custom = client.CustomObjectsApi(api_client)
    listed = json_body(custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _preload_content=False))
    for coderun in listed["items"]:
        finalizers = coderun["metadata"].get("finalizers") or []
        if FINALIZER in finalizers:
            kept = [f for f in finalizers if f != FINALIZER]
            try:
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, coderun["metadata"]["name"], {"metadata": {"finalizers": kept}}
                )
            except Exception as exc:
                if api_status(exc) != 404:
                    raise
