"""One-off listings for the operator's `workspaces` report (not the admission path, which asks
the store): every PVC, and the Pods that may mount them."""

from __future__ import annotations

import json
from typing import Any, cast

from agent_workspace_webhook.kube.connect import api_client
from agent_workspace_webhook.kube.store import ClusterError
from agent_workspace_webhook.rules.names import one_line
from agent_workspace_webhook.settings import Settings


def list_pvcs(settings: Settings, namespace: str | None) -> list[dict[str, Any]]:
    """Every PVC, or those of one namespace, as the API returns them (for `workspaces`)."""
    return _list(settings, namespace, "persistent_volume_claim", "PersistentVolumeClaims")


def list_pods(settings: Settings, namespace: str | None) -> list[dict[str, Any]]:
    """The Pods that have not finished, everywhere or in one namespace (who mounts a workspace)."""
    return _list(settings, namespace, "pod", "Pods", field_selector="status.phase!=Succeeded,status.phase!=Failed")


def _list(settings: Settings, namespace: str | None, kind: str, what: str, **options: Any) -> list[dict[str, Any]]:
    from kubernetes import client

    api = api_client(settings)
    core = client.CoreV1Api(api)
    try:
        if namespace:
            response = getattr(core, f"list_namespaced_{kind}")(namespace, _preload_content=False, **options)
        else:
            response = getattr(core, f"list_{kind}_for_all_namespaces")(_preload_content=False, **options)
    except Exception as exc:
        raise ClusterError(f"cannot list {what}: {one_line(exc)}") from None
    finally:
        api.close()
    items: list[dict[str, Any]] = json.loads(cast(Any, response).data)["items"]
    return items
