"""The Helm chart (charts/agent-workspace-webhook): it lints, its defaults render exactly the
objects of manifests/ (and its certificate sources those of the overlays), the values an operator
sets land where they act, and what it renders is accepted by the real API server.

Only the two e2e tests at the end need the control plane; the others need just the helm and
kubectl binaries that controlplane/build.sh builds (CI builds them, so a missing one fails rather
than skips)."""

from __future__ import annotations

import base64
import difflib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_workspace_webhook.ops.reference import NOT_CHART_SETTINGS, chart_path
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import compose
from agent_workspace_webhook.testing.tools import run, tool

# helm, kubectl or promtool from controlplane/build.sh (tools); some also need a cluster (e2e)
pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agent-workspace-webhook"
RELEASE = NAMESPACE = "agent-workspace-webhook"
# The console script, whatever the package's module is called.
CLI = Path(sys.executable).parent / "agent-workspace-webhook"

Key = tuple[str, str, str | None, str]
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
}

# What selects the webhook's Pods: labels no upgrade changes.
SELECTOR = {"app.kubernetes.io/name": "agent-workspace-webhook", "app.kubernetes.io/instance": RELEASE}

# What an operator changes, all at once.
OPERATOR_VALUES: dict[str, Any] = {
    "replicas": 3,
    "image": {
        "repository": "registry.example.com/platform/agent-workspace-webhook",
        "tag": "1.2.3",
        "pullPolicy": "Always",
    },
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "podDisruptionBudget": {"maxUnavailable": 1},
    "webhook": {"timeoutSeconds": 10, "failurePolicy": "Ignore"},
    "settings": {
        "namingMode": "agent",
        "legacyOwner": "rex",
        "agentTable": {"Acme-Builder": "builder", "5DLabs-Rex": "rex"},
        "agentPattern": r"^acme[-_](?P<agent>[a-z][a-z0-9-]*?)(\[bot\])?$",
        "sharedGroups": [{"agents": ["rex", "blaze"], "suffix": "impl"}],
        "storage": {"size": "20Gi", "className": "fast-ssd", "accessModes": ["ReadWriteMany"]},
        "seedFromLegacy": "clone",
        "colocate": False,
    },
    "extraEnv": [{"name": "WEBHOOK_KUBE_DEADLINE_SECONDS", "value": "1.5"}],
}


# --- helpers ---------------------------------------------------------------------------------


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run(tool("helm"), *args)


def values_args(tmp_path: Path, values: dict[str, Any] | None) -> list[str]:
    if not values:
        return []
    path = tmp_path / f"values-{len(list(tmp_path.glob('values-*')))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--values", str(path)]


def template(tmp_path: Path, values: dict[str, Any] | None = None) -> str:
    result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *values_args(tmp_path, values))
    assert result.returncode == 0, result.stderr
    return result.stdout


def kustomize(directory: Path) -> str:
    result = run(tool("kubectl"), "kustomize", directory)
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects(text: str) -> dict[Key, dict[str, Any]]:
    """The objects of a YAML stream, keyed by apiVersion, kind, namespace and name."""
    found: dict[Key, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            meta = doc["metadata"]
            key = (doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])
            assert key not in found, f"{key} rendered twice"
            found[key] = doc
    return found


