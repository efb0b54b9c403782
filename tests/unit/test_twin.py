"""The controller twin's pure parts against the platform controller's code (5dlabs/cto): the claim
a CodeRun gets, its Job's name and shape, its cleanup Job, and the decisions of its reconcile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_workspace_webhook.testing.objects import coderun
from agent_workspace_webhook.testing.twin import (
    ConfigError,
    TwinConfig,
    claim_for,
    claim_for_spec,
    cleanup_job_manifest,
    cleanup_job_name,
    decisions,
    extract_agent_name,
    job_manifest,
    job_name,
    job_name_for,
    pvc_manifest,
)
from agent_workspace_webhook.testing.twin.naming import ensure_length, rust_default_hash_hex, shorten_model
from agent_workspace_webhook.testing.twin.reconcile import Reconciler

UID = "1234567890abcdef"
CLAUDE = {"cliType": "Claude", "model": "claude-sonnet-4-20250514"}


def stored(service: str = "cto", app: str | None = "5DLabs-Tess", name: str = "run-1", **spec: Any) -> dict[str, Any]:
    """A CodeRun as the API server returns it: uid, namespace and the CRD's defaults."""
    run = coderun(service, app, name=name, **{"model": "claude-sonnet-4-20250514", "taskId": 42, **spec})
    run["metadata"].update(uid=UID, namespace="agents")
    run["spec"].setdefault("contextVersion", 1)
    return run


# --- the claim (agent.rs AgentClassifier, resources.rs) ---


@pytest.mark.parametrize(
    ("service", "settings"),
    [("cto-healer", {}), ("Healer", {}), ("cto", {"template": "healer/ci-failure"})],
    ids=["service", "service-any-case", "template"],
)
def test_healer_runs_get_the_healer_claim(service: str, settings: dict[str, str]) -> None:
    spec = stored(service, "5DLabs-Rex", cliConfig={**CLAUDE, "settings": settings})["spec"]
    assert claim_for_spec(spec) == "healer-workspace"


@pytest.mark.parametrize("app", ["5DLabs-Rex", "5DLabs-Blaze", "5DLabs-Vex[bot]", "5dlabs_rex"])
def test_implementation_agents_share_the_service_claim(app: str) -> None:
    assert claim_for_spec(stored(app=app)["spec"]) == "workspace-cto"


@pytest.mark.parametrize(("app", "agent"), [("5DLabs-Cleo", "cleo"), ("5DLabs-Tess", "tess"), ("5DLabs-Nova", "nova")])
def test_other_agents_get_their_own_claim(app: str, agent: str) -> None:
    assert claim_for_spec(stored(app=app)["spec"]) == f"workspace-cto-{agent}"


def test_implementation_agent_field_does_not_change_the_claim() -> None:
    assert claim_for_spec(stored(app="5DLabs-Rex", implementationAgent="cleo")["spec"]) == "workspace-cto"


@pytest.mark.parametrize(
    ("app", "agent"),
    [
        ("5DLabs-Code-Reviewer", "code"),  # \w stops at the dash
        ("5DLabs_Tess", "tess"),
        ("5DLabs-Morgan-Dev", "morgan"),
        ("5DLabs-Cleo[bot]", "cleo"),
        ("5DLABS-REX", "rex"),
        ("5DLabsNova", "nova"),  # the separator is optional
        ("team-5dlabs-atlas", "atlas"),  # unanchored: the leftmost match anywhere
        ("5DLabs__Tess", None),  # `_tess` fails the name check
        ("5DLabs-Rex_Bot", None),
        ("Tess", None),
        ("5DLabs", None),
    ],
)
def test_the_agent_is_read_with_the_controllers_regex(app: str, agent: str | None) -> None:
    assert extract_agent_name(app) == agent


@pytest.mark.parametrize("app", [None, "", "5DLabs__Tess", "Tess"])
def test_without_a_readable_agent_the_claim_is_the_services(app: str | None) -> None:
    assert claim_for_spec(stored(app=app)["spec"]) == "workspace-cto"


