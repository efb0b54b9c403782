"""No container engine runs here: the Dockerfile is checked by its rules, and its install steps
are run as written (build the wheel, install it) into a clean virtual environment, whose commands
are then run from outside the checkout, as a user of the image or of the wheel would."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.tools import free_port, run, tool

ROOT = Path(__file__).resolve().parents[1]


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    result: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            result.append([])
        result[-1].append((instruction.upper(), args.strip()))
    return result


def test_multi_stage_slim_non_root() -> None:
    build, final = stages()
    assert build[0][0] == "FROM" and "slim" in build[0][1] and build[0][1].endswith("AS build")
    assert final[0] == ("FROM", build[0][1].removesuffix(" AS build"))  # the same slim base, no build tools added
    assert not any(i == "RUN" for i, _ in final), "the final stage installs nothing"
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    user = next(a for i, a in final if i == "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit())
    assert ("EXPOSE", "8443") in final
    assert ("ENTRYPOINT", '["agent-workspace-webhook", "serve"]') in final


def test_dependencies_come_from_the_lock() -> None:
    build, _ = stages()
    installs = [a for i, a in build if i == "RUN" and " install " in a and "pip" in a]
    assert installs[0].endswith("--no-deps -r /src/requirements.lock")
    assert "--no-index" in installs[-1], "the package itself comes from the wheel just built"
    assert all("--no-deps" in a for a in installs), "nothing unpinned is resolved at build time"
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-+]+", p) for p in pins)
    names = {p.split("==")[0].lower().replace("_", "-") for p in pins}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=!~\[ ]", dep)[0].lower().replace("_", "-") for dep in project["dependencies"]}
    assert wanted <= names, f"pinned in requirements.lock: {sorted(wanted - names)} missing"


def test_deployment_runs_what_the_image_serves() -> None:
    import yaml

    deployment = yaml.safe_load((ROOT / "manifests/base/deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["ports"][0]["containerPort"] == 8443
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(next(a for i, a in stages()[1] if i == "USER").split(":")[0])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["replicas"] == 2 and "podAntiAffinity" in pod["affinity"]
    assert container["resources"]["requests"] and container["resources"]["limits"]


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage's RUN lines, as written, with /opt/venv, /wheels and /src pointed here: the
    wheel is built and installed (not editable) into a fresh virtual environment."""
    tmp = tmp_path_factory.mktemp("image")
    venv, wheels, pip = tmp / "venv", tmp / "wheels", tmp / "pip"
    build, _ = stages()
    for instruction, args in build:
        if instruction != "RUN":
            continue
        command = (
            args.replace("/opt/venv", str(venv))
            .replace("/opt/pip", str(pip))
            .replace("/wheels", str(wheels))
            .replace("/src", str(ROOT))
        )
        command = command.replace("/lib/python3.11/", f"/lib/python{sys.version_info[0]}.{sys.version_info[1]}/")
        command = command.replace("python -m", f"{sys.executable} -m")
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=900, check=False)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert not (venv / "bin" / "pip").exists(), "the runtime has no pip"
    return venv


def installed(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, from a directory outside the checkout."""
    script = venv / "bin" / "agent-workspace-webhook"
    return run(script, *args, cwd=cwd, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_installed_agent_and_review_work_outside_the_checkout(image_venv: Path, tmp_path: Path) -> None:
    agent = installed(image_venv, tmp_path, "agent", "5DLabs-Rex", "--service", "cto", "-o", "json")
    assert agent.returncode == 0, agent.stderr
    assert agent.stdout.strip() == '{"agent": "rex", "pvc": "workspace-cto-rex"}'
    shutil.copy(ROOT / "examples" / "rex-pod.json", tmp_path / "rex-pod.json")
    review = installed(image_venv, tmp_path, "review", "rex-pod.json")
    assert review.returncode == 0, review.stderr
    assert "pvc:      agents/workspace-cto-rex (created)" in review.stdout


@pytest.mark.tools
def test_installed_certs_writes_an_overlay_that_builds(image_venv: Path, tmp_path: Path) -> None:
    made = installed(image_venv, tmp_path, "certs", "--out", "generated")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "generated"
    assert {"ca.crt", "tls.crt", "tls.key", "secret.yaml", "kustomization.yaml"} <= {p.name for p in out.iterdir()}
    kubectl = tool("kubectl")
    assert kubectl.exists(), f"{kubectl} is missing: run bash controlplane/build.sh"
    built = subprocess.run(
        [str(kubectl), "kustomize", str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(built.stdout) if doc]
    assert "Secret" in kinds and "MutatingWebhookConfiguration" in kinds and "Deployment" in kinds


def test_installed_serve_answers_its_probe(image_venv: Path, tmp_path: Path) -> None:
    script = str(image_venv / "bin" / "agent-workspace-webhook")  # the console script, as the image runs it
    env = {"WEBHOOK_STORE": "memory"}
    hook = LocalWebhook(free_port(), env, None, tmp_path / "serve.log", program=script, entry=(), cwd=tmp_path)
    hook.start()
    try:
        status, text = hook.get("/healthz")
        assert status == 200 and json.loads(text) == {"status": "ok"}, hook.log()
        mutate = urllib.request.Request(hook.url, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:  # /mutate over TLS: 400 for a bad body
            urllib.request.urlopen(mutate, context=ssl.create_default_context(cafile=hook.ca_file), timeout=5)
        assert refused.value.code == 400
    finally:
        hook.stop()


def test_installed_workspaces_help_and_demo_say_what_they_need(image_venv: Path, tmp_path: Path) -> None:
    assert installed(image_venv, tmp_path, "workspaces", "--help").returncode == 0
    demo = installed(image_venv, tmp_path, "demo", "--exit")
    assert demo.returncode == 2
    assert demo.stderr.count("\n") == 1 and "pip install agent-workspace-webhook" in demo.stderr, demo.stderr