def one(rendered: dict[Key, dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [doc for (_, k, _, _), doc in rendered.items() if k == kind]
    assert len(matches) == 1, f"{len(matches)} {kind} objects: {sorted(rendered)}"
    return matches[0]


# The labels a Helm release adds to what manifests/ labels app.kubernetes.io/name alone.
RELEASE_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}


def without_release_labels(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: without_release_labels(value) for key, value in node.items() if key not in RELEASE_LABELS}
    if isinstance(node, list):
        return [without_release_labels(item) for item in node]
    return node


def assert_same_objects(chart: str, expected: str) -> None:
    got = {key: without_release_labels(doc) for key, doc in objects(chart).items()}
    want = objects(expected)
    problems = [f"only in the chart: {key}" for key in got.keys() - want.keys()]
    problems += [f"missing from the chart: {key}" for key in want.keys() - got.keys()]
    for key in sorted(got.keys() & want.keys()):
        if got[key] != want[key]:
            diff = difflib.unified_diff(
                yaml.safe_dump(want[key]).splitlines(),
                yaml.safe_dump(got[key]).splitlines(),
                "kustomize",
                "helm",
                lineterm="",
            )
            problems.append(f"{key} differs:\n" + "\n".join(diff))
    assert not problems, "\n".join(problems)


def env_of(rendered: dict[Key, dict[str, Any]]) -> dict[str, str]:
    container = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var["value"] for var in container["env"]}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `agent-workspace-webhook certs` writes: ca.crt, tls.crt, tls.key and an overlay of manifests/."""
    out = tmp_path_factory.mktemp("certs") / "generated"
    made = run(CLI, "certs", "--out", out)
    assert made.returncode == 0, made.stderr
    return out


def inline_values(certs: Path) -> dict[str, Any]:
    return {
        "tls": {
            "source": "inline",
            "cert": (certs / "tls.crt").read_text(),
            "key": (certs / "tls.key").read_text(),
            "caBundle": (certs / "ca.crt").read_text(),
        }
    }


# --- (a) lint --------------------------------------------------------------------------------


@pytest.mark.parametrize("values", ["default", "certManager", "inline", "operator", "conventions"])
def test_chart_lints(values: str, certs: Path, tmp_path: Path) -> None:
    chosen = {
        "default": None,
        "certManager": {"tls": {"source": "certManager"}},
        "inline": inline_values(certs),
        "operator": OPERATOR_VALUES,
        "conventions": {**CONVENTION_VALUES, "hostNetwork": True, "securePort": 10250},
    }[values]
    result = helm("lint", "--strict", CHART, "--namespace", NAMESPACE, *values_args(tmp_path, chosen))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


# --- (b) one source of truth: the chart renders what manifests/ and its overlays build ----------


def test_default_values_render_exactly_the_manifests(tmp_path: Path) -> None:
    assert_same_objects(template(tmp_path), kustomize(ROOT / "manifests"))


def test_cert_manager_source_renders_exactly_the_cert_manager_overlay(tmp_path: Path) -> None:
    assert_same_objects(
        template(tmp_path, {"tls": {"source": "certManager"}}),
        kustomize(compose(tmp_path / "kustomize", "cert-manager")),
    )


def test_inline_source_renders_exactly_the_overlay_of_the_certs_command(certs: Path, tmp_path: Path) -> None:
    assert_same_objects(template(tmp_path, inline_values(certs)), kustomize(certs))


def test_secret_source_with_a_ca_bundle_is_the_certs_overlay_but_its_secret(certs: Path, tmp_path: Path) -> None:
    overlay = [doc for key, doc in objects(kustomize(certs)).items() if key[1] != "Secret"]
    pem = (certs / "ca.crt").read_text()
    for ca in (pem, base64.b64encode(pem.encode()).decode()):  # PEM, or its base64
        assert_same_objects(template(tmp_path, {"tls": {"caBundle": ca}}), yaml.safe_dump_all(overlay))


# --- (c) the values an operator sets land where they act --------------------------------------


def test_operator_values_reach_the_deployment_pdb_and_webhooks(tmp_path: Path) -> None:
    rendered = objects(template(tmp_path, OPERATOR_VALUES))
    deployment = one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/platform/agent-workspace-webhook:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == OPERATOR_VALUES["resources"]
    env = env_of(rendered)
    assert env["WEBHOOK_NAMING_MODE"] == "agent"
    assert env["WEBHOOK_LEGACY_OWNER"] == "rex"
    assert json.loads(env["WEBHOOK_AGENT_TABLE"]) == OPERATOR_VALUES["settings"]["agentTable"]
    assert env["WEBHOOK_AGENT_PATTERN"] == OPERATOR_VALUES["settings"]["agentPattern"]
    assert json.loads(env["WEBHOOK_SHARED_GROUPS"]) == OPERATOR_VALUES["settings"]["sharedGroups"]
    assert env["WEBHOOK_STORAGE_SIZE"] == "20Gi"
    assert env["WEBHOOK_STORAGE_CLASS"] == "fast-ssd"
    assert json.loads(env["WEBHOOK_ACCESS_MODES"]) == ["ReadWriteMany"]
    assert (env["WEBHOOK_SEED_FROM_LEGACY"], env["WEBHOOK_COLOCATE"]) == ("clone", "false")
    assert env["WEBHOOK_KUBE_DEADLINE_SECONDS"] == "1.5"
    assert one(rendered, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": SELECTOR},
    }
    hooks = one(rendered, "MutatingWebhookConfiguration")["webhooks"]
    # The entries for the controller's own objects (its cleanup Jobs, its PVCs) and for the volumes
    # are Ignore whatever the setting: their failures must never fail the controller or provisioning.
    assert [(h["timeoutSeconds"], h["failurePolicy"]) for h in hooks] == [(10, "Ignore")] * 5


@pytest.mark.parametrize(
    ("github_app", "agent", "pvc"),
    [
        ("Acme-Builder", "builder", "workspace-cto-builder"),  # the agent table
        ("acme-tester[bot]", "tester", "workspace-cto-tester"),  # the agent pattern
        ("5DLabs-Rex", "rex", "workspace-cto-impl"),  # a shared group
    ],
)
def test_the_webhook_accepts_the_rendered_settings(github_app: str, agent: str, pvc: str, tmp_path: Path) -> None:
    """The WEBHOOK_* variables of the Deployment, given to the webhook's own CLI: they validate
    (as at start-up) and decide as the operator meant."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_")}
    env.update(env_of(objects(template(tmp_path, OPERATOR_VALUES))))
    result = run(CLI, "agent", github_app, "--service", "cto", "-o", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["agent"] == agent
    assert json.loads(result.stdout)["pvc"] == pvc


# --- every setting of settings.py, all the way to the Deployment --------------------------------

# The settings the chart does not take as settings.*, and where the others are: ops/reference.py
# (NOT_CHART_SETTINGS, chart_path), which also writes docs/configuration.md.
# A value for each setting, other than its default, as an operator would write it in values.yaml.
SAMPLES: dict[str, Any] = {
    "naming_mode": "agent",
    "legacy_owner": "rex",
    "agent_table": {"Acme-Builder": "builder"},
    "agent_pattern": r"^acme[-_](?P<agent>[a-z][a-z0-9-]*?)(\[bot\])?$",
    "shared_groups": [{"agents": ["rex", "blaze"], "suffix": "impl"}],
    "workspace_volume": "scratch",
    "pod_service_label": "platform/service",
    "pod_app_label": "platform/app",
    "coderun_group": "runs.example.com",
    "coderun_version": "v2",
    "coderun_plural": "agentruns",
    "storage_size": "20Gi",
    "storage_class": "fast-ssd",
    "access_modes": ["ReadWriteMany"],
    "seed_from_legacy": "clone",
    "colocate": False,
    "grow_existing": True,
    "max_workspaces_per_namespace": 50,
    "max_fresh_per_hour": 5,
    "create_for": "verified-runs",
    "agent_allowlist": ["cipher", "atlas"],
    "kube_deadline_seconds": 1.5,
    "ready_timeout_seconds": 2,
    "kube_pool_size": 16,
    "watch_caches": False,
    "max_body_bytes": 4194304,
    "max_pending_bytes": 33554432,
    "max_in_flight": 512,
    "tls_reload_seconds": 30,
    "shutdown_grace_seconds": 8,
    "request_timeout_seconds": 5,
    "max_connections": 400,
    "log_level": "DEBUG",
    "client_ca_file": "/tls/client-ca.crt",
    "client_names": ["kube-apiserver"],
}


def test_every_setting_has_a_chart_value_a_schema_entry_and_reaches_the_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_workspace_webhook.settings import Settings, load_settings

    chartable = set(Settings.model_fields) - set(NOT_CHART_SETTINGS)
    assert chartable == set(SAMPLES), (
        "settings.py and the chart disagree: give each new setting a key in values.yaml (settings.*), "
        f"an entry in values.schema.json and a sample here; unmatched: {sorted(chartable ^ set(SAMPLES))}"
    )
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["settings"]
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["settings"]
    values: dict[str, Any] = {}
    for setting, sample in SAMPLES.items():
        *parents, key = chart_path(setting)
        where_default, where_schema, where_values = defaults, schema, values
        for parent in parents:
            where_default, where_schema = where_default[parent], where_schema["properties"][parent]
            where_values = where_values.setdefault(parent, {})
        assert key in where_default, f"values.yaml has no settings.{'.'.join(chart_path(setting))}"
        assert key in where_schema["properties"], f"values.schema.json has no settings.{'.'.join(chart_path(setting))}"
        where_values[key] = sample
    env = env_of(objects(template(tmp_path, {"settings": values})))
    webhook_env = {name for name in env if name.startswith("WEBHOOK_")}
    expected = {f"WEBHOOK_{name.upper()}" for name in SAMPLES} | {"WEBHOOK_NAMESPACE_SELECTOR", "WEBHOOK_OWN_NAMESPACE"}
    assert webhook_env == expected
    for name, value in env.items():  # as the webhook reads them at start-up
        monkeypatch.setenv(name, value)
    loaded = load_settings()
    for setting, sample in SAMPLES.items():
        got = getattr(loaded, setting)
        got = [g.model_dump() for g in got] if setting == "shared_groups" else got
        assert (str(got) if setting == "client_ca_file" else got) == sample, setting


def test_cert_manager_with_an_issuer_of_ones_own(tmp_path: Path) -> None:
    issuer = {"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    rendered = objects(template(tmp_path, {"tls": {"source": "certManager", "certManager": {"issuerRef": issuer}}}))
    certificate = one(rendered, "Certificate")
    assert certificate["metadata"]["name"] == "agent-workspace-webhook-serving"
    assert certificate["spec"]["issuerRef"] == issuer
    assert certificate["spec"]["secretName"] == "agent-workspace-webhook-tls"
    assert not any(kind == "Issuer" for _, kind, _, _ in rendered)
    config = one(rendered, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "agent-workspace-webhook/agent-workspace-webhook-serving"
    }
    assert all("caBundle" not in hook["clientConfig"] for hook in config["webhooks"])


def schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every value of values.schema.json, with its path (items of a list as [])."""
    found = [(path, node)] if path else []
    for key, child in node.get("properties", {}).items():
        found += schema_nodes(child, f"{path}.{key}" if path else key)
    if isinstance(node.get("items"), dict) and "properties" in node["items"]:
        found += schema_nodes(node["items"], f"{path}[]")
    return found


def test_every_value_in_the_schema_says_what_it_does() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    nodes = schema_nodes(schema)
    assert len(nodes) > 140  # nested values included
    undocumented = [path for path, node in nodes if not str(node.get("description", "")).strip()]
    assert not undocumented, f"values.schema.json: no description for {undocumented}"


def test_names_and_namespace_follow_the_release() -> None:
    result = helm("template", "aww", CHART, "--namespace", "platform", "--set", "tls.source=certManager")
    assert result.returncode == 0, result.stderr
    rendered = objects(result.stdout)
    name = "aww-agent-workspace-webhook"
    assert {n for _, _, _, n in rendered} == {
        "platform",  # the Namespace
        name,
        f"{name}-selfsigned",
        f"{name}-ca",
        f"{name}-serving",
    }
    assert {ns for _, kind, ns, _ in rendered if kind not in CLUSTER_SCOPED} == {"platform"}
    binding = one(rendered, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "platform"}]
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert pod["volumes"] == [{"name": "tls", "secret": {"secretName": f"{name}-tls"}}]
    config = one(rendered, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": f"platform/{name}-serving"}
    for hook in config["webhooks"]:
        assert hook["clientConfig"]["service"] == {
            "name": name,
            "namespace": "platform",
            "path": "/mutate",
            "port": 443,
        }
        if hook["rules"][0]["scope"] == "Namespaced":  # a volume's is cluster-scoped: its claim's is checked
            assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["platform", "kube-system"]
    serving = rendered[("cert-manager.io/v1", "Certificate", "platform", f"{name}-serving")]
    assert serving["spec"]["secretName"] == f"{name}-tls"
    assert serving["spec"]["dnsNames"] == [f"{name}.platform.svc", f"{name}.platform.svc.cluster.local"]


def test_every_object_carries_the_standard_labels_and_selectors_only_name_and_instance(tmp_path: Path) -> None:
    everything = {
        "installCRD": True,
        "tls": {"source": "certManager"},
        "prune": {"enabled": True},
        "workspaceStorageClass": {"create": True, "provisioner": "ebs.csi.aws.com"},
        "monitoring": {key: {"enabled": True} for key in ("serviceMonitor", "podMonitor", "rules", "dashboard")},
    }
    rendered = objects(template(tmp_path, everything))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    standard = {
        **SELECTOR,
        "app.kubernetes.io/version": chart["appVersion"],
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": f"agent-workspace-webhook-{chart['version']}",
    }
    for key, doc in rendered.items():
        labels = doc["metadata"].get("labels", {})
        assert labels.items() >= standard.items(), f"{key}: {labels}"
    deployment = one(rendered, "Deployment")["spec"]
    # Immutable: as 0.2.0 installed it, so that `helm upgrade` from it goes through.
    assert deployment["selector"] == {"matchLabels": {"app.kubernetes.io/name": "agent-workspace-webhook"}}
    assert deployment["template"]["metadata"]["labels"].items() >= standard.items()
    assert one(rendered, "Service")["spec"]["selector"] == SELECTOR
    assert one(rendered, "PodDisruptionBudget")["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert one(rendered, "NetworkPolicy")["spec"]["podSelector"] == {"matchLabels": SELECTOR}
    assert one(rendered, "ServiceMonitor")["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert one(rendered, "PodMonitor")["spec"]["selector"] == {"matchLabels": SELECTOR}


def test_the_chart_refuses_a_cluster_older_than_its_apis() -> None:
    old = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, "--kube-version", "1.29.9")
    assert old.returncode != 0 and "kubeVersion" in old.stderr, old.stderr
    ok = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, "--kube-version", "1.30.0")
    assert ok.returncode == 0, ok.stderr


def test_namespace_can_be_left_to_others_and_the_crd_is_the_platforms(tmp_path: Path) -> None:
    # No CRD by default (the platform's; tests/e2e/test_platform_crd.py checks the opt-in).
    rendered = objects(template(tmp_path, {"namespace": {"create": False}}))
    kinds = {kind for _, kind, _, _ in rendered}
    assert not kinds & {"Namespace", "CustomResourceDefinition"}
    assert "Deployment" in kinds


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"tls": {"source": "vault"}},
            "at '/tls/source': value must be one of 'secret', 'inline', 'certManager'",
            id="tls.source",
        ),
        pytest.param({"tls": {"sorce": "certManager"}}, "additional properties 'sorce' not allowed", id="misspelt-key"),
        pytest.param(
            {"settings": {"namingMode": "agents"}},
            "at '/settings/namingMode': value must be one of 'legacy', 'dual', 'agent'",
            id="namingMode",
        ),
        pytest.param(
            {"settings": {"legacyOwner": "Rex"}},
            "at '/settings/legacyOwner': 'Rex' does not match pattern",
            id="legacyOwner",
        ),
        pytest.param(
            {"settings": {"agentTable": {"5DLabs-Rex": "Rex!"}}},
            "at '/settings/agentTable/5DLabs-Rex': 'Rex!' does not match",
            id="agentTable",
        ),
        pytest.param(
            {"settings": {"agentPattern": "^acme-(.*)$"}},
            "at '/settings/agentPattern': '^acme-(.*)$' does not match pattern",
            id="agentPattern",
        ),
        pytest.param(
            {"settings": {"storage": {"size": "10GB"}}},
            'settings.storage.size must be a Kubernetes quantity such as 10Gi, not "10GB"',
            id="storage.size",
        ),
        pytest.param(
            {"settings": {"storage": {"accessModes": ["RWO"]}}},
            "/storage/accessModes/0': value must be one of 'ReadWriteOnce'",
            id="accessModes",
        ),
        pytest.param(
            {"settings": {"seedFromLegacy": "copy"}},
            "/settings/seedFromLegacy': value must be one of",
            id="seedFromLegacy",
        ),
        pytest.param({"settings": {"logLevel": "verbose"}}, "/settings/logLevel': value must be one of", id="logLevel"),
        pytest.param(
            {"extraEnv": [{"name": "WEBHOOK_NAMING_MODE", "value": "agent"}]},
            "extraEnv: WEBHOOK_NAMING_MODE is already set",
            id="extraEnv",
        ),
        pytest.param(
            {"tls": {"source": "inline"}}, "tls.source inline needs tls.cert, tls.key and tls.caBundle", id="inline"
        ),
        pytest.param(
            {"tls": {"caBundle": "not-a-certificate"}},
            'or its base64, not "not-a-certificate"',
            id="caBundle",
        ),
        pytest.param(
            {"webhook": {"failurePolicy": "fail"}},
            "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'",
            id="failurePolicy",
        ),
    ],
)
def test_a_wrong_value_stops_the_render_naming_it(values: dict[str, Any], message: str, tmp_path: Path) -> None:
    result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *values_args(tmp_path, values))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- (c2) the conventions of cert-manager's chart: placement, identity, ports, selectors --------

DIGEST = "sha256:" + "ab" * 32
CONVENTION_VALUES: dict[str, Any] = {
    "image": {"digest": DIGEST, "tag": "1.2.3"},
    "podLabels": {"team": "platform", "app.kubernetes.io/name": "not-this"},
    "podAnnotations": {"example.com/owner": "platform"},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]
            }
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR},
        }
    ],
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532},
    "containerSecurityContext": {"allowPrivilegeEscalation": False, "privileged": False},
    "extraArgs": ["--log-level", "DEBUG"],
}


def test_placement_and_pod_values_reach_the_deployment(tmp_path: Path) -> None:
    rendered = objects(template(tmp_path, CONVENTION_VALUES))
    template_ = one(rendered, "Deployment")["spec"]["template"]
    pod, container = template_["spec"], template_["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/5dlabs/agent-workspace-webhook@{DIGEST}"  # the digest wins
    labels = template_["metadata"]["labels"]
    assert labels["team"] == "platform"
    assert labels["app.kubernetes.io/name"] == "agent-workspace-webhook"  # the chart's own stay
    assert template_["metadata"]["annotations"] == {"example.com/owner": "platform"}
    for key in ("affinity", "topologySpreadConstraints", "priorityClassName", "nodeSelector", "tolerations"):
        assert pod[key] == CONVENTION_VALUES[key], key
    # Merged over the chart's (helm merges maps): a key set to null drops one of the chart's.
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 10001,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["args"][-2:] == ["--log-level", "DEBUG"]
    # By default: the preferred anti-affinity, no spread, no priority class.
    default_pod = one(objects(template(tmp_path)), "Deployment")["spec"]["template"]["spec"]
    assert default_pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert not {"topologySpreadConstraints", "priorityClassName", "hostNetwork"} & default_pod.keys()
    pruned = objects(template(tmp_path, {"image": {"digest": DIGEST}, "prune": {"enabled": True}}))
    prune_pod = one(pruned, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert prune_pod["containers"][0]["image"] == f"ghcr.io/5dlabs/agent-workspace-webhook@{DIGEST}"


def test_a_token_mounted_otherwise_and_extra_volumes_reach_the_pod(tmp_path: Path) -> None:
    token = {"name": "api-token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
    mount = {"name": "api-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}
    values = {"automountServiceAccountToken": False, "volumes": [token], "volumeMounts": [mount]}
    pod = one(objects(template(tmp_path, values)), "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert [v["name"] for v in pod["volumes"]] == ["tls", "api-token"]  # its own first
    assert pod["containers"][0]["volumeMounts"][1:] == [mount]
    default_pod = one(objects(template(tmp_path)), "Deployment")["spec"]["template"]["spec"]
    assert "automountServiceAccountToken" not in default_pod
    assert [v["name"] for v in default_pod["volumes"]] == ["tls"]


POD_VALUES = ("securityContext", "containerSecurityContext", "nodeSelector", "tolerations")


def test_the_prune_job_runs_as_the_webhook_does(tmp_path: Path) -> None:
    values = {
        "prune": {"enabled": True, "resources": {"limits": {"memory": "96Mi"}}},
        "imagePullSecrets": [{"name": "regcred"}],
        "image": {"pullPolicy": "Always"},
        **{
            key: CONVENTION_VALUES[key]
            for key in ("securityContext", "containerSecurityContext", "nodeSelector", "tolerations")
        },
    }
    rendered = objects(template(tmp_path, values))
    webhook = one(rendered, "Deployment")["spec"]["template"]["spec"]
    prune = one(rendered, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for key in ("securityContext", "nodeSelector", "tolerations", "imagePullSecrets"):
        assert prune[key] == webhook[key], key
    container = prune["containers"][0]
    assert container["securityContext"] == webhook["containers"][0]["securityContext"]
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "96Mi"}}
    # By default, the restricted profile, as the webhook's Pod.
    default = one(objects(template(tmp_path, {"prune": {"enabled": True}})), "CronJob")
    default_pod = default["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert default_pod["securityContext"]["runAsNonRoot"] is True
    assert default_pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert default_pod["containers"][0]["resources"]["limits"] == {"memory": "128Mi"}


def test_the_service_account_can_be_annotated_or_brought(tmp_path: Path) -> None:
    role_arn = {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/workspaces"}
    values = {"serviceAccount": {"annotations": role_arn, "automountServiceAccountToken": True}}
    account = one(objects(template(tmp_path, values)), "ServiceAccount")
    assert (account["metadata"]["annotations"], account["automountServiceAccountToken"]) == (role_arn, True)
    brought = objects(template(tmp_path, {"serviceAccount": {"create": False, "name": "platform-webhooks"}}))
    assert not [key for key in brought if key[1] == "ServiceAccount"]
    assert one(brought, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-webhooks"
    assert one(brought, "ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "platform-webhooks", "namespace": NAMESPACE}
    ]


def test_host_network_and_the_ports_move_together(tmp_path: Path) -> None:
    values = {"hostNetwork": True, "securePort": 10250, "metricsPort": 10251}
    rendered = objects(template(tmp_path, values))
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert (pod["hostNetwork"], pod["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    container = pod["containers"][0]
    args = container["args"]
    assert args[args.index("--port") + 1] == "10250"
    assert args[args.index("--metrics-port") + 1] == "10251"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"https": 10250, "metrics": 10251}
    # The Service's 443 and 8080 reach them through the ports' names; the probes too.
    service_ports = {p["port"]: p["targetPort"] for p in one(rendered, "Service")["spec"]["ports"]}
    assert {port: ports[target] for port, target in service_ports.items()} == {443: 10250, 8080: 10251}
    assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    policy = one(rendered, "NetworkPolicy")["spec"]["ingress"]
    assert [rule["ports"][0]["port"] for rule in policy] == [10250, 10251]
    default_args = one(objects(template(tmp_path)), "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--metrics-port" not in default_args and default_args[default_args.index("--port") + 1] == "8443"


def test_the_webhook_configuration_takes_annotations_and_narrower_selectors(tmp_path: Path) -> None:
    opt_out = {"key": "agents.platform/no-workspace", "operator": "DoesNotExist"}
    values = {
        "webhook": {
            "annotations": {"example.com/owner": "platform"},
            "namespaceSelector": {"matchLabels": {"team": "agents"}},
            "objectSelector": {"matchExpressions": [opt_out]},
        },
        "tls": {"source": "certManager"},
    }
    config = one(objects(template(tmp_path, values)), "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "example.com/owner": "platform",
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/{RELEASE}-serving",
    }
    hooks = {hook["name"].split(".")[0]: hook for hook in config["webhooks"]}
    for name in ("pods", "coderuns", "cleanup", "claims"):
        selector = hooks[name]["namespaceSelector"]
        assert selector["matchLabels"] == {"agents.platform/workspaces": "enabled", "team": "agents"}, name
        assert selector["matchExpressions"][0]["values"] == [NAMESPACE, "kube-system"], name
        assert hooks[name]["objectSelector"]["matchExpressions"] == [opt_out], name
    assert hooks["pods"]["objectSelector"]["matchLabels"] == {"component": "code-runner"}
    assert "objectSelector" not in hooks["volumes"] and "namespaceSelector" not in hooks["volumes"]


def test_the_coderun_resource_and_the_workspace_volume_follow_the_settings(tmp_path: Path) -> None:
    settings = {"coderunGroup": "runs.example.com", "coderunVersion": "v1beta1", "coderunPlural": "agentruns"}
    rendered = objects(template(tmp_path, {"settings": {**settings, "workspaceVolume": "work"}}))
    hooks = {hook["name"].split(".")[0]: hook for hook in one(rendered, "MutatingWebhookConfiguration")["webhooks"]}
    rule = hooks["coderuns"]["rules"][0]
    assert (rule["apiGroups"], rule["apiVersions"], rule["resources"]) == (
        ["runs.example.com"],
        ["v1beta1"],
        ["agentruns"],
    )
    assert ("runs.example.com", "agentruns", "get") in rules_of(rendered, RELEASE)
    assert not [r for r in rules_of(rendered, RELEASE) if r[0] == "agents.platform"]
    for name in ("pods", "cleanup"):
        assert "v.name == 'work'" in hooks[name]["matchConditions"][0]["expression"], name
    env = env_of(rendered)
    assert (env["WEBHOOK_CODERUN_GROUP"], env["WEBHOOK_WORKSPACE_VOLUME"]) == ("runs.example.com", "work")
    default_hooks = one(objects(template(tmp_path)), "MutatingWebhookConfiguration")["webhooks"]
    assert "v.name == 'workspace'" in default_hooks[0]["matchConditions"][0]["expression"]
    clash = helm("template", RELEASE, CHART, "--set", "installCRD=true,settings.coderunPlural=agentruns")
    assert clash.returncode != 0 and "installCRD is the stand-in for coderuns.agents.platform" in clash.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": {"digest": "latest"}}, "at '/image/digest': 'latest' does not match pattern"),
        ({"image": {"pullPolicy": "always"}}, "at '/image/pullPolicy': value must be one of"),
        ({"securePort": 70000}, "at '/securePort': maximum: got 70,000, want 65,535"),
        ({"securePort": 8080}, "securePort and metricsPort must differ, both are 8080"),
        ({"serviceAccount": {"nme": "x"}}, "additional properties 'nme' not allowed"),
        ({"priorityClassName": "System_Critical"}, "at '/priorityClassName': 'System_Critical' does not match"),
        ({"extraArgs": "--log-level DEBUG"}, "at '/extraArgs': got string, want array"),
        ({"volumes": [{"emptyDir": {}}]}, "at '/volumes/0': missing property 'name'"),
        ({"volumeMounts": [{"name": "x", "mountPath": "x"}]}, "at '/volumeMounts/0/mountPath': 'x' does not match"),
        ({"automountServiceAccountToken": "no"}, "at '/automountServiceAccountToken': got string, want"),
        (
            {"webhook": {"objectSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}}},
            "/objectSelector/matchExpressions/0/operator': value must be one of",
        ),
        ({"settings": {"coderunVersion": "1"}}, "at '/settings/coderunVersion': '1' does not match pattern"),
        ({"settings": {"workspaceVolume": "Workspace"}}, "at '/settings/workspaceVolume': 'Workspace' does not match"),
        ({"settings": {"coderunGroup": "coderuns"}}, "at '/settings/coderunGroup': 'coderuns' does not match"),
    ],
    ids=lambda v: "" if isinstance(v, str) else json.dumps(v),
)
def test_a_wrong_convention_value_is_refused(values: dict[str, Any], message: str, tmp_path: Path) -> None:
    result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *values_args(tmp_path, values))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- (d) through the real API server ----------------------------------------------------------


def test_port_8443_can_be_narrowed_to_the_api_server_without_editing_yaml(tmp_path: Path) -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]
    values = {"networkPolicy": {"apiServerCIDRs": ["10.1.0.0/28", "fd00::/120"], "apiServerFrom": peers}}
    policy = one(objects(template(tmp_path, values)), "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"] == [
        *peers,
        {"ipBlock": {"cidr": "10.1.0.0/28"}},
        {"ipBlock": {"cidr": "fd00::/120"}},
    ]
    assert policy["spec"]["ingress"][1]["from"] == []  # probes and /metrics stay open
    overlay = one(objects(kustomize(compose(tmp_path / "kustomize", "apiserver-only"))), "NetworkPolicy")
    assert overlay["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.0.2.0/28"}}]
    bad = helm("template", RELEASE, CHART, "--set-json", 'networkPolicy.apiServerCIDRs=["not-a-cidr"]')
    assert bad.returncode != 0 and "apiServerCIDRs" in bad.stderr


# The workspaces' own Retain class, growing, and the prune CronJob, all on.
LIFECYCLE_VALUES: dict[str, Any] = {
    "workspaceStorageClass": {"create": True, "provisioner": "ebs.csi.aws.com"},
    "prune": {"enabled": True, "keep": 5},
    "settings": {"growExisting": True},
}


def rules_of(rendered: dict[Key, dict[str, Any]], role: str) -> list[tuple[str, str, str]]:
    found = rendered[("rbac.authorization.k8s.io/v1", "ClusterRole", None, role)]
    return [
        (g, r, v)
        for rule in found["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    ]


def test_the_workspace_class_prune_and_growth_render_with_their_own_rights(tmp_path: Path) -> None:
    default = objects(template(tmp_path))
    assert not [k for k in default if k[1] in ("StorageClass", "CronJob")]
    assert ("", "persistentvolumeclaims", "patch") not in rules_of(default, RELEASE)
    rendered = objects(template(tmp_path, LIFECYCLE_VALUES))
    storage_class = one(rendered, "StorageClass")
    assert (
        storage_class["metadata"]["name"],
        storage_class["reclaimPolicy"],
        storage_class["allowVolumeExpansion"],
    ) == ("agent-workspaces", "Retain", True)
    env = env_of(rendered)
    assert (env["WEBHOOK_STORAGE_CLASS"], env["WEBHOOK_GROW_EXISTING"]) == ("agent-workspaces", "true")
    webhook_rights = rules_of(rendered, RELEASE)
    assert ("", "persistentvolumeclaims", "patch") in webhook_rights
    assert ("storage.k8s.io", "storageclasses", "get") in webhook_rights
    assert not [r for r in webhook_rights if r[2] == "delete" or r[1] == "persistentvolumes"]  # never the webhook's
    prune = one(rendered, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert prune["serviceAccountName"] == f"{RELEASE}-prune"
    assert prune["containers"][0]["command"] == [
        "agent-workspace-webhook",
        "workspaces",
        "prune",
        "--keep",
        "5",
        "--yes",
    ]
    assert ("", "persistentvolumeclaims", "delete") in rules_of(rendered, f"{RELEASE}-prune")
    failed = helm("template", RELEASE, CHART, "--set", "workspaceStorageClass.create=true")
    assert failed.returncode != 0 and "workspaceStorageClass.provisioner is required" in failed.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("values", ["default", "inline", "operator", "lifecycle", "conventions"])
def test_rendered_chart_applies_server_side(values: str, cluster: Environment, certs: Path, tmp_path: Path) -> None:
    chosen = {
        "default": None,
        "inline": inline_values(certs),
        "operator": OPERATOR_VALUES,
        "lifecycle": LIFECYCLE_VALUES,
        "conventions": {
            **CONVENTION_VALUES,
            "hostNetwork": True,
            "securePort": 10250,
            "serviceAccount": {"annotations": {"example.com/role": "x"}, "automountServiceAccountToken": True},
            "automountServiceAccountToken": True,
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "16Mi"}}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            "prune": {"enabled": True, "resources": {"limits": {"memory": "96Mi"}}},
            "webhook": {
                "annotations": {"example.com/owner": "platform"},
                "objectSelector": {"matchExpressions": [{"key": "no-workspace", "operator": "DoesNotExist"}]},
            },
            "settings": {"coderunGroup": "runs.example.com", "coderunPlural": "agentruns", "workspaceVolume": "work"},
        },
    }[values]
    rendered = template(tmp_path, chosen)
    kubectl: list[str | Path] = [tool("kubectl"), "--kubeconfig", cluster.plane.kubeconfig]
    # The tests' own registration points clientConfig at a URL; an apply over it would merge in
    # `service` beside `url`. Take it away for the dry run, as on a cluster without the webhook.
    deleted = run(*kubectl, "delete", "mutatingwebhookconfiguration", RELEASE)
    assert deleted.returncode == 0, deleted.stderr
    try:
        applied = run(*kubectl, "apply", "--dry-run=server", "-f", "-", stdin=rendered)
    finally:
        cluster.restore()
    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.splitlines()
    assert len(lines) == len(objects(rendered)), applied.stdout
    assert all(line.endswith("(server dry run)") for line in lines), applied.stdout


@pytest.mark.e2e
def test_helm_install_and_upgrade_as_the_readme_says(cluster: Environment, certs: Path) -> None:
    """`helm install --create-namespace --set namespace.create=false` (helm stores the release in
    the namespace before it creates the chart's objects), then an upgrade that changes a setting.
    A release of its own name and namespace beside the fixture's install."""
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    kubeconfig = ["--kubeconfig", str(cluster.plane.kubeconfig), "--namespace", namespace]
    tls = [f"tls.cert={certs / 'tls.crt'}", f"tls.key={certs / 'tls.key'}", f"tls.caBundle={certs / 'ca.crt'}"]
    installed = helm(
        "install", "aww", CHART, *kubeconfig, "--create-namespace", "--set", "namespace.create=false",
        "--set", "tls.source=inline", "--set-file", ",".join(tls),
    )  # fmt: skip
    try:
        assert installed.returncode == 0, installed.stderr
        upgraded = helm("upgrade", "aww", CHART, *kubeconfig, "--reuse-values", "--set", "settings.namingMode=agent")
        assert upgraded.returncode == 0, upgraded.stderr
        got = run(tool("kubectl"), *kubeconfig, "get", "deployment,service,secret,pdb", "-o", "json")
        assert got.returncode == 0, got.stderr
        items = {(item["kind"], item["metadata"]["name"]) for item in json.loads(got.stdout)["items"]}
        name = "aww-agent-workspace-webhook"
        assert {
            ("Deployment", name),
            ("Service", name),
            ("Secret", f"{name}-tls"),
            ("PodDisruptionBudget", name),
        } <= items
        deployment = next(i for i in json.loads(got.stdout)["items"] if i["kind"] == "Deployment")
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "WEBHOOK_NAMING_MODE", "value": "agent"} in env
    finally:
        # Its webhook configuration points at a Service without pods: never leave it behind.
        uninstalled = helm("uninstall", "aww", *kubeconfig)
    assert uninstalled.returncode == 0, uninstalled.stderr


@pytest.mark.e2e
def test_an_upgrade_that_forgets_the_ca_bundle_keeps_the_one_in_force(cluster: Environment, certs: Path) -> None:
    """The secret source: `helm upgrade` with neither tls.caBundle nor --reuse-values (helm then
    renders the defaults) must not strip the CA the API server checks the webhook with, which
    would refuse every agent run; a new caBundle given on the upgrade still replaces it."""
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    kubeconfig = ["--kubeconfig", str(cluster.plane.kubeconfig), "--namespace", namespace]
    name = "awc-agent-workspace-webhook"
    common = ["--set", "namespace.create=false"]

    def ca_bundles() -> set[str]:
        got = run(tool("kubectl"), *kubeconfig, "get", "mutatingwebhookconfiguration", name, "-o", "json")
        assert got.returncode == 0, got.stderr
        return {hook["clientConfig"].get("caBundle", "") for hook in json.loads(got.stdout)["webhooks"]}

    installed = helm(
        "install", "awc", CHART, *kubeconfig, "--create-namespace", *common,
        "--set-file", f"tls.caBundle={certs / 'ca.crt'}",
    )  # fmt: skip
    try:
        assert installed.returncode == 0, installed.stderr
        ours = base64.b64encode((certs / "ca.crt").read_bytes()).decode()
        assert ca_bundles() == {ours}
        forgetful = helm("upgrade", "awc", CHART, *kubeconfig, *common, "--set", "settings.storage.size=12Gi")
        assert forgetful.returncode == 0, forgetful.stderr
        assert ca_bundles() == {ours}
        other = base64.b64encode((certs / "tls.crt").read_bytes()).decode()  # any other PEM certificate
        replaced = helm("upgrade", "awc", CHART, *kubeconfig, *common, "--set", f"tls.caBundle={other}")
        assert replaced.returncode == 0, replaced.stderr
        assert ca_bundles() == {other}
    finally:
        uninstalled = helm("uninstall", "awc", *kubeconfig)
    assert uninstalled.returncode == 0, uninstalled.stderr