def test_long_claims_are_truncated_not_hashed() -> None:
    service = "s" * 60
    isolated = claim_for_spec(stored(service, "5DLabs-Cleo")["spec"])
    assert isolated == "workspace-" + "s" * 48 + "-cleo" and len(isolated) == 63
    assert claim_for_spec(stored(service, "5DLabs-Rex")["spec"]) == "workspace-" + "s" * 53
    # an agent too long to leave room for any service: the code's saturating_sub, over 63
    assert claim_for_spec(stored("cto", "5DLabs-" + "a" * 60)["spec"]) == "workspace--" + "a" * 60


def test_the_agents_default_cli_config_moves_the_job_but_not_the_cleanup() -> None:
    config = TwinConfig(agent_cli_configs={"5DLabs-Morgan": {**CLAUDE, "settings": {"template": "healer/triage"}}})
    run = stored(app="5DLabs-Morgan")
    assert claim_for(run, config) == "healer-workspace"
    assert claim_for(run) == "workspace-cto-morgan"
    cleanup = cleanup_job_manifest(run)["spec"]["template"]["spec"]["volumes"][0]
    assert cleanup["persistentVolumeClaim"]["claimName"] == "workspace-cto-morgan"


# --- the Job's name (naming.rs) ---


def test_job_name_has_task_cli_model_provider_uid_and_version() -> None:
    assert job_name(stored()) == "t42-unknown-claude-sonnet-4-default-12345678-v1"
    run = stored(cliConfig={**CLAUDE, "provider": "Anthropic"}, contextVersion=3)
    assert job_name(run) == "t42-claude-claude-sonnet-4-anthropic-12345678-v3"


def test_job_name_takes_the_pr_number_from_the_label_first() -> None:
    run = stored(env={"PR_NUMBER": "9999"})
    assert job_name(run).startswith("pr9999-t42-")
    run["metadata"]["labels"] = {"pr-number": "1627"}
    assert job_name(run).startswith("pr1627-t42-")
    assert not job_name(stored(env={"PR_NUMBER": "0"})).startswith("pr")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"runType": "intake", "cliConfig": CLAUDE}, "intake-t42-tess-claude-12345678-v1"),
        ({"runType": "review", "env": {"PR_NUMBER": "7"}}, "review-pr7-tess-claude-sonnet-4-12345678-v1"),
        ({"runType": "play"}, "play-cto-12345678-v1"),
        ({"implementationAgent": "Cleo", "service": "heal"}, "heal-remediation-t42-Cleo-12345678-v1"),
        ({"service": "watcher"}, "monitor-t42-tess-12345678-v1"),
    ],
)
def test_special_runs_have_their_prefixes(spec: dict[str, Any], expected: str) -> None:
    service = spec.pop("service", "cto")
    assert job_name(stored(service, **spec)) == expected


def test_long_job_names_keep_pr_task_uid_and_version() -> None:
    run = stored()
    run["metadata"]["labels"] = {"pr-number": "1" * 40}
    assert job_name(run) == "pr" + "1" * 40 + "-t42-12345678-v1"
    assert ensure_length("t1-claude-" + "m" * 60 + "-default-12345678-v2", 63) == "t1-claude-12345678-v2"
    assert shorten_model("accounts/fireworks/models/Kimi-K2.5-Instruct-20260205") == "kimi-k2-5-instruct"


def test_job_name_for_uses_the_merged_spec() -> None:
    config = TwinConfig(agent_cli_configs={"5DLabs-Tess": {"cliType": "codex", "model": "gpt-5", "provider": "openai"}})
    assert job_name_for(stored(), config) == "t42-codex-claude-sonnet-4-openai-12345678-v1"


def test_the_rust_hash_port_matches_rustc() -> None:
    # std DefaultHasher over `str` (SipHash-1-3, zero keys, 0xff terminator), printed by rustc 1.95
    assert rust_default_hash_hex("") == "30406ea523c53def"
    assert rust_default_hash_hex("run-1") == "b5824a725d934c06"


def test_cleanup_job_name_appends_or_hashes() -> None:
    short = stored(cliConfig=CLAUDE, model="sonnet")
    assert cleanup_job_name(short) == "t42-claude-sonnet-default-12345678-v1-workspace-cleanup"
    long = stored(cliConfig=CLAUDE)  # 46 characters: over the 45 left by the suffix
    assert cleanup_job_name(long) == "t42-claude-claude-sonnet-4-default-1-5c73765b-workspace-cleanup"


