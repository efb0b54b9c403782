"""The image from the Dockerfile as it is: small, nothing to build or install with at run time,
no developer harness, and serving read-only, as uid 10001, with every capability dropped."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent_workspace_webhook.certificates import write_certificates
from agent_workspace_webhook.testing.tools import free_port

from .conftest import Built

# Needs the control plane or Docker (e2e), and root (node): tests/node/conftest.py says which.
pytestmark = [pytest.mark.e2e, pytest.mark.node]

# The slim base (about 123 MB from debootstrap) plus the virtual environment (about 133 MB).
MAX_SIZE = 300 * 1024 * 1024


def in_image(image: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_image_is_small_and_has_no_build_tools_pip_or_harness(built: Built) -> None:
    print(f"image {built.image}: {built.size / 1e6:.0f} MB (base: {built.base}; built in {built.seconds:.0f} s)")
    assert built.size < MAX_SIZE
    found = in_image(
        built.image,
        "command -v gcc cc make pip pip3; ls /opt/venv/bin | grep -x 'pip.*';"
        " python -c 'import pip' 2>/dev/null && echo pip-importable;"
        " python -c 'import agent_workspace_webhook.testing' 2>/dev/null && echo harness;"
        " python -c 'import agent_workspace_webhook.server.serve' && echo serve-ok; id -u",
    )
    assert found.stdout.split() == ["serve-ok", "10001"], found.stdout + found.stderr


def test_the_image_serves_read_only_as_non_root_without_capabilities(built: Built, tmp_path: Path) -> None:
    certs = write_certificates(tmp_path / "tls", ["127.0.0.1"])
    (tmp_path / "tls").chmod(0o755)
    for path in (tmp_path / "tls").iterdir():
        path.chmod(0o644)  # uid 10001 reads them, as from a Secret volume
    port, metrics = free_port(), free_port()
    started = subprocess.run(
        [
            "docker", "run", "-d", "--rm", "--network", "host", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "-v", f"{tmp_path / 'tls'}:/tls:ro", built.image,
            "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics),
            "--cert-file", "/tls/tls.crt", "--key-file", "/tls/tls.key", "--store", "memory",
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    container = started.stdout.strip()
    try:
        inspect = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, check=True).stdout)
        assert inspect[0]["Config"]["User"] == "10001:10001"
        assert inspect[0]["HostConfig"]["ReadonlyRootfs"] is True
        deadline, health = time.monotonic() + 30, None
        while health is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz", timeout=2) as answer:
                    health = json.loads(answer.read())
            except OSError:
                time.sleep(0.2)
        logs = subprocess.run(["docker", "logs", container], capture_output=True, check=False).stderr
        assert health == {"status": "ok"}, logs
        mutate = urllib.request.Request(f"https://127.0.0.1:{port}/mutate", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:  # TLS with the mounted certificate; a bad body
            urllib.request.urlopen(mutate, context=ssl.create_default_context(cafile=str(certs.ca)), timeout=5)
        assert refused.value.code == 400
        status = subprocess.run(
            ["docker", "exec", container, "sh", "-c", "grep CapEff /proc/1/status; touch /opt/x 2>&1; id -u"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "CapEff:\t0000000000000000" in status.stdout and "Read-only file system" in status.stdout
        assert status.stdout.strip().endswith("10001")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60, check=False)
