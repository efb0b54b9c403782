"""Agent runs as the platform's controller makes them, in a living cluster: a CodeRun, then a Job
owned by it whose Pod template carries the controller's labels and the shared workspace volume;
the Job controller makes the Pod, the webhook gives it its agent's workspace, the provisioner
binds the PVC and a simulated node runs the Pod. Shared by the demo and the e2e tests.

For a CodeRun that asks for a fresh workspace, `launch` first plays the controller's PVC step
(5dlabs/cto, crates/controller/src/tasks/code/resources.rs): delete the PVC it computes for the
run, poll up to 30 s for it to go, re-create that name, then create the Job."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from agent_workspace_webhook.rules.agents import label_form
from agent_workspace_webhook.rules.generations import wants_fresh
from agent_workspace_webhook.rules.workspace import is_healer_run
from agent_workspace_webhook.testing.kube import create_job, json_body
from agent_workspace_webhook.testing.objects import (
    cleanup_job,
    coderun,
    coderun_job,
    controller_pod,
    controller_ref,
    job_pod,
)


class RunFields(TypedDict, total=False):
    """The CodeRun spec fields a run is started with: its agent (githubApp=... or
    implementationAgent=...) and, for a generation or healer test, how it runs."""

    githubApp: str
    implementationAgent: str
    runType: str
    freshWorkspace: bool
    cliConfig: dict[str, Any]


@dataclass(frozen=True)
class Run:
    namespace: str
    coderun: str
    job: str


@dataclass(frozen=True)
class Submitted:
    """A CodeRun as stored, waiting for the controller to make its Job."""

    namespace: str
    coderun: dict[str, Any]
    app: str | None


def submit(admin: Any, namespace: str, service: str, name: str, **agent: Unpack[RunFields]) -> Submitted:
    """Create the CodeRun `name`, its agent in `agent`: githubApp=... or implementationAgent=..."""
    from kubernetes import client

    app = agent.pop("githubApp", None)
    stored: dict[str, Any] = client.CustomObjectsApi(admin).create_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", namespace, "coderuns", coderun(service, app, name=name, **agent)
    )
    return Submitted(namespace, stored, app)


def launch(admin: Any, submitted: Submitted) -> Run:
    """Create the Job for a CodeRun, as the platform's controller does: owned by the CodeRun,
    its Pod template with the controller's labels (the app lower-cased without [ ]; none for an
    implementationAgent run, whose Pod the webhook then follows to the CodeRun) and the PVC the
    controller computes for the run mounted as `workspace`."""
    from kubernetes import client

    run, app = submitted.coderun, submitted.app
    service, computed = run["spec"]["service"], controller_pvc_name(run["spec"])
    if wants_fresh(run["spec"]):
        fresh_pvc_step(admin, submitted.namespace, computed)
    volume = {"name": "workspace", "persistentVolumeClaim": {"claimName": computed}}
    template = controller_pod(service if app else None, label_form(app) if app else None, volume=volume)
    name = run["metadata"]["name"]
    client.BatchV1Api(admin).create_namespaced_job(submitted.namespace, coderun_job(run, f"{name}-job", template))  # type: ignore[arg-type]
    return Run(submitted.namespace, name, f"{name}-job")


# The platform controller's implementation agents, which share workspace-{service}.
IMPLEMENTATION_AGENTS = ("rex", "blaze", "vex")
# Its healer runs' one PVC (AgentClassifier::get_healer_pvc_name), whatever their service.
HEALER_PVC = "healer-workspace"


def controller_pvc_name(spec: Mapping[str, Any]) -> str:
    """The PVC the platform's controller computes for a CodeRun's spec: healer-workspace for a
    healer run (shared with the healer's monitor), else its AgentClassifier.get_pvc_name:
    workspace-{service} for its implementation agents and for a run without a GitHub App,
    workspace-{service}-{agent} for the others."""
    if is_healer_run(spec):
        return HEALER_PVC
    service, app = spec["service"], spec.get("githubApp")
    agent = label_form(app).removeprefix("5dlabs-").removesuffix("bot") if app else None
    return f"workspace-{service}" if agent is None or agent in IMPLEMENTATION_AGENTS else f"workspace-{service}-{agent}"


def fresh_pvc_step(admin: Any, namespace: str, name: str, patience: float = 30) -> None:
    """The controller's delete_pvc_if_exists + ensure_pvc_exists for a fresh run: delete, wait
    up to `patience` seconds for it to go ("proceeding anyway" after), create it again (a 409 is
    fine), with the controller's own labels and size."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(admin)
    try:
        core.delete_namespaced_persistent_volume_claim(name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_persistent_volume_claim(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                break
            raise
        time.sleep(0.2)
    body = {
        "metadata": {"name": name, "labels": {"app": "orchestrator", "component": "code-runner"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    try:
        core.create_namespaced_persistent_volume_claim(namespace, body)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != 409:
            raise


def owned_by_run(admin: Any, namespace: str, pod: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """`pod` (not yet created) made a real run's: a CodeRun `name` (default: a new one) is created
    for its `service` and `github-user` labels, and the Pod names it as its controller, uid and
    all. The shortest chain the webhook verifies (WEBHOOK_CREATE_FOR=verified-runs), for tests
    that create Pods or send reviews themselves; the platform's own Pods come through a Job, as
    `start_run` makes them."""
    from kubernetes import client

    labels = pod["metadata"].get("labels") or {}
    body = coderun(labels.get("service"), labels.get("github-user"), name=name or f"run-{uuid.uuid4().hex[:10]}")
    stored: dict[str, Any] = client.CustomObjectsApi(admin).create_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", namespace, "coderuns", body
    )
    owned = copy.deepcopy(pod)
    owned["metadata"]["ownerReferences"] = [controller_ref(stored)]
    return owned


def run_pod(
    admin: Any, namespace: str, service: str | None = "cto", app: str | None = "5dlabs-rex", **pod: Any
) -> dict[str, Any]:
    """A controller-shaped Pod (objects.job_pod) owned by a new CodeRun: `create` it, or review it."""
    return owned_by_run(admin, namespace, job_pod(service, app, **pod))


def start_run(admin: Any, namespace: str, service: str, name: str, **agent: Unpack[RunFields]) -> Run:
    """A CodeRun and its Job."""
    return launch(admin, submit(admin, namespace, service, name, **agent))


def cancel(admin: Any, run: Run) -> None:
    """Delete the run's Job and, through the garbage collector, its Pod (the CodeRun stays)."""
    from kubernetes import client

    client.BatchV1Api(admin).delete_namespaced_job(run.job, run.namespace, propagation_policy="Foreground")


# The finalizer the platform's controller puts on every CodeRun, so that it can clean up after a
# deleted one (its tasks/types.rs CODE_FINALIZER_NAME).
FINALIZER = "coderuns.orchestrator.io/finalizer"


def finalize(admin: Any, run: Run, finalizers: list[str]) -> dict[str, Any]:
    """Set the CodeRun's finalizers (the controller adds its own at its first reconcile, and
    removes it when its cleanup is done); the CodeRun as stored."""
    from kubernetes import client

    patch = {"metadata": {"finalizers": finalizers}}
    stored: dict[str, Any] = client.CustomObjectsApi(admin).patch_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", run.namespace, "coderuns", run.coderun, patch
    )
    return stored


def clean_up_deleted(admin: Any, run: Run) -> dict[str, Any]:
    """The controller's cleanup of a CodeRun being deleted (its finalizer still on): delete the
    run's Job and wait for it and its Pod to go, then create the workspace-cleanup Job on the PVC it
    computes for the run; the cleanup Job as stored (the webhook has had its say)."""
    from kubernetes import client

    cancel(admin, run)
    wait_gone(admin, run)
    coderun: dict[str, Any] = client.CustomObjectsApi(admin).get_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", run.namespace, "coderuns", run.coderun
    )
    return create_job(admin, run.namespace, cleanup_job(coderun, controller_pvc_name(coderun["spec"])))


def run_pods(admin: Any, run: Run) -> list[dict[str, Any]]:
    from kubernetes import client

    response = client.CoreV1Api(admin).list_namespaced_pod(
        run.namespace, label_selector=f"job-name={run.job}", _preload_content=False
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


def wait_gone(admin: Any, run: Run, timeout: float = 60) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.BatchV1Api(admin).read_namespaced_job(run.job, run.namespace)
        except ApiException as exc:
            if exc.status == 404 and not run_pods(admin, run):
                return
        time.sleep(0.1)
    raise TimeoutError(f"Job {run.namespace}/{run.job} and its Pod still exist after {timeout}s")


def job_status(admin: Any, run: Run) -> Any:
    """The Job's status and its recent events: why a Pod did not appear (a denial shows here)."""
    from kubernetes import client

    events = client.CoreV1Api(admin).list_namespaced_event(
        run.namespace, field_selector=f"involvedObject.name={run.job}", _preload_content=False
    )
    return [e["message"] for e in json_body(events)["items"]][-3:]