# --- the Job (build_job_spec, create_task_labels) ---


def test_job_labels_owner_ttl_and_deadline() -> None:
    job = job_manifest(stored())
    labels = job["metadata"]["labels"]
    assert labels["app"] == "controller" and labels["component"] == "code-runner"
    assert (labels["service"], labels["github-user"], labels["agent"]) == ("cto", "5dlabs-tess", "tess")
    assert labels["cleanup.cto.dev/run"] == "run-1" and labels["cleanup.cto.dev/run-kind"] == "coderun"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "agents.platform/v1",
            "kind": "CodeRun",
            "name": "run-1",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 86400)
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600


def test_a_workflow_owned_run_has_no_ttl() -> None:
    run = stored()
    run["metadata"]["ownerReferences"] = [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": "w", "uid": "u"}
    ]
    assert "ttlSecondsAfterFinished" not in job_manifest(run)["spec"]


@pytest.mark.parametrize(
    ("docker", "mounting"),
    [(True, {"setup-workspace", "claude-claude-sonnet-4-20250514", "docker-daemon", "promtail"}), (False, None)],
)
def test_every_container_of_the_workspace_mounts_the_computed_claim(docker: bool, mounting: set[str] | None) -> None:
    pod = job_manifest(stored(app="5DLabs-Cleo", enableDocker=docker))["spec"]["template"]["spec"]
    mounted = {
        c["name"]
        for c in pod["initContainers"] + pod["containers"]
        if any(m["name"] == "workspace" and m["mountPath"] == "/workspace" for m in c["volumeMounts"])
    }
    assert mounted == (mounting or {"setup-workspace", "claude-claude-sonnet-4-20250514", "promtail"})
    assert pod["volumes"][0] == {"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace-cto-cleo"}}
    main = pod["containers"][0]
    assert main["workingDir"] == "/workspace/runs/run-1-12345678"
    assert {"name": "WORKSPACE_DIR", "value": "/workspace/runs/run-1-12345678"} in main["env"]
    assert pod["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "fsGroupChangePolicy": "OnRootMismatch",
    }


