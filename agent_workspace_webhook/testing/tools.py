"""What tests, benchmarks and the harness run beside the package: the built binaries (`tool`),
any command (`run`, `ok`), the package's own command line (`cli`), `kubectl` against a dev
cluster, and the small helpers every cluster part needs (a free port, a probe, a key pair, a
kubeconfig). One definition of each: tests import these, never a copy."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_workspace_webhook.testing.env import Environment

BIN_ENV = "CONTROLPLANE_BIN"
# A source checkout: controlplane/build.sh builds into .cache/controlplane/bin beside it.
CHECKOUT = Path(__file__).resolve().parents[2]
BUILD_HINT = (
    "build them with `bash controlplane/build.sh` in a checkout of agent-workspace-webhook (needs Go; "
    f"they land in .cache/controlplane/bin) and point {BIN_ENV} at that directory"
)


class MissingTool(FileNotFoundError):
    """A binary controlplane/build.sh makes is not there; the message says how to build it."""


def binaries_dir() -> Path:
    """$CONTROLPLANE_BIN, else the checkout's build output, else ./.cache/controlplane/bin."""
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    if (CHECKOUT / "controlplane" / "build.sh").is_file():
        return CHECKOUT / ".cache" / "controlplane" / "bin"
    return Path.cwd() / ".cache" / "controlplane" / "bin"


def tool(name: str) -> Path:
    """A built binary (helm, kubectl, promtool, ...)."""
    path = binaries_dir() / name
    if not os.access(path, os.X_OK):
        raise MissingTool(f"{path} is missing: {BUILD_HINT}")
    return path


def run(
    *args: str | Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """A command's result, its output captured as text; `env` replaces the environment."""
    argv = [str(a) for a in args]
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )


def ok(
    *args: str | Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> str:
    """The output of a command that must succeed (else an AssertionError with all it said)."""
    done = run(*args, stdin=stdin, env=env, cwd=cwd, timeout=timeout)
    command = " ".join(map(str, args))
    assert done.returncode == 0, f"{command} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def cli(*args: str, stdin: str | None = None, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    """`agent-workspace-webhook ARGS` as an operator runs it, with `env` added (WEBHOOK_...=...)."""
    return run(
        sys.executable, "-m", "agent_workspace_webhook", *args, stdin=stdin, env={**os.environ, **env}, timeout=timeout
    )


def kubectl(env: Environment, *args: str, timeout: float = 180, check: bool = True) -> str:
    """kubectl as the dev cluster's admin: its output (with `check`, it must succeed)."""
    command: tuple[str | Path, ...] = (tool("kubectl"), f"--kubeconfig={env.plane.kubeconfig}", *args)
    return ok(*command, timeout=timeout) if check else run(*command, timeout=timeout).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_ok(url: str, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    """True when GET url answers 200."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=2, context=context) as response:
        return bool(response.status == 200)


def write_key_pair(private: Path, public: Path) -> tuple[Path, Path]:
    """An RSA key pair as PEM files (the ServiceAccount token signing key and its public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def kubeconfig_text(server: str, ca_file: Path, token: str, user: str = "admin") -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster:
    server: {server}
    certificate-authority: {ca_file}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: {user}@dev
  context: {{cluster: dev, user: {user}}}
current-context: {user}@dev
"""
