"""Agent runs as the platform makes them, in a living cluster: a CodeRun is created, and the
platform's controller (its twin, testing/twin, which Environment runs for the namespaces made with
`platform=True`) does the rest as the real one does: its PVC step (the claim it computes made if
missing; for a fresh run deleted first), its Job, the Job controller's Pod, which the webhook gives
the agent's workspace; retries when the Job fails, the cleanup when the CodeRun is deleted. These
helpers only create CodeRuns, wait, and play what the agent does: finish, or die.
Shared by the demo and the e2e tests."""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, TypedDict, Unpack

from agent_workspace_webhook.rules.cleanup import LABEL_RUN_KIND, WORKSPACE_CLEANUP
from agent_workspace_webhook.testing.kube import create_job, json_body
from agent_workspace_webhook.testing.living import FINISH
from agent_workspace_webhook.testing.objects import coderun, coderun_job, controller_ref, job_pod
from agent_workspace_webhook.testing.twin import sanitize_label_value, wait_for_job


class RunFields(TypedDict, total=False):
    """The CodeRun spec fields a run is started with: its agent (githubApp=... or
    implementationAgent=...) and, for a generation or healer test, how it runs."""

    githubApp: str
    implementationAgent: str
    runType: str
    freshWorkspace: bool
    cliConfig: dict[str, Any]
    taskId: int


@dataclass(frozen=True)
class Run:
    namespace: str
    coderun: str
    job: str  # the controller's Job for the CodeRun's current contextVersion


def submit(admin: Any, namespace: str, service: str, name: str, **fields: Unpack[RunFields]) -> dict[str, Any]:
    """Create the CodeRun `name` (its agent in `fields`: githubApp=... or implementationAgent=...);
    the CodeRun as stored (the webhook has had its say)."""
    from kubernetes import client

    app = fields.pop("githubApp", None)
    stored: dict[str, Any] = client.CustomObjectsApi(admin).create_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", namespace, "coderuns", coderun(service, app, name=name, **fields)
    )
    return stored


def start_run(
    admin: Any, namespace: str, service: str, name: str, timeout: float = 60, **fields: Unpack[RunFields]
) -> Run:
    """A CodeRun, and the Job the platform's controller makes for it (the namespace must be one
    where it runs: Environment.namespace(platform=True))."""
    submit(admin, namespace, service, name, **fields)
    return current(admin, Run(namespace, name, ""), timeout)


def current(admin: Any, run: Run, timeout: float = 60) -> Run:
    """The run with the controller's Job for its CodeRun as it is now (after a retry: the next one)."""
    job = wait_for_job(admin, run.namespace, run.coderun, timeout)
    return replace(run, job=job["metadata"]["name"])


def finish(admin: Any, run: Run) -> None:
    """The agent is done: its Pod completes (kwok), so its Job and then its CodeRun succeed."""
    from kubernetes import client

    for pod in run_pods(admin, run):
        patch = {"metadata": {"annotations": {FINISH: "true"}}}
        client.CoreV1Api(admin).patch_namespaced_pod(pod["metadata"]["name"], run.namespace, patch)


def expire(admin: Any, run: Run, timeout: float = 60) -> None:
    """The finished run's Job goes, as the TTL-after-finished controller deletes it once its
    ttlSecondsAfterFinished (the controller sets 3600) has passed; until then its completed Pod
    still holds the claim (pvc-protection), and a fresh run's delete of it waits 30 s and
    proceeds with the claim still there."""
    from kubernetes import client

    client.BatchV1Api(admin).delete_namespaced_job(run.job, run.namespace, propagation_policy="Background")
    deadline = time.monotonic() + timeout
    while run_pods(admin, run):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Pods of Job {run.namespace}/{run.job} still exist after {timeout}s")
        time.sleep(0.1)


def wait_phase(admin: Any, run: Run, phase: str, timeout: float = 60) -> dict[str, Any]:
    """The CodeRun once its status says `phase` (the controller's word: Running, Succeeded, Failed)."""
    deadline = time.monotonic() + timeout
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = read_coderun(admin, run)
        if (found.get("status") or {}).get("phase") == phase:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"CodeRun {run.namespace}/{run.coderun} is not {phase} after {timeout}s: {found.get('status')}")


