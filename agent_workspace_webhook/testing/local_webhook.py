"""`agent-workspace-webhook serve` as a child process on 127.0.0.1, stopped by its own pid."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_workspace_webhook.ops.certs import CertFiles
from agent_workspace_webhook.testing.controlplane import ControlPlaneError, stop_process


@dataclass
class LocalWebhook:
    """`agent-workspace-webhook serve` as a process of its own, with TLS on 127.0.0.1."""

    port: int
    env: dict[str, str]
    certs: CertFiles
    log_path: Path
    reuse_port: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admissions(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if '"event": "admission"' in line]

    def start(self, timeout: float = 30) -> LocalWebhook:
        args = [sys.executable, "-m", "agent_workspace_webhook", "serve", "--port", str(self.port)]
        args += ["--cert-file", str(self.certs.cert), "--key-file", str(self.certs.key)]
        if self.reuse_port:
            args.append("--reuse-port")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControlPlaneError(f"webhook exited with {self.proc.returncode}:\n{self.log()}")
            if '"event": "serving"' in self.log():  # this very process listens (the port may be shared)
                try:
                    with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/healthz", context=context, timeout=2):
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        raise ControlPlaneError(f"webhook on port {self.port} not healthy after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.proc, grace=10)
