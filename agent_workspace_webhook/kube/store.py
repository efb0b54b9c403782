"""The interface every store implements, and what a failed Kubernetes call is reported as.

Stores get, list or create; an existing PVC is never changed, but for raising its storage
request when the operator turns that on (WEBHOOK_GROW_EXISTING).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from agent_workspace_webhook.rules.census import Census
from agent_workspace_webhook.rules.facts import OwnerKind
from agent_workspace_webhook.rules.failure import AdmissionFailure
from agent_workspace_webhook.rules.generations import FreshRun, Generation
from agent_workspace_webhook.rules.pvc import PvcState
from agent_workspace_webhook.rules.selector import Selector

# What happened to the workspace PVC in one admission ("deferred": a fresh CodeRun's new
# generation is made at its first Pod; "grown": its storage request was raised; "adopted": the
# platform controller's own PVC made the webhook's generation 1 at its creation, admission/adopt.py).
PvcAction = Literal["created", "exists", "would-create", "deferred", "grown", "adopted"]

RESOURCES = {
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Job": "jobs",
    "CodeRun": "coderuns",
    "Namespace": "namespaces",
    "PersistentVolume": "persistentvolumes",
    "StorageClass": "storageclasses",
}
_QUOTA = re.compile(r"exceeded quota: ([^,]+)")


class ClusterError(AdmissionFailure):
    """A Kubernetes call failed. The message names the object, the cause and the fix; `code` is
    the HTTP code the admission is denied with (the API server shows it to whoever created the run)."""

    ours = True
    default_code = 500


def describe_failure(
    verb: str, what: str, namespace: str, name: str, status: int | None, detail: str, *, operator: bool = False
) -> ClusterError:
    """One line for a failed call: what was tried, the real cause (the API server's own text is
    quoted) and the fix for that cause; with the code to deny the admission with. `operator`: the
    call was an operator command's, made with the operator's credentials. No `name`: a list."""
    if name:
        target = f"{what} {namespace}/{name}" if namespace else f"{what} {name}"
    else:
        target = f"{what}s in namespace {namespace}" if namespace else f"{what}s in every namespace"
    said = f"the API server said: {detail}"
    if status is None:
        return ClusterError(f"cannot {verb} {target}: the Kubernetes API is unreachable ({detail})", 503)
    if status == 403:
        quota = _QUOTA.search(detail)
        if quota is not None:
            return ClusterError(
                f"cannot {verb} {target}: refused by ResourceQuota {namespace}/{quota.group(1).strip()} ({said}); "
                "raise that quota's limit for persistentvolumeclaims or requests.storage, or free workspaces "
                "in the namespace",
                403,
            )
        if "being terminated" in detail:
            return ClusterError(
                f"cannot {verb} {target}: namespace {namespace} is being deleted ({said}); "
                "create the run in a namespace that is not being deleted",
                403,
            )
        if "cannot " + verb + " resource" in detail and operator:
            return ClusterError(
                f"cannot {verb} {target}: not allowed ({said}); run it with credentials that may {verb} "
                f"{RESOURCES.get(what, what.lower() + 's')} (the chart's prune ServiceAccount may)",
                403,
            )
        if "cannot " + verb + " resource" in detail:
            return ClusterError(
                f"cannot {verb} {target}: the webhook's ServiceAccount is not allowed to ({said}); grant it verb "
                f"'{verb}' on {RESOURCES.get(what, what.lower() + 's')} ({_granted_by(verb, what)})",
            )
        return ClusterError(f"cannot {verb} {target}: refused ({said}); see the policy that refused it", 403)
    if status == 404 and verb == "create":
        return ClusterError(f"cannot {verb} {target}: namespace {namespace} does not exist ({said})", 404)
    if status == 422:
        return ClusterError(
            f"cannot {verb} {target}: the API server rejected it as invalid ({said}); check the webhook's "
            "storage settings (WEBHOOK_STORAGE_SIZE, WEBHOOK_STORAGE_CLASS, WEBHOOK_ACCESS_MODES)"
        )
    if status == 429:
        return ClusterError(f"cannot {verb} {target}: the API server is throttling ({said}); retry", 429)
    return ClusterError(f"cannot {verb} {target}: HTTP {status} from the Kubernetes API ({detail})")


class WorkspaceStore(Protocol):
    async def get_pvc(self, namespace: str, name: str) -> PvcState | None:
        """What is known of that PVC (from the watch cache when synced: no API call), or None."""
        ...

    async def create_pvc(self, manifest: Mapping[str, Any], *, dry_run: bool) -> PvcAction:
        """Create the PVC: "created"; 409 AlreadyExists counts as success ("exists"); a dry run
        creates nothing ("would-create")."""
        ...

    async def get_owner(self, kind: OwnerKind, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    async def generations(self, namespace: str, base: str) -> list[Generation]:
        """Every PVC of the workspace whose generation 1 is named `base` (from the watch cache
        when synced: no API call)."""
        ...

    async def grow_pvc(self, namespace: str, name: str, storage: str) -> None:
        """Raise the PVC's storage request (a merge patch of that one field, nothing else)."""
        ...

    async def storage_class_expands(self, name: str) -> bool | None:
        """Whether the StorageClass allows volume expansion; None when there is no such class."""
        ...

    async def workspace_count(self, namespace: str) -> int:
        """How many workspace PVCs the webhook has made (or adopted) in the namespace: every
        generation of every workspace, whatever made it (its labels say so)."""
        ...

    def census(self) -> Census | None:
        """What the workspace gauges count, from the watch caches; None without them."""
        ...

    async def fresh_runs(self, namespace: str) -> list[FreshRun]:
        """The namespace's CodeRuns that ask for a fresh workspace (from the watch cache when
        synced: no API call)."""
        ...

    async def namespace_in_scope(self, name: str, selector: Selector) -> bool | None:
        """Whether the namespace's labels match the selector; None when there is no such namespace."""
        ...

    # A hit answered at once: what the watch caches hold, without an await (a hit costs no deadline
    # scope, no coroutine); None when it is not known so (not cached, not synced, a namespace not
    # seen): ask with the call above, inside the admission's deadline.
    def generations_now(self, namespace: str, base: str) -> list[Generation] | None: ...

    def fresh_runs_now(self, namespace: str) -> list[FreshRun] | None: ...

    def in_scope_now(self, name: str, selector: Selector) -> bool | None: ...

    def degraded(self) -> str | None:
        """What works less than it should while the webhook still admits (the CodeRun CRD missing),
        or None."""
        ...

    async def check_ready(self) -> str | None:
        """None when the API answers, else the reason it does not."""
        ...

    def start(self) -> None:
        """Begin background work (the Kubernetes store's watches); called once the app runs."""
        ...

    def close(self) -> None: ...


def _granted_by(verb: str, what: str) -> str:
    """Where the install grants that verb: growing (patch on PVCs, get on StorageClasses) is an
    Component of its own (manifests/grow), the rest the base ClusterRole."""
    if (verb, what) in (("patch", "PersistentVolumeClaim"), ("get", "StorageClass")):
        return (
            "add the Component manifests/grow/ to your kustomization, "
            "or set the chart's settings.growExisting, which grants it"
        )
    return "see the ClusterRole in manifests/base/rbac.yaml"
