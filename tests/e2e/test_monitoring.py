"""Monitoring (issue 21): the chart's ServiceMonitor, PodMonitor, PrometheusRule and Grafana
dashboard, and the manifests/monitoring Component. The alert rules pass promtool's check and a unit test of
each alert, firing and not; every expression of the rules and the dashboard parses and names
only metrics the webhook really serves or the named exporters (kube-state-metrics, the kubelet)
expose; the objects apply server-side beside the Prometheus Operator's CRDs; and a real
Prometheus scrapes a running webhook."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import compose
from agent_workspace_webhook.testing.kube import wait_established
from agent_workspace_webhook.testing.processes import stop_process
from agent_workspace_webhook.testing.runs import run_pod
from agent_workspace_webhook.testing.tools import binaries_dir, free_port, run, tool
from tests.e2e.test_helm import without_release_labels

# helm, kubectl or promtool from controlplane/build.sh (tools); some also need a cluster (e2e)
pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agent-workspace-webhook"
RELEASE = NAMESPACE = "agent-workspace-webhook"
SELECT = {"job": RELEASE, "namespace": NAMESPACE}
ON = ["--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.podMonitor.enabled=true"]
ON += ["--set", "monitoring.rules.enabled=true", "--set", "monitoring.dashboard.enabled=true"]
# What the other exporters the rules and the dashboard name expose (kube-state-metrics, kubelet,
# Prometheus itself); everything else must be the webhook's own.
EXPORTED = {
    "up",
    "kube_deployment_status_replicas_available",
    "kube_persistentvolumeclaim_labels",
    "kubelet_volume_stats_used_bytes",
    "kubelet_volume_stats_capacity_bytes",
}


def rendered(*values: str) -> list[dict[str, Any]]:
    done = run(tool("helm"), "template", RELEASE, CHART, "--namespace", NAMESPACE, *values)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == kind)


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = of_kind(rendered(*ON), "PrometheusRule")["spec"]["groups"][0]["rules"]
    return rules


def dashboard_expressions() -> list[str]:
    board = json.loads(of_kind(rendered(*ON), "ConfigMap")["data"]["agent-workspace-webhook.json"])
    # Grafana's variables, as Grafana substitutes them, so that Prometheus can parse the rest
    return [
        target["expr"].replace("$namespace", ".*").replace("$job", ".*")
        for panel in board["panels"]
        for target in panel["targets"]
    ]


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects (a name followed by a selector, a range or `)`)."""
    found = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)", expression))
    found |= set(re.findall(r"\b(agent_workspace_webhook_[a-z_]+|kube_[a-z_]+|kubelet_[a-z_]+)\b", expression))
    return {name for name in found if not name.startswith("label_")}


# --- the rules, by promtool --------------------------------------------------------------------

