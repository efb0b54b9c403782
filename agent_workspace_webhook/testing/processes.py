"""The dev harness's processes: each started with its output in a log of its own, waited for
while it lives, and stopped by its own pid (never by name)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path


class ControlPlaneError(RuntimeError):
    pass


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM this one process, SIGKILL it after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def spawn_logged(workdir: Path, name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """Start `command`, its output appended to <workdir>/<name>.log."""
    with (workdir / f"{name}.log").open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def log_tail(workdir: Path, name: str, lines: int = 20) -> str:
    path = workdir / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_ready(
    what: str,
    ready: Callable[[], bool],
    timeout: float,
    workdir: Path,
    procs: Mapping[str, subprocess.Popen[bytes]],
) -> None:
    """Poll `ready` until it says so (an OSError counts as not yet), while every process of
    `procs` (name -> process, its log <workdir>/<name>.log) lives: one that exits is named, with
    the last lines of its log."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {proc.returncode}; see {workdir}/{name}.log:\n{log_tail(workdir, name)}"
                )
        try:
            if ready():
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise ControlPlaneError(f"{what} not ready after {timeout}s ({last}); see the logs in {workdir}")
