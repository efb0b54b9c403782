"""One version everywhere, from one place: the package's metadata (pyproject.toml). The CLI,
the start-up log line, the build_info metric, the chart's appVersion, its default image tag and
the image manifests/ runs all say the same, and this fails when any drifts."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.ops.manifests import load_yaml
from agent_workspace_webhook.server.app import create_app
from agent_workspace_webhook.server.probes import create_probe_app
from agent_workspace_webhook.settings import load_settings
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.tools import free_port, tool
from agent_workspace_webhook.version import version

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "agent-workspace-webhook"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_installed_package_is_the_checkouts_version() -> None:
    assert metadata.version("agent-workspace-webhook") == VERSION == version(), (
        "the installed metadata lags pyproject.toml: pip install -e . again"
    )


def test_the_cli_says_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent_workspace_webhook", "--version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"agent-workspace-webhook {VERSION}")


def test_the_serving_log_line_says_it(tmp_path: Path) -> None:
    hook = LocalWebhook(free_port(), {"WEBHOOK_STORE": "memory"}, None, tmp_path / "serve.log", insecure=True).start()
    hook.stop()
    serving = next(line for line in hook.log().splitlines() if '"event":"serving"' in line)
    assert json.loads(serving)["version"] == VERSION


def test_the_build_info_metric_says_it() -> None:
    app = create_app(load_settings(store="memory"), MemoryStore())
    with TestClient(create_probe_app(app)) as probes:
        assert f'agent_workspace_webhook_build_info{{version="{VERSION}"}} 1.0' in probes.get("/metrics").text


@pytest.mark.tools
def test_the_chart_and_the_manifests_run_this_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == VERSION, "charts/.../Chart.yaml appVersion differs from pyproject.toml"
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    deployment = next(
        d for d in load_yaml(ROOT / "manifests" / "base" / "deployment.yaml") if d["kind"] == "Deployment"
    )
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{VERSION}")
    rendered = subprocess.run(
        [str(tool("helm")), "template", "x", str(CHART)], capture_output=True, text=True, check=True
    ).stdout
    images = [
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Deployment"
    ]
    assert images == [f"ghcr.io/5dlabs/agent-workspace-webhook:{VERSION}"]


def test_the_license_is_named_where_people_look() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