def test_a_codex_pod_runs_as_root_without_fs_group() -> None:
    pod = job_manifest(stored(cliConfig={"cliType": "codex", "model": "gpt-5"}))["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "fsGroupChangePolicy": "OnRootMismatch"}


@pytest.mark.parametrize("app", [None, ""])
def test_no_job_without_a_github_app(app: str | None) -> None:
    with pytest.raises(ConfigError, match="GitHub App is required"):
        job_manifest(stored(app=app))


def test_the_pvc_the_controller_creates() -> None:
    pvc = pvc_manifest("workspace-cto-cleo", stored(app="5DLabs-Cleo")["spec"], None, "10Gi")
    assert pvc["metadata"]["labels"] == {
        "app": "orchestrator",
        "component": "code-runner",
        "service": "cto",
        "agent": "cleo",
        "implementation-agent": "cleo",
        "workspace-type": "isolated",
    }
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
    shared = pvc_manifest("workspace-cto", stored(app="5DLabs-Rex", implementationAgent="Blaze")["spec"], "fast", "5Gi")
    assert shared["metadata"]["labels"]["workspace-type"] == "shared"
    assert shared["metadata"]["labels"]["implementation-agent"] == "blaze"
    assert shared["spec"]["storageClassName"] == "fast"
    assert set(pvc_manifest("workspace-cto", stored(app=None)["spec"], None, "1Gi")["metadata"]["labels"]) == {
        "app",
        "component",
        "service",
    }


# --- the cleanup Job (cleanup_workspace_subdir) ---


def test_the_cleanup_job_label_is_cut_to_63() -> None:
    name = "a" * 62 + "-b" + "c" * 10
    job = cleanup_job_manifest(stored(app="5DLabs-Cleo", name=name))
    labels = job["metadata"]["labels"]
    assert labels["cleanup.cto.dev/run"] == "a" * 62  # cut to 63, then back to an alphanumeric
    assert labels["cleanup.cto.dev/run-kind"] == "workspace-cleanup" and labels["cleanup.cto.dev/scope"] == "run"
    pod = job["spec"]["template"]
    assert "metadata" not in pod and "ownerReferences" not in job["metadata"]
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    assert pod["spec"]["containers"][0]["command"] == ["/bin/sh", "-c", f"rm -rf /workspace/runs/{name}-12345678"]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "workspace-cto-cleo"


# --- decisions (controller.rs, cleanup.rs) ---


@pytest.mark.parametrize(
    ("job", "state"),
    [
        (None, "NotFound"),
        ({}, "Running"),
        ({"status": {"active": 1}}, "Running"),
        ({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}, "Completed"),
        ({"status": {"conditions": [{"type": "Failed", "status": "True"}], "succeeded": 1}}, "Failed"),
        ({"status": {"failed": 1}}, "Failed"),
    ],
)
def test_job_state(job: dict[str, Any] | None, state: str) -> None:
    assert decisions.job_state(job) == state


@pytest.mark.parametrize(
    ("env", "limit"),
    [({}, 1), ({"EXECUTION_MAX_RETRIES": " 3 "}, 3), ({"CLAUDE_MAX_RETRIES": "x"}, 1), ({"CODEX_MAX_RETRIES": "0"}, 0)],
)
def test_max_retries_come_from_the_env(env: dict[str, str], limit: int) -> None:
    assert decisions.max_retries({"env": env}) == limit


def test_cleanup_deadline_and_its_annotations() -> None:
    finished = datetime(2026, 1, 1, tzinfo=UTC)
    kwargs: dict[str, Any] = {"enabled": True, "success_ttl": 3600, "failure_ttl": 7200}
    run = stored()
    assert decisions.cleanup_deadline(run, "Succeeded", finished, **kwargs) == finished + timedelta(hours=1)
    assert decisions.cleanup_deadline(run, "Failed", finished, **kwargs) == finished + timedelta(hours=2)
    run["metadata"]["annotations"] = {"cleanup.cto.dev/ttl-seconds": "60"}
    assert decisions.cleanup_deadline(run, "Succeeded", finished, **kwargs) == finished + timedelta(minutes=1)
    run["metadata"]["annotations"] = {"cleanup.cto.dev/preserve": "TRUE"}
    assert decisions.cleanup_deadline(run, "Succeeded", finished, **kwargs) is None
    run["status"] = {"phase": "Succeeded", "expireAt": (finished + timedelta(hours=1)).isoformat()}
    assert decisions.ttl_cleanup_due(run, enabled=True, at=finished) is None  # preserved
    del run["metadata"]["annotations"]
    assert decisions.ttl_cleanup_due(run, enabled=True, at=finished) is False  # a deleted run waits
    assert decisions.ttl_cleanup_due(run, enabled=True, at=finished + timedelta(hours=2)) is True


def test_a_retry_of_a_running_run_bumps_the_version_but_not_the_retry_count() -> None:
    """schedule_retry's status update meets update_code_status_with_completion's skip (already
    Running, not completed): the count is never written, so the retries do not stop at the limit."""
    from kubernetes import client

    reconciler = Reconciler(client.ApiClient(), "agents", TwinConfig(), lambda _: None)
    calls: list[tuple[str, Any]] = []

    def deleted(name: str) -> bool:
        calls.append(("delete", name))
        return True

    def patched(*args: Any, **_: Any) -> None:
        calls.append(("spec", args[5]))

    reconciler.delete_job = deleted  # type: ignore[method-assign]
    reconciler._patch_status = lambda name, status: calls.append(("status", status))  # type: ignore[method-assign]
    reconciler.custom.patch_namespaced_custom_object = patched  # type: ignore[method-assign]
    run = stored()
    run["status"] = {"phase": "Running", "jobName": job_name(run), "retryCount": 0}
    reconciler.schedule_retry(run, job_name(run), 0, 1, "Job failed")
    assert calls == [
        ("delete", "t42-unknown-claude-sonnet-4-default-12345678-v1"),
        ("spec", {"spec": {"contextVersion": 2, "continueSession": True}}),
    ]
