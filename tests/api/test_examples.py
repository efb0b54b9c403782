"""The examples/ files the README tells users to curl answer as documented."""

import json
from pathlib import Path
from typing import Any

from agent_workspace_webhook.testing.objects import applied, claim
from tests.api.conftest import MakeClient, mutate

ROOT = Path(__file__).resolve().parents[2]


def post(make_client: MakeClient, name: str, **settings: str) -> dict[str, Any]:
    http, _ = make_client(**settings)
    return mutate(http, (ROOT / "examples" / name).read_bytes())


def test_rex_pod(make_client: MakeClient) -> None:
    answer = post(make_client, "rex-pod.json")
    pod = json.loads((ROOT / "examples/rex-pod.json").read_text())["request"]["object"]
    assert claim(applied(pod, answer)) == "workspace-cto-rex"


def test_cleo_coderun(make_client: MakeClient) -> None:
    answer = post(make_client, "cleo-coderun.json")
    run = json.loads((ROOT / "examples/cleo-coderun.json").read_text())["request"]["object"]
    assert applied(run, answer)["metadata"]["labels"]["agents.platform/agent"] == "cleo"


def test_dry_run(make_client: MakeClient) -> None:
    answer = post(make_client, "dry-run.json")
    assert "would be created" in answer["response"]["warnings"][0]


def test_bad_ones(make_client: MakeClient) -> None:
    denied = post(make_client, "bad-githubapp.json", naming_mode="agent")
    assert denied["response"]["allowed"] is False and "'octocat'" in denied["response"]["status"]["message"]
    http, _ = make_client()
    missing = http.post("/mutate", content=(ROOT / "examples" / "missing-uid.json").read_bytes())
    assert missing.status_code == 400 and "request.uid" in missing.json()["error"]