def fail(admin: Any, run: Run, timeout: float = 60) -> Run:
    """The agent's Pod dies: its Job fails (backoffLimit 0), the controller retries the run with
    its next contextVersion and a new Job (its PVC step again); the run with that Job."""
    from kubernetes import client

    for pod in run_pods(admin, run):
        client.CoreV1Api(admin).delete_namespaced_pod(pod["metadata"]["name"], run.namespace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        retried = current(admin, run, max(0.1, deadline - time.monotonic()))
        if retried.job != run.job:
            return retried
        time.sleep(0.1)
    raise TimeoutError(f"CodeRun {run.namespace}/{run.coderun} was not retried after {timeout}s")


def cancel(admin: Any, run: Run, timeout: float = 60) -> None:
    """Delete the CodeRun, as a user cancels a run: the controller's finalizer deletes its Job (and
    so its Pod) and creates its workspace-cleanup Job; wait until the CodeRun and its Pods are gone."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(admin)
    custom.delete_namespaced_custom_object("agents.platform", "v1", run.namespace, "coderuns", run.coderun)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read_coderun(admin, run)
        except ApiException as exc:
            if exc.status == 404 and not run_pods(admin, run, every_job=True):
                return
        time.sleep(0.1)
    raise TimeoutError(f"CodeRun {run.namespace}/{run.coderun} or its Pods still exist after {timeout}s")


def cleanup_job(admin: Any, run: Run, timeout: float = 60) -> dict[str, Any]:
    """The workspace-cleanup Job the controller made for the deleted run, as stored."""
    from kubernetes import client

    label = sanitize_label_value(run.coderun)
    selector = f"{LABEL_RUN_KIND}={WORKSPACE_CLEANUP},cleanup.cto.dev/run={label}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.BatchV1Api(admin).list_namespaced_job(
            run.namespace, label_selector=selector, _preload_content=False
        )
        items: list[dict[str, Any]] = json_body(found)["items"]
        if items:
            return items[0]
        time.sleep(0.1)
    raise TimeoutError(f"no workspace-cleanup Job for CodeRun {run.namespace}/{run.coderun} after {timeout}s")


def read_coderun(admin: Any, run: Run) -> dict[str, Any]:
    from kubernetes import client

    found = client.CustomObjectsApi(admin).get_namespaced_custom_object(
        "agents.platform", "v1", run.namespace, "coderuns", run.coderun, _preload_content=False
    )
    stored: dict[str, Any] = json_body(found)
    return stored


def owned_by_run(admin: Any, namespace: str, pod: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """`pod` (not yet created) made a real run's: a CodeRun `name` (default: a new one) is created
    for its `service` and `github-user` labels, and a suspended Job of it (which makes no Pod of
    its own), and the Pod names that Job as its controller, uids and all: the chain the webhook
    verifies (WEBHOOK_CREATE_FOR=verified-runs), for tests that create Pods or send reviews
    themselves; the platform's own Pods come from its controller's Jobs, as `start_run` makes them."""
    from kubernetes import client

    labels = pod["metadata"].get("labels") or {}
    body = coderun(labels.get("service"), labels.get("github-user"), name=name or f"run-{uuid.uuid4().hex[:10]}")
    stored: dict[str, Any] = client.CustomObjectsApi(admin).create_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", namespace, "coderuns", body
    )
    job = coderun_job(stored, f"{stored['metadata']['name']}-job", pod)
    job["spec"]["suspend"] = True
    owned = copy.deepcopy(pod)
    owned["metadata"]["ownerReferences"] = [controller_ref(create_job(admin, namespace, job))]
    return owned


def run_pod(
    admin: Any, namespace: str, service: str | None = "cto", app: str | None = "5dlabs-rex", **pod: Any
) -> dict[str, Any]:
    """A controller-shaped Pod (objects.job_pod) owned by a new CodeRun: `create` it, or review it."""
    return owned_by_run(admin, namespace, job_pod(service, app, **pod))


def run_pods(admin: Any, run: Run, every_job: bool = False) -> list[dict[str, Any]]:
    """The Pods of the run's Job (with `every_job`, of every Job the controller made for its CodeRun)."""
    from kubernetes import client

    label = sanitize_label_value(run.coderun)
    selector = f"cleanup.cto.dev/run-kind=coderun,cleanup.cto.dev/run={label}" if every_job else f"job-name={run.job}"
    response = client.CoreV1Api(admin).list_namespaced_pod(
        run.namespace, label_selector=selector, _preload_content=False
    )
    items: list[dict[str, Any]] = json_body(response)["items"]
    return items


def wait_running(admin: Any, run: Run, timeout: float = 60, phases: tuple[str, ...] = ("Running",)) -> dict[str, Any]:
    """The run's Pod once it is Running (on a node), with its workspace PVC Bound; or in another
    of `phases` (kwok completes a Job's Pod at once unless the webhook gave it a workspace)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        pods = [p for p in run_pods(admin, run) if "deletionTimestamp" not in p["metadata"]]
        if pods and pods[0]["status"].get("phase") in phases:
            return pods[0]
        last = [p["status"] for p in pods] or job_status(admin, run)
        time.sleep(0.1)
    raise TimeoutError(
        f"the Pod of Job {run.namespace}/{run.job} is not {' or '.join(phases)} after {timeout}s: {last}"
    )


def job_status(admin: Any, run: Run) -> Any:
    """The Job's status and its recent events: why a Pod did not appear (a denial shows here)."""
    from kubernetes import client

    events = client.CoreV1Api(admin).list_namespaced_event(
        run.namespace, field_selector=f"involvedObject.name={run.job}", _preload_content=False
    )
    return [e["message"] for e in json_body(events)["items"]][-3:]
