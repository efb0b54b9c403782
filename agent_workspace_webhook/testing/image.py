"""The webhook's container image, built for real from the Dockerfile as it is, where no registry
serves its `FROM` image: a Docker daemon (the machine's, or one started here and stopped by its
pid), the base `python:3.11-slim-bookworm` made once per machine from Debian's packages with
debootstrap (keyed by a stamp label), `docker build --network host`, and the pause image a real
node's Pod sandboxes need (a static C program in a `FROM scratch` image).

Root only (debootstrap, dockerd): the node tier (tests/node) skips elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent_workspace_webhook.testing.host_state import unmount_under
from agent_workspace_webhook.testing.processes import ControlPlaneError, stop_process
from agent_workspace_webhook.testing.tools import CHECKOUT

BASE_IMAGE = "python:3.11-slim-bookworm"
# What the base holds: Python 3.11 with venv (whose ensurepip wheel the build stage's throw-away
# pip comes from), `python`, and CA certificates; nothing recommended, no pip installed.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Inside `docker build` the package registry is reached through a TLS-intercepting proxy whose CA
# only the host's bundle has.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Documentation and package caches: nothing at run time reads them.
BASE_TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt", "var/lib/apt")
STAMP_LABEL = "org.agent-workspace-webhook.base-stamp"
PAUSE_IMAGE = "agent-workspace-webhook.test/pause:1"
PAUSE_LABEL = "org.agent-workspace-webhook.pause-source"
DOCKER_SOCKET = Path("/var/run/docker.sock")
# Legacy builder: it uses the local base without pulling, and ignores the `# syntax=` line that
# BuildKit would fetch a frontend image for.
BUILD_ENV = {"DOCKER_BUILDKIT": "0"}
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGTERM, stop); signal(SIGINT, stop); signal(SIGCHLD, reap);
    for (;;) pause();
}
"""


def run(*args: str, timeout: float = 600, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        list(args), input=stdin, capture_output=True, timeout=timeout, check=False, env={**os.environ, **BUILD_ENV}
    )
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace")[-3000:]
        raise ControlPlaneError(f"{' '.join(args)} failed ({done.returncode}):\n{error}")
    return done.stdout.decode(errors="replace")


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0


@dataclass
class Docker:
    """The machine's Docker daemon, or one started here (no iptables, no bridge: builds use the
    host's network) and stopped by its pid."""

    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Docker:
        if docker_answers():
            return self
        if shutil.which("dockerd") is None:
            raise ControlPlaneError("dockerd is missing: `bash controlplane/build.sh` as root installs it")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "dockerd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "dockerd",
                    f"--host=unix://{DOCKER_SOCKET}",
                    f"--pidfile={self.workdir / 'dockerd.pid'}",
                    f"--exec-root={self.workdir / 'docker-exec'}",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--bridge=none",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not docker_answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ControlPlaneError(f"dockerd did not start; see {self.workdir / 'dockerd.log'}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        """Only a daemon started here; then the mount it leaves in its exec root (the host's
        network namespace, bind-mounted as netns/default)."""
        if self.proc is not None:
            stop_process(self.proc, grace=20)
            unmount_under(self.workdir)
        self.proc = None


def base_stamp() -> str:
    ca = hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()[:12] if HOST_CA_BUNDLE.exists() else "none"
    return f"debootstrap {DEBIAN_SUITE} minbase {','.join(BASE_PACKAGES)} ca={ca}"


def image_label(image: str, label: str) -> str | None:
    """A label of a local image; None when the image is absent."""
    done = subprocess.run(
        ["docker", "image", "inspect", image, "--format", f'{{{{index .Config.Labels "{label}"}}}}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_base(workdir: Path) -> str:
    """The Dockerfile's FROM image: a local one that is not ours or ours with the current stamp is
    used as it is; else, unless a registry serves it, made from Debian's packages. Says which."""
    stamp, label = base_stamp(), image_label(BASE_IMAGE, STAMP_LABEL)
    if label is not None and label in ("", "<no value>", stamp):
        return "cached" if label == stamp else "local"
    if label is None:
        pulled = subprocess.run(["docker", "pull", BASE_IMAGE], capture_output=True, timeout=120, check=False)
        if pulled.returncode == 0:
            return "pulled"
    root = workdir / "base-root"
    shutil.rmtree(root, ignore_errors=True)
    run(
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        DEBIAN_SUITE,
        str(root),
        DEBIAN_MIRROR,
        timeout=1200,
    )
    shutil.copy(HOST_CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
    for path in BASE_TRIMMED:
        shutil.rmtree(root / path, ignore_errors=True)
        (root / path).mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    try:
        run(
            "docker",
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
            "--change",
            f'LABEL {STAMP_LABEL}="{stamp}"',
            "--change",
            'CMD ["python3"]',
            "-",
            BASE_IMAGE,
            stdin=tar.stdout.read() if tar.stdout else b"",
        )
    finally:
        tar.wait(timeout=600)
        shutil.rmtree(root, ignore_errors=True)
    return "debootstrap"


def build_image(tag: str, context: Path = CHECKOUT) -> None:
    """`docker build` of the Dockerfile as it is (the host's network: pip reaches the registry)."""
    run("docker", "build", "--network", "host", "-t", tag, str(context), timeout=1800)


def image_size(tag: str) -> int:
    return int(run("docker", "image", "inspect", tag, "--format", "{{.Size}}").strip())


def build_pause(workdir: Path) -> None:
    """The Pod sandbox image: a static program that sleeps until told to stop, reaping children."""
    source = hashlib.sha256(PAUSE_C.encode()).hexdigest()[:12]
    if image_label(PAUSE_IMAGE, PAUSE_LABEL) == source:
        return
    context = workdir / "pause"
    context.mkdir(parents=True, exist_ok=True)
    (context / "pause.c").write_text(PAUSE_C)
    run("gcc", "-static", "-Os", "-s", "-o", str(context / "pause"), str(context / "pause.c"))
    (context / "Dockerfile").write_text(
        f'FROM scratch\nCOPY pause /pause\nLABEL {PAUSE_LABEL}={source}\nENTRYPOINT ["/pause"]\n'
    )
    run("docker", "build", "-t", PAUSE_IMAGE, str(context))


def import_images(containerd_socket: Path, *tags: str) -> None:
    """`docker save | ctr import` into the node's containerd, where the kubelet finds them."""
    saved = subprocess.run(["docker", "save", *tags], capture_output=True, timeout=600, check=False)
    if saved.returncode != 0:
        raise ControlPlaneError(f"docker save {' '.join(tags)} failed: {saved.stderr.decode(errors='replace')}")
    run("ctr", "-a", str(containerd_socket), "-n", "k8s.io", "images", "import", "-", stdin=saved.stdout, timeout=600)
