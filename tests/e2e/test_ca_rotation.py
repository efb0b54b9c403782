"""The CA's two-step rotation (certs/README.md, Rotation) through a real kube-apiserver: agent
Pods are admitted throughout, with `failurePolicy: Fail`, while the caBundle and the serving
certificate change as `certs --rotate-ca` and then `certs --drop-old-ca` write them. The files
are swapped as kubelet swaps a mounted Secret's, after the caBundle is in force, as kubelet's
update of the Secret (up to a minute) comes after the API server's of the configuration.

The API server keeps its connections to a webhook open and a connection keeps the certificate of
its handshake, so after each swap the admissions pause past the webhook's keep-alive timeout:
the connections close, and the next admission's handshake checks the new certificate."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent_workspace_webhook.certificates import CertFiles
from agent_workspace_webhook.rules.labels import ANNOTATION_WORKSPACE
from agent_workspace_webhook.testing import Environment, controller_pod, create, denial
from agent_workspace_webhook.testing.env import PROBE_NAMESPACE
from agent_workspace_webhook.testing.install import register
from agent_workspace_webhook.testing.kube import admin_client
from agent_workspace_webhook.testing.tools import cli

pytestmark = pytest.mark.e2e

# What a step waits for: longer than the API server takes to use a new configuration.
SETTLE = 3.0
# Longer than uvicorn's keep-alive timeout (5 s): the webhook closes the idle connections.
IDLE = 7.0


def certs(out: Path, *flags: str) -> bytes:
    """`certs --out OUT FLAGS...`, which must succeed: the caBundle it wrote (ca.crt)."""
    done = cli("certs", "--out", str(out), *flags)
    assert done.returncode == 0, done.stderr
    return (out / "ca.crt").read_bytes()


class Admissions:
    """Dry-run agent Pods through the API server every 50 ms on a thread of its own (its own
    client): each mutated, or a failure recorded with the API server's message; counted by the
    phase the test is in."""

    def __init__(self, env: Environment) -> None:
        self.api: Any = admin_client(env.plane)
        self.phase = "before"
        self.paused = False
        self.mutated: dict[str, int] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Admissions:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.api.close()

    def idle(self, phase: str) -> None:
        """No admission for IDLE seconds, so that the next opens a new connection; then `phase`."""
        self.paused = True
        time.sleep(IDLE)
        self.phase, self.paused = phase, False

    def _loop(self) -> None:
        from kubernetes.client.exceptions import ApiException

        while not self._stop.wait(0.05):
            if self.paused:
                continue
            phase = self.phase
            try:
                stored, _ = create(self.api, PROBE_NAMESPACE, controller_pod("rotation", "5dlabs-rex"), dry_run=True)
            except ApiException as exc:
                self.failures.append(f"{phase}: {exc.status} {denial(exc)}")
                continue
            if ANNOTATION_WORKSPACE in (stored["metadata"].get("annotations") or {}):
                self.mutated[phase] = self.mutated.get(phase, 0) + 1
            else:
                self.failures.append(f"{phase}: admitted without its workspace")


def test_no_admission_fails_across_both_steps_of_a_ca_rotation(tmp_path: Path) -> None:
    out, live = tmp_path / "generated", tmp_path / "live"
    live.mkdir()
    installed = certs(out)
    for name in ("tls.crt", "tls.key"):
        shutil.copy(out / name, live / name)
    with Environment(workdir=tmp_path / "env") as env:
        env.certs = CertFiles(out / "ca.crt", live / "tls.crt", live / "tls.key")
        hook = env.start_webhook({"create_for": "any", "tls_reload_seconds": "0.2"})
        env.register(hook)
        with Admissions(env) as admissions:
            time.sleep(SETTLE)

            admissions.phase = "step 1, the old certificate served"
            step1 = certs(out, "--rotate-ca")
            assert step1 != installed and step1.endswith(installed)
            register(env.admin, hook.url, step1)  # kubectl apply -k: the caBundle (new connections) ...
            time.sleep(SETTLE)
            new = hook.replace_certificate(out)  # ... then kubelet swaps the Secret's files
            hook.until_served(step1, new)
            admissions.idle("step 1, the new certificate served")
            time.sleep(SETTLE)

            admissions.phase = "step 2"
            step2 = certs(out, "--drop-old-ca")
            assert step1.startswith(step2) and step2 != step1
            register(env.admin, hook.url, step2)
            time.sleep(SETTLE)
            hook.until_served(step2, hook.replace_certificate(out))
            admissions.idle("step 2, its certificate served")
            time.sleep(SETTLE)

    assert admissions.failures == []
    phases = ["before", "step 1, the old certificate served", "step 1, the new certificate served", "step 2"]
    phases.append("step 2, its certificate served")
    assert all(admissions.mutated.get(phase, 0) >= 10 for phase in phases), admissions.mutated
