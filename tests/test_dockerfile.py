"""No container engine runs here: the Dockerfile is checked by its rules, and its install steps
are run as written in a clean virtual environment."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

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
    installs = [a for i, a in build if i == "RUN" and "pip install" in a]
    assert installs[0].endswith("--no-deps -r /src/requirements.lock")
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


def test_install_steps_work_in_a_clean_virtual_environment(tmp_path: Path) -> None:
    """The build stage's RUN lines, as written, with /opt/venv and /src pointed here."""
    venv = tmp_path / "venv"
    build, _ = stages()
    for instruction, args in build:
        if instruction != "RUN":
            continue
        command = args.replace("/opt/venv", str(venv)).replace(
            "/src/requirements.lock", str(ROOT / "requirements.lock")
        )
        command = command.replace("/src", str(ROOT)).replace("python -m venv", f"{sys.executable} -m venv")
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=900, check=False)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    check = subprocess.run(
        [str(venv / "bin" / "agent-workspace-webhook"), "agent", "5DLabs-Rex", "--service", "cto", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == '{"agent": "rex", "pvc": "workspace-cto-rex"}'