# Each alert, firing and not: (case, alert, input series, minutes to evaluate at, labels if it fires)
SERIES = 'namespace="agent-workspace-webhook", job="agent-workspace-webhook"'
DAY = 86400  # promtool's clock starts at 0: an expiry of 10 * DAY is 10 days away
CALLS = f'agent_workspace_webhook_kube_requests_total{{{SERIES}, verb="create", resource="persistentvolumeclaims"'
CASES: list[tuple[str, str, dict[str, str], int, dict[str, str] | None]] = [
    ("down", "AgentWorkspaceWebhookDown", {f"up{{{SERIES}}}": "0x10"}, 6, {}),
    ("up", "AgentWorkspaceWebhookDown", {f"up{{{SERIES}}}": "1x10"}, 6, None),
    ("not ready", "AgentWorkspaceWebhookNotReady", {
        f'kube_deployment_status_replicas_available{{namespace="{NAMESPACE}", deployment="{RELEASE}"}}': "0x10"
    }, 6, {"namespace": NAMESPACE, "deployment": RELEASE}),
    ("ready", "AgentWorkspaceWebhookNotReady", {
        f'kube_deployment_status_replicas_available{{namespace="{NAMESPACE}", deployment="{RELEASE}"}}': "2x10"
    }, 6, None),
    ("errors", "AgentWorkspaceWebhookErrors", {
        f'agent_workspace_webhook_requests_total{{{SERIES}, decision="error"}}': "0+10x20",
        f'agent_workspace_webhook_requests_total{{{SERIES}, decision="patched"}}': "0+10x20",
    }, 16, {}),
    ("few errors", "AgentWorkspaceWebhookErrors", {
        f'agent_workspace_webhook_requests_total{{{SERIES}, decision="error"}}': "0+1x20",
        f'agent_workspace_webhook_requests_total{{{SERIES}, decision="patched"}}': "0+100x20",
    }, 16, None),
    ("slow", "AgentWorkspaceWebhookSlow", {
        f'agent_workspace_webhook_request_duration_seconds_bucket{{{SERIES}, le="2.5"}}': "0x20",
        f'agent_workspace_webhook_request_duration_seconds_bucket{{{SERIES}, le="5.0"}}': "0+10x20",
        f'agent_workspace_webhook_request_duration_seconds_bucket{{{SERIES}, le="+Inf"}}': "0+10x20",
    }, 16, {}),
    ("fast", "AgentWorkspaceWebhookSlow", {
        f'agent_workspace_webhook_request_duration_seconds_bucket{{{SERIES}, le="0.01"}}': "0+10x20",
        f'agent_workspace_webhook_request_duration_seconds_bucket{{{SERIES}, le="+Inf"}}': "0+10x20",
    }, 16, None),
    ("api refuses", "AgentWorkspaceWebhookKubeCallsFailing", {
        f'{CALLS}, code="403"}}': "0+5x20"
    }, 16, {"verb": "create", "resource": "persistentvolumeclaims", "code": "403"}),
    ("races only", "AgentWorkspaceWebhookKubeCallsFailing", {
        f'{CALLS}, code="409"}}': "0+5x20"
    }, 16, None),
    ("refusing", "AgentWorkspaceWebhookOverloaded", {
        f'agent_workspace_webhook_connections_refused_total{{{SERIES}, reason="connections"}}': "0+20x20"
    }, 10, {}),
    ("calm", "AgentWorkspaceWebhookOverloaded", {
        f'agent_workspace_webhook_connections_refused_total{{{SERIES}, reason="connections"}}': "3x20",
        f"agent_workspace_webhook_requests_in_flight{{{SERIES}}}": "5x20",
    }, 10, None),
    ("certificate expiring", "AgentWorkspaceWebhookCertificateExpiring", {
        f"agent_workspace_webhook_certificate_expiry_timestamp_seconds{{{SERIES}}}": f"{10 * DAY}x20"
    }, 11, {}),
    ("certificate renewed", "AgentWorkspaceWebhookCertificateExpiring", {
        f"agent_workspace_webhook_certificate_expiry_timestamp_seconds{{{SERIES}}}": f"{30 * DAY}x20"
    }, 11, None),
    ("pending", "AgentWorkspacePVCsPending", {
        f'agent_workspace_webhook_workspace_pvcs{{{SERIES}, state="Pending"}}': "2x30"
    }, 16, {}),
    ("bound", "AgentWorkspacePVCsPending", {
        f'agent_workspace_webhook_workspace_pvcs{{{SERIES}, state="Pending"}}': "0x30"
    }, 16, None),
    ("stuck deleting", "AgentWorkspacesStuckDeleting", {
        f'agent_workspace_webhook_workspace_pvcs{{{SERIES}, state="deleting"}}': "1x40",
        f'agent_workspace_webhook_requests_total{{{SERIES}, decision="denied"}}': "0+1x40",
    }, 31, {}),
    ("deleting, nobody waits", "AgentWorkspacesStuckDeleting", {
        f'agent_workspace_webhook_workspace_pvcs{{{SERIES}, state="deleting"}}': "1x40",
        f'agent_workspace_webhook_requests_total{{{SERIES}, decision="denied"}}': "7x40",
    }, 31, None),
    ("no coderun crd", "AgentWorkspaceCodeRunsUnserved", {
        f'agent_workspace_webhook_cache_resource_unserved{{{SERIES}, cache="CodeRun"}}': "1x20"
    }, 11, {}),
    ("coderuns served", "AgentWorkspaceCodeRunsUnserved", {
        f'agent_workspace_webhook_cache_resource_unserved{{{SERIES}, cache="CodeRun"}}': "0x20"
    }, 11, None),
    ("nearly full", "AgentWorkspaceNearlyFull", {
        'kubelet_volume_stats_used_bytes{namespace="a", persistentvolumeclaim="workspace-a-rex"}': "95x30",
        'kubelet_volume_stats_capacity_bytes{namespace="a", persistentvolumeclaim="workspace-a-rex"}': "100x30",
        'kube_persistentvolumeclaim_labels{namespace="a", persistentvolumeclaim="workspace-a-rex", '
        'label_app_kubernetes_io_managed_by="agent-workspace-webhook"}': "1x30",
    }, 16, {"namespace": "a", "persistentvolumeclaim": "workspace-a-rex"}),
    ("someone else's full volume", "AgentWorkspaceNearlyFull", {
        'kubelet_volume_stats_used_bytes{namespace="a", persistentvolumeclaim="data"}': "95x30",
        'kubelet_volume_stats_capacity_bytes{namespace="a", persistentvolumeclaim="data"}': "100x30",
        'kube_persistentvolumeclaim_labels{namespace="a", persistentvolumeclaim="data"}': "1x30",
    }, 16, None),
]  # fmt: skip


def expected(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The alert promtool should see: the rule's labels and its annotations with $labels filled in."""
    annotations = {
        key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], value)
        for key, value in rule["annotations"].items()
    }
    return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": annotations}


