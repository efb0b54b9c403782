"""The objects and AdmissionReviews that tests, the demo and the benchmark send, shaped like the
ones the platform's controller and the API server make (pure: no Kubernetes client)."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any

import jsonpatch


def controller_pod(
    service: str | None,
    app: str | None,
    *,
    volume: dict[str, Any] | None = None,
    generate_name: str = "code-run-",
) -> dict[str, Any]:
    """A Pod shaped like the platform controller's job pods: generateName, its labels (a fact
    left out where None), and the shared `workspace-{service}` mounted, unless `volume` is given."""
    labels = {"app": "controller", "component": "code-runner"}
    if service is not None:
        labels["service"] = service
    if app is not None:
        labels["github-user"] = app
    volume = volume or {"name": "workspace", "persistentVolumeClaim": {"claimName": f"workspace-{service}"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": generate_name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "agent",
                    "image": "busybox",
                    "volumeMounts": [{"name": volume["name"], "mountPath": "/workspace"}],
                }
            ],
            "volumes": [volume],
        },
    }


POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
CODERUN_KIND = {"group": "agents.platform", "version": "v1", "kind": "CodeRun"}


def job_pod(
    service: str | None = "cto",
    app: str | None = "5dlabs-rex",
    *,
    volume: dict[str, Any] | None = None,
    owner_job: str | None = None,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Pod as the platform's controller creates it through a Job (generateName, no name)."""
    pod = controller_pod(service, app, volume=volume)
    pod["metadata"]["labels"].update(extra_labels or {})
    if owner_job:
        pod["metadata"]["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": owner_job, "uid": str(uuid.uuid4()), "controller": True}
        ]
    return pod


def coderun(
    service: str | None = "cto", app: str | None = "5DLabs-Tess", name: str = "run-1", **spec: Any
) -> dict[str, Any]:
    """A CodeRun as the platform's users create it, valid against the platform's CRD (and its
    stand-in, manifests/dev/): `service`, `repositoryUrl` and `docsRepositoryUrl` are required,
    the rest as the platform's tooling sets them; `spec` adds or replaces fields
    (implementationAgent=..., freshWorkspace=True, ...). None leaves service or githubApp out."""
    body: dict[str, Any] = {
        "runType": "implementation",
        "taskId": 1,
        "repositoryUrl": "https://github.com/5dlabs/cto",
        "docsRepositoryUrl": "https://github.com/5dlabs/docs",
        "workingDirectory": ".",
        "model": "claude-sonnet",
        **spec,
    }
    if service is not None:
        body["service"] = service
    if app is not None:
        body["githubApp"] = app
    return {"apiVersion": "agents.platform/v1", "kind": "CodeRun", "metadata": {"name": name}, "spec": body}


def controller_ref(obj: dict[str, Any]) -> dict[str, Any]:
    """The ownerReference a controller puts on what it creates for `obj` (a stored object)."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def coderun_job(run: dict[str, Any], name: str, template: dict[str, Any]) -> dict[str, Any]:
    """A Job as the platform's controller creates it for a stored CodeRun: owned by it, with the
    Pod `template` (its labels and spec) as its template."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "ownerReferences": [controller_ref(run)]},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": template["metadata"].get("labels", {})},
                "spec": {**template["spec"], "restartPolicy": "Never"},
            },
        },
    }


JOB_KIND = {"group": "batch", "version": "v1", "kind": "Job"}


def cleanup_job(run: dict[str, Any], claim: str) -> dict[str, Any]:
    """The Job the platform's controller creates when a CodeRun (a stored one) is deleted, as its
    twin makes it (testing/twin, resources.rs cleanup_workspace_subdir: its cleanup labels on the
    Job, none on the Pod template, the run's directory removed), its claim set to `claim` (what
    the controller computes, which the tests vary)."""
    from agent_workspace_webhook.testing.twin.manifests import cleanup_job_manifest

    job = cleanup_job_manifest(run)
    if not run["metadata"].get("namespace"):  # the review says where (the twin's default is "default")
        del job["metadata"]["namespace"]
    job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = claim
    return job


def review(
    obj: Any,
    *,
    kind: dict[str, str] | None = None,
    namespace: str = "agents",
    dry_run: bool = False,
    operation: str = "CREATE",
    uid: str | None = None,
    user: str = "tester",
) -> dict[str, Any]:
    """An AdmissionReview v1 request for `obj`, as the API server sends it."""
    if kind is None:
        kind = CODERUN_KIND if isinstance(obj, dict) and obj.get("kind") == "CodeRun" else POD_KIND
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": kind,
            "resource": {"group": kind["group"], "version": kind["version"], "resource": kind["kind"].lower() + "s"},
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": user},
            "object": obj,
            "oldObject": None,
            "dryRun": dry_run,
        },
    }


def decode_patch(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch inside an AdmissionReview answer (empty when there is none)."""
    encoded = answer.get("response", {}).get("patch")
    if not encoded:
        return []
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(encoded))
    return patch


def applied(obj: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server stores it after applying the answer's patch."""
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), decode_patch(answer))
    return result


def stored_pvc(
    name: str,
    namespace: str = "agents",
    *,
    labels: dict[str, str] | None = None,
    phase: str = "Bound",
    deleting: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """A PersistentVolumeClaim as the API server stores it: 10Gi ReadWriteOnce, bound to volume
    pv-NAME (`spec` adds or replaces fields), with `labels`, in `phase`; `deleting` gives it a
    deletionTimestamp (the pvc-protection finalizer holds it while a Pod uses it)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels or {}),
        "creationTimestamp": "2026-12-01T00:00:00Z",
        "finalizers": ["kubernetes.io/pvc-protection"],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T10:00:00Z"
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "10Gi"}},
        "volumeName": f"pv-{name}",
        **spec,
    }
    status: dict[str, Any] = {"phase": phase}
    if phase == "Bound":
        status["capacity"] = {"storage": body["resources"]["requests"]["storage"]}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": body, "status": status}


def claim(pod: dict[str, Any], volume: str = "workspace") -> str | None:
    """The PVC that the Pod's volume of that name mounts, if any."""
    for v in pod["spec"]["volumes"]:
        if v["name"] == volume:
            source = v.get("persistentVolumeClaim") or {}
            claim_name: str | None = source.get("claimName")
            return claim_name
    return None
