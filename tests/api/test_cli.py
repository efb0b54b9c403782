"""The console script, run as a user runs it: a real process, its output and exit status."""

import json
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import applied, claim, decode_patch, job_pod, review
from agent_workspace_webhook.testing.tools import cli, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_agent_command() -> None:
    result = cli("agent", "5DLabs-Cleo[bot]", "--service", "cto", "-o", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"agent": "cleo", "pvc": "workspace-cto-cleo"}
    text = cli("agent", "5DLabs-Rex")
    assert text.returncode == 0 and "agent: rex" in text.stdout


@pytest.mark.parametrize("mode", ["legacy", "dual", "agent"])
def test_agent_command_rejects_bad_input_in_every_mode(mode: str) -> None:
    for args in (["octocat"], ["5DLabs-Rex", "--service", "Bad_Service"]):
        result = cli("agent", *args, WEBHOOK_NAMING_MODE=mode)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_bad_setting_stops_with_its_name() -> None:
    result = cli("agent", "5DLabs-Rex", WEBHOOK_STORAGE_SIZE="lots")
    assert result.returncode == 2
    assert "storage_size (WEBHOOK_STORAGE_SIZE)" in result.stderr and "Traceback" not in result.stderr


def test_review_answers_like_mutate() -> None:
    result = cli("review", str(EXAMPLES / "rex-pod.json"), "-o", "json")
    assert result.returncode == 0
    answer = json.loads(result.stdout)
    assert answer["response"]["uid"] == "7b1c6f0e-rex-pod"
    pod = json.loads((EXAMPLES / "rex-pod.json").read_text())["request"]["object"]
    assert claim(applied(pod, answer)) == "workspace-cto-rex"


def test_review_from_stdin_prints_the_decoded_patch() -> None:
    result = cli("review", "-", stdin=json.dumps(review(job_pod("cto", "5dlabs-cleobot"))))
    assert result.returncode == 0
    assert "allowed:  true" in result.stdout
    assert '"value": "workspace-cto-cleo"' in result.stdout


def test_review_of_a_denied_request_exits_1() -> None:
    result = cli("review", str(EXAMPLES / "bad-githubapp.json"), WEBHOOK_NAMING_MODE="agent")
    assert result.returncode == 1
    assert "spec.githubApp" in result.stdout and "'octocat'" in result.stdout


@pytest.mark.parametrize(
    ("content", "reason"),
    [("not json", "not valid JSON"), ('{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "request")],
)
def test_review_of_invalid_input_is_one_line_on_stderr(content: str, reason: str) -> None:
    result = cli("review", "-", stdin=content)
    assert result.returncode == 2 and reason in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_review_of_a_missing_file() -> None:
    result = cli("review", "/nonexistent.json")
    assert result.returncode == 2 and "No such file" in result.stderr


def test_serve_with_throwaway_certificates_answers_over_tls(tmp_path: Path) -> None:
    hook = LocalWebhook(free_port(), {"WEBHOOK_STORE": "memory"}, None, tmp_path / "serve.log").start()
    try:
        status, text = hook.get("/healthz")
        assert status == 200 and json.loads(text) == {"status": "ok"}
        body = (EXAMPLES / "cleo-coderun.json").read_bytes()
        request = urllib.request.Request(hook.url, data=body, headers={"content-type": "application/json"})
        context = ssl.create_default_context(cafile=hook.ca_file)  # the one serve made and logged
        with urllib.request.urlopen(request, context=context, timeout=5) as r:
            answer: dict[str, Any] = json.loads(r.read())
        assert answer["response"]["allowed"] is True
        assert {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {"agents.platform/workspace": "workspace-cto-cleo"},
        } in decode_patch(answer)
    finally:
        hook.stop()
    admissions = hook.admissions()
    assert admissions and admissions[0]["pvc"] == "workspace-cto-cleo" and admissions[0]["decision"] == "patched"


def test_serve_refuses_half_a_certificate() -> None:
    result = cli("serve", "--cert-file", "x.crt")
    assert result.returncode == 2 and "--key-file" in result.stderr


def test_listening_socket_declares_tcp_so_answers_are_not_delayed_by_nagle() -> None:
    # asyncio turns on TCP_NODELAY for accepted connections only when the socket's proto is TCP;
    # without it every answer waited ~40 ms for a delayed ACK.
    from agent_workspace_webhook.server.serve import listen

    sock = listen("127.0.0.1", 0, reuse_port=False)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("argv", "scope"),
    [
        (["workspaces", "-n", "team-a", "prune", "--keep", "1", "--yes"], "team-a"),  # -n before the subcommand
        (["workspaces", "prune", "-n", "team-a", "--keep", "1", "--yes"], "team-a"),  # and after it
        (["workspaces", "--namespace", "team-a", "prune", "--keep", "1"], "team-a"),
        (["workspaces", "prune", "--keep", "1"], None),  # every namespace only when none is given
    ],
)
def test_prune_acts_on_exactly_the_namespace_it_was_given(argv: list[str], scope: str | None) -> None:
    from agent_workspace_webhook.cli import build_parser

    assert build_parser().parse_args(argv).namespace == scope


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--log-level", "BOGUS"], "--log-level: invalid choice: 'BOGUS'"),
        (["serve", "--port", "99999"], "--port: 99999 is not a TCP port"),
        (["serve", "--metrics-port", "http"], "--metrics-port: 'http' is not a whole number"),
        (["certs", "--days", "-5"], "--days: -5 is not a positive whole number"),
        (["certs", "--days", "0"], "--days: 0 is not a positive whole number"),
        (["certs", "--out", "/proc/x"], "--out /proc/x: cannot write there"),
        (["review", "/no/such/file.json"], "No such file"),
        (["agent", "not an app!"], "cannot extract an agent name"),
        (["workspaces", "restore", "ns", "cto", "rex"], "give one of --generation N"),
        (["workspaces", "prune", "--keep", "x"], "--keep: invalid int value"),
    ],
)
def test_every_command_answers_bad_input_with_one_line_and_no_traceback(argv: list[str], says: str) -> None:
    result = cli(*argv, WEBHOOK_KUBECONFIG="/no/such/kubeconfig")
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and says in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("agent-workspace-webhook")]) == 1


def test_a_misspelt_setting_stops_start_up_naming_the_nearest_one() -> None:
    result = cli("serve", "--store", "memory", WEBHOOK_NAMNG_MODE="agent")
    assert result.returncode == 2 and "did you mean WEBHOOK_NAMING_MODE?" in result.stderr, result.stderr


def test_a_failure_of_the_cluster_exits_1_and_help_says_the_exit_status() -> None:
    result = cli("workspaces", WEBHOOK_KUBECONFIG="/no/such/kubeconfig")
    assert result.returncode == 1 and "set WEBHOOK_KUBECONFIG to a kubeconfig" in result.stderr, result.stderr
    assert "--store memory" not in result.stderr or "serve --store memory" in result.stderr
    assert "exit status: 0 done; 1 a failure" in " ".join(cli("--help").stdout.split())


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    # `review -o json FILE | true` (or `| head`, `| grep -q`): the reader is gone before the answer
    # is written out
    shell = f"{sys.executable} -m agent_workspace_webhook review -o json {EXAMPLES / 'rex-pod.json'} | true"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