def test_every_alert_passes_promtool_and_fires_only_when_it_should(tmp_path: Path) -> None:
    rules = alert_rules()
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "agent-workspace-webhook", "rules": rules}]})
    )
    checked = run(tool("promtool"), "check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    by_name = {rule["alert"]: rule for rule in rules}
    assert {alert for _, alert, _, _, _ in CASES} == set(by_name), "every alert has its cases"
    tests = [
        {
            "name": case,
            "interval": "1m",
            "input_series": [{"series": series, "values": values} for series, values in inputs.items()],
            "alert_rule_test": [
                {
                    "eval_time": f"{minutes}m",
                    "alertname": alert,
                    "exp_alerts": [] if fires is None else [expected(by_name[alert], fires)],
                }
            ],
        }
        for case, alert, inputs, minutes, fires in CASES
    ]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": tests}))
    tested = run(tool("promtool"), "test", "rules", "tests.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_links_its_own_section_of_the_runbook() -> None:
    sections = {line[3:].strip() for line in (ROOT / "docs" / "runbook.md").read_text().splitlines()
                if line.startswith("## ")}  # fmt: skip
    for rule in alert_rules():
        assert rule["alert"] in sections, f"docs/runbook.md has no section ## {rule['alert']}"
        assert rule["annotations"]["runbook_url"].endswith(f"runbook.md#{rule['alert'].lower()}")


def test_the_readmes_alert_table_lists_every_alert_with_its_severity() -> None:
    rows = re.findall(r"^  \| (AgentWorkspace\w+) \| (\w+) \|", (ROOT / "README.md").read_text(), re.M)
    assert rows == [(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()]


def test_every_expression_parses_and_names_only_metrics_that_exist(cluster: Environment, tmp_path: Path) -> None:
    expressions = [rule["expr"] for rule in alert_rules()] + dashboard_expressions()
    # promtool parses them: the dashboard's too, as recording rules
    records = [{"record": f"check:expr:{i}", "expr": expr} for i, expr in enumerate(expressions)]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump({"groups": [{"name": "all", "rules": records}]}))
    checked = run(tool("promtool"), "check", "rules", "all.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert cluster.default is not None
    _, exposition = cluster.default.get("/metrics")
    served = {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}
    served |= {f"{name}_bucket" for name in served} | {f"{name}_total" for name in served}
    named = set().union(*(metric_names(expr) for expr in expressions))
    unknown = {n for n in named if n not in served and n not in EXPORTED}
    assert not unknown, f"expressions name metrics nobody serves: {sorted(unknown)}"
    assert {"agent_workspace_webhook_workspace_pvcs", "agent_workspace_webhook_requests_total"} <= named


def test_the_kustomize_monitoring_objects_are_the_charts(tmp_path: Path) -> None:
    done = run(tool("kubectl"), "kustomize", compose(tmp_path / "kustomize", "monitoring"))
    assert done.returncode == 0, done.stderr
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    ours = {(d["kind"], d["metadata"]["name"]): d for d in built if d["kind"] in ("ServiceMonitor", "PrometheusRule")}
    chart = rendered("--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.rules.enabled=true")
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in chart if d["kind"] in ("ServiceMonitor", "PrometheusRule")}
    assert ours == without_release_labels(theirs)  # the chart's objects also carry the release's labels
    assert not [d for d in rendered() if d["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap")]


@pytest.mark.e2e
def test_the_monitoring_objects_apply_beside_the_prometheus_operators_crds(tmp_path: Path) -> None:
    with Environment(workdir=tmp_path / "env") as env:
        kubectl: list[str | Path] = [tool("kubectl"), "--kubeconfig", env.plane.kubeconfig]
        crds = binaries_dir() / "prometheus-operator-crds"
        assert run(*kubectl, "apply", "--server-side", "-f", crds).returncode == 0
        for crd in ("servicemonitors", "podmonitors", "prometheusrules"):
            wait_established(env.admin, f"{crd}.monitoring.coreos.com")
        monitoring = [
            d for d in rendered(*ON) if d["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap")
        ]
        assert len(monitoring) == 4
        applied = run(*kubectl, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(monitoring))
        assert applied.returncode == 0, applied.stderr
        assert len([line for line in applied.stdout.splitlines() if line.endswith("(server dry run)")]) == 4


@pytest.mark.e2e
def test_a_real_prometheus_scrapes_the_webhook(cluster: Environment, namespace: str, tmp_path: Path) -> None:
    from agent_workspace_webhook.testing.kube import create

    assert cluster.default is not None
    create(cluster.admin, namespace, run_pod(cluster.admin, namespace, "scraped", "5dlabs-rex"))
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": RELEASE,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{cluster.default.metrics_port}"], "labels": {"namespace": NAMESPACE}}
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    args = [
        str(tool("prometheus")),
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
    ]
    args += [f"--web.listen-address=127.0.0.1:{port}"]
    with (tmp_path / "prometheus.log").open("wb") as log:
        prometheus = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def query(expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as answer:
            result: list[dict[str, Any]] = json.load(answer)["data"]["result"]
            return result

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if query('agent_workspace_webhook_workspace_pvcs{state="Bound"}'):
                    break
            except OSError:
                pass  # not listening yet
            assert prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.5)
        assert query(f'up{{job="{RELEASE}"}}')[0]["value"][1] == "1"
        served = query('agent_workspace_webhook_requests_total{kind="Pod", decision="patched"}')
        assert served and float(served[0]["value"][1]) >= 1
        version = query("agent_workspace_webhook_build_info")[0]["metric"]["version"]
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", version)
    finally:
        stop_process(prometheus, grace=10)
