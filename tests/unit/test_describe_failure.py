"""describe_failure: each cause of a failed Kubernetes call gets the code to answer with, the
object, the API server's own words and the fix for that cause."""

import pytest

from agent_workspace_webhook.kube.store import describe_failure

PVC = ("PersistentVolumeClaim", "agents", "workspace-cto-rex")
TRIED = "cannot create PersistentVolumeClaim agents/workspace-cto-rex: "


def test_quota_names_the_quota_and_what_to_raise() -> None:
    detail = (
        'persistentvolumeclaims "workspace-cto-rex" is forbidden: exceeded quota: workspaces, requested: '
        "requests.storage=10Gi, used: requests.storage=20Gi, limited: requests.storage=20Gi"
    )
    failure = describe_failure("create", *PVC, 403, detail)
    assert failure.code == 403
    assert str(failure) == (
        f"{TRIED}refused by ResourceQuota agents/workspaces (the API server said: {detail}); raise that quota's "
        "limit for persistentvolumeclaims or requests.storage, or free workspaces in the namespace"
    )


def test_a_namespace_being_deleted() -> None:
    detail = (
        'persistentvolumeclaims "workspace-cto-rex" is forbidden: unable to create new content in namespace agents '
        "because it is being terminated"
    )
    failure = describe_failure("create", *PVC, 403, detail)
    assert failure.code == 403
    assert str(failure).startswith(f"{TRIED}namespace agents is being deleted (the API server said: {detail});")
    assert str(failure).endswith("create the run in a namespace that is not being deleted")


@pytest.mark.parametrize(
    ("verb", "what", "resource", "where"),
    [
        (
            "create",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "see the ClusterRole in manifests/base/rbac.yaml",
        ),
        ("get", "Job", "jobs", "see the ClusterRole in manifests/base/rbac.yaml"),
        ("get", "CodeRun", "coderuns", "see the ClusterRole in manifests/base/rbac.yaml"),
        # growing is granted by a Component of its own
        (
            "patch",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "add the Component manifests/grow/ to your kustomization, or set the chart's",
        ),
        (
            "get",
            "StorageClass",
            "storageclasses",
            "add the Component manifests/grow/ to your kustomization, or set the chart's",
        ),
    ],
)
def test_missing_rbac_names_the_verb_and_resource_to_grant(verb: str, what: str, resource: str, where: str) -> None:
    detail = (
        f'{resource} "x" is forbidden: User "system:serviceaccount:agent-workspace-webhook:agent-workspace-webhook" '
        f'cannot {verb} resource "{resource}" in API group "" in the namespace "agents"'
    )
    failure = describe_failure(verb, what, "agents", "x", 403, detail)
    assert failure.code == 500  # our misconfiguration, not the request's
    assert str(failure).startswith(f"cannot {verb} {what} agents/x: the webhook's ServiceAccount is not allowed to")
    assert f"grant it verb '{verb}' on {resource} ({where}" in str(failure)


def test_another_403_quotes_the_policy_that_refused() -> None:
    failure = describe_failure("create", *PVC, 403, "denied by admission policy require-labels")
    assert failure.code == 403
    assert str(failure) == (
        f"{TRIED}refused (the API server said: denied by admission policy require-labels); see the policy that "
        "refused it"
    )


def test_404_on_create_is_a_missing_namespace_but_not_on_get() -> None:
    failure = describe_failure("create", *PVC, 404, 'namespaces "agents" not found')
    assert failure.code == 404
    assert (
        str(failure) == f'{TRIED}namespace agents does not exist (the API server said: namespaces "agents" not found)'
    )
    assert "does not exist" not in str(describe_failure("get", *PVC, 404, "not found"))


def test_409_is_reported_as_what_it_is() -> None:
    # Stores treat a 409 on create as "exists"; elsewhere it is a plain HTTP error.
    failure = describe_failure("create", *PVC, 409, "Operation cannot be fulfilled: the object has been modified")
    assert failure.code == 500
    assert str(failure) == (
        f"{TRIED}HTTP 409 from the Kubernetes API (Operation cannot be fulfilled: the object has been modified)"
    )


def test_422_points_at_the_storage_settings() -> None:
    detail = 'PersistentVolumeClaim "workspace-cto-rex" is invalid: spec.resources[storage]: Required value'
    failure = describe_failure("create", *PVC, 422, detail)
    assert failure.code == 500
    assert f"{TRIED}the API server rejected it as invalid (the API server said: {detail})" in str(failure)
    assert "WEBHOOK_STORAGE_SIZE, WEBHOOK_STORAGE_CLASS, WEBHOOK_ACCESS_MODES" in str(failure)


def test_429_says_retry() -> None:
    failure = describe_failure("get", *PVC, 429, "Too many requests, please try again later.")
    assert failure.code == 429
    assert str(failure) == (
        "cannot get PersistentVolumeClaim agents/workspace-cto-rex: the API server is throttling (the API server "
        "said: Too many requests, please try again later.); retry"
    )


def test_no_answer_at_all_is_unreachable() -> None:
    failure = describe_failure("get", *PVC, None, "connection refused")
    assert failure.code == 503
    assert str(failure) == (
        "cannot get PersistentVolumeClaim agents/workspace-cto-rex: the Kubernetes API is unreachable "
        "(connection refused)"
    )


def test_an_unknown_code_is_quoted_with_its_number() -> None:
    failure = describe_failure("create", *PVC, 418, "I'm a teapot")
    assert failure.code == 500
    assert str(failure) == f"{TRIED}HTTP 418 from the Kubernetes API (I'm a teapot)"
