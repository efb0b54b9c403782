"""README.md stays true: its set-up commands are the ones CI runs, its example output is real."""

import re
from pathlib import Path

from fastapi.testclient import TestClient

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.server.app import create_app
from agent_workspace_webhook.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def commands() -> list[str]:
    """The indented command lines that open the README, before its first rule."""
    top = README.split("\n---\n", 1)[0]
    return [line.strip() for line in top.splitlines() if line.startswith("    ")]


def test_readme_opens_with_exactly_two_commands() -> None:
    run, test = commands()
    assert run.startswith("python3 -m venv .venv") and run.endswith("agent-workspace-webhook demo")
    assert test.startswith("python3 -m venv .venv") and test.endswith(".venv/bin/pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert commands()[1] in ci_lines


def test_curl_example_output_is_what_the_server_answers() -> None:
    shown = re.search(r'"patch": "([A-Za-z0-9+/=]+)"', README)
    assert shown is not None
    with TestClient(create_app(load_settings(store="memory"), MemoryStore())) as http:
        answer = http.post("/mutate", content=(ROOT / "examples/rex-pod.json").read_bytes()).json()
    assert answer["response"]["patch"] == shown.group(1)


def test_every_link_points_at_a_file_of_the_repository() -> None:
    # The README, and the documents a newcomer reads from the repository's root, link only inward.
    for document in ("README.md", "CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md", "docs/design.md"):
        text = (ROOT / document).read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            assert not re.match(r"[a-z]+://", target), f"{document} links outside the repository: {target}"
            path = (ROOT / document).parent / target.split("#", 1)[0]
            assert path.exists(), f"{document} links to {target}, which does not exist"
    for name in ("LICENSE", "CHANGELOG.md", "SECURITY.md", "CONTRIBUTING.md"):
        assert f"]({name})" in README, f"README does not point at {name}"
