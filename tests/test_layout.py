"""The package's shape holds: each audience in its place, and the dependencies point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agent_workspace_webhook"
MODULES = sorted(PACKAGE.rglob("*.py"))


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def package_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0] if len(path.relative_to(PACKAGE).parts) > 1 else ""


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_long(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 300


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_kube_and_the_dev_harness_import_the_kubernetes_client(path: Path) -> None:
    uses = {name for name in imports(path) if name == "kubernetes" or name.startswith("kubernetes.")}
    assert not uses or package_of(path) in ("kube", "testing"), f"{path.name} imports {uses}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_rules_are_pure_and_the_layers_point_one_way(path: Path) -> None:
    # Which of our own packages each may import: rules nothing but rules; admission the rules and
    # the store interface; kube never the server; the server never the operator's commands (ops);
    # nothing but cli/testing the developer tooling; ops the settings' checks (the reference names them).
    allowed = {
        "rules": {"rules"},
        "admission": {"rules", "admission", "kube", "settings"},
        "kube": {"rules", "kube", "settings", "logs"},
        "server": {"rules", "admission", "kube", "server", "certificates", "settings", "logs", "version"},
        "ops": {"rules", "admission", "ops", "kube", "certificates", "settings", "setting_values"},
    }.get(package_of(path))
    if allowed is None:
        return
    ours = {name.split(".")[1] for name in imports(path) if name.startswith("agent_workspace_webhook.")}
    assert ours <= allowed, f"{path.relative_to(PACKAGE)} imports {sorted(ours - allowed)}"
    if package_of(path) == "admission":  # of kube/, only the interface: never a store itself
        stores = {name for name in imports(path) if name.startswith("agent_workspace_webhook.kube.")}
        assert stores <= {"agent_workspace_webhook.kube.store"}, f"{path.relative_to(PACKAGE)} imports {stores}"


def test_serve_loads_no_developer_tooling_and_unit_rules_no_kubernetes_client() -> None:
    probe = (
        "import sys\n"
        "import agent_workspace_webhook.rules.workspace, agent_workspace_webhook.rules.facts\n"
        "import agent_workspace_webhook.rules.patch, agent_workspace_webhook.admission.admit\n"
        "assert 'kubernetes' not in sys.modules, 'the rules loaded the Kubernetes client'\n"
        "import agent_workspace_webhook.server.serve, agent_workspace_webhook.server.app, agent_workspace_webhook.cli\n"
        "dev = sorted(m for m in sys.modules if m.startswith('agent_workspace_webhook.testing'))\n"
        "assert not dev, dev\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


HEAVY = ("uvicorn", "cryptography", "kubernetes", "fastapi", "starlette")
LOADED = f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"


def test_the_cli_loads_only_what_the_chosen_command_needs() -> None:
    """`agent` (and any --help) in a fresh interpreter: no web server, certificates or Kubernetes
    client; serve's own module loads the web server, and cryptography only when it makes throw-away
    certificates (never with --cert-file, as deployed)."""
    probe = (
        "import contextlib, io, sys\n"
        "from agent_workspace_webhook.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    assert main(['agent', '5DLabs-Rex', '--service', 'cto']) == 0\n"
        "    try:\n"
        "        main(['serve', '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0\n"
        f"{LOADED}"
        "assert not heavy, heavy\n"
        "assert 'pvc:   workspace-cto-rex' in out.getvalue() and '--cert-file' in out.getvalue(), out.getvalue()\n"
        "import agent_workspace_webhook.server.serve\n"
        f"{LOADED}"
        "assert 'uvicorn' in {m.split('.')[0] for m in heavy}, heavy\n"
        "assert 'cryptography' not in {m.split('.')[0] for m in heavy}, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
