"""`agent-workspace-webhook serve` as a child process on 127.0.0.1, stopped by its own pid: the
one way tests, benchmarks and the harness run it, with given certificates, the throw-away ones
`serve` makes without them, or plain HTTP; by the package, or by an installed console script."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_workspace_webhook.certificates import CertFiles
from agent_workspace_webhook.testing.processes import ControlPlaneError, stop_process
from agent_workspace_webhook.testing.tools import free_port


def served_answering(connection: http.client.HTTPSConnection, body: bytes) -> bytes:
    """POST the review `body` to /mutate on `connection` (new or kept alive), which must answer
    200: the certificate the webhook served on it, as DER."""
    connection.request("POST", "/mutate", body=body, headers={"content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
    assert connection.sock is not None
    der = connection.sock.getpeercert(binary_form=True)
    assert der is not None
    return der


# The interpreter's arguments before `serve ...`: the package's command line.
SERVE = ("-m", "agent_workspace_webhook")


def swap_file(new: Path, served: Path) -> None:
    """Replace `served` by a copy of `new` in one step, as kubelet swaps a mounted Secret's
    files: a reader sees the old file or the new one, never half of it."""
    staged = served.with_name(f".{served.name}.new")
    shutil.copy(new, staged)
    staged.replace(served)


@dataclass
class LocalWebhook:
    """`agent-workspace-webhook serve` as a process of its own on 127.0.0.1."""

    port: int
    env: dict[str, str]
    # What it serves; None: the throw-away certificates `serve` makes (known once it has started).
    certs: CertFiles | None
    log_path: Path
    reuse_port: bool = False
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)
    entry: tuple[str, ...] = SERVE  # what runs `serve`: the package, or a script taking its arguments
    program: str = sys.executable  # what `entry` is given to: the interpreter, or a console script (entry ())
    insecure: bool = False  # plain HTTP (`serve --insecure`)
    cwd: Path | None = None

    @property
    def ca_file(self) -> Path:
        """The CA its serving certificate chains to (given, or the throw-away one it made)."""
        if self.certs is None:
            raise ControlPlaneError(f"webhook on port {self.port} serves no certificate yet (not started, or insecure)")
        return self.certs.ca

    @property
    def url(self) -> str:
        return f"{'http' if self.insecure else 'https'}://127.0.0.1:{self.port}/mutate"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str) -> tuple[int, str]:
        """GET a probe or /metrics on the plain-HTTP port: (status, body)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, by its name and labels as exposed."""
        _, text = self.get("/metrics")
        lines = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        return {name: float(value) for name, value in lines}

    def review(self, body: dict[str, Any], client: CertFiles | None = None, timeout: float = 30) -> dict[str, Any]:
        """POST an AdmissionReview over TLS, trusting the webhook's CA and presenting `client`'s
        certificate if given (as any caller in the cluster could): the answer's `response`."""
        import httpx

        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client is not None:
            context.load_cert_chain(client.cert, client.key)
        answer = httpx.post(self.url, json=body, verify=context, timeout=timeout)
        if answer.status_code != 200:
            raise ControlPlaneError(f"{self.url} answered {answer.status_code}: {answer.text}")
        response: dict[str, Any] = answer.json()["response"]
        return response

    def replace_certificate(self, pair: Path) -> bytes:
        """Swap tls.crt and tls.key of the directory `pair` into the files this process serves,
        each in one step (as kubelet swaps a mounted Secret's); the certificate, as DER."""
        assert self.certs is not None
        for new, served in ((pair / "tls.crt", self.certs.cert), (pair / "tls.key", self.certs.key)):
            swap_file(new, served)
        return ssl.PEM_cert_to_DER_cert((pair / "tls.crt").read_text())

    def served_certificate(self, ca_bundle: bytes) -> bytes:
        """The certificate a new handshake gets (as DER), by a client trusting only `ca_bundle`."""
        context = ssl.create_default_context(cadata=ca_bundle.decode())
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der

    def until_served(self, ca_bundle: bytes, certificate: bytes, timeout: float = 15) -> None:
        """Until new handshakes get `certificate` (DER): the process has reloaded its files."""
        deadline = time.monotonic() + timeout
        while self.served_certificate(ca_bundle) != certificate:
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"webhook on port {self.port} still serves the old certificate")
            time.sleep(0.05)

    def admissions(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if '"event":"admission"' in line]

    def start(self, timeout: float = 30) -> LocalWebhook:
        args = [self.program, *self.entry, "serve", "--port", str(self.port)]
        if self.insecure:
            args.append("--insecure")
        elif self.certs is not None:
            args += ["--cert-file", str(self.certs.cert), "--key-file", str(self.certs.key)]
        args += ["--metrics-port", str(self.metrics_port)]
        if self.reuse_port:
            args.append("--reuse-port")
        # Appended: a restarted webhook keeps the lines of its earlier life (what tests count).
        offset = len(self.log())
        with self.log_path.open("ab") as out:
            env = {**os.environ, **self.env}
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControlPlaneError(f"webhook exited with {self.proc.returncode}:\n{self.log()[offset:]}")
            if '"event":"serving"' in self.log()[offset:]:  # this very process listens (the port may be shared)
                with contextlib.suppress(OSError):
                    if self.get("/healthz")[0] == 200:
                        self._learn_certificates(self.log()[offset:])
                        return self
            time.sleep(0.1)
        raise ControlPlaneError(f"webhook on port {self.port} not healthy after {timeout}s:\n{self.log()}")

    def _learn_certificates(self, log: str) -> None:
        """The throw-away certificates `serve` made, from its log line saying where."""
        if self.insecure or self.certs is not None:
            return
        for line in log.splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("event") == "throw-away certificates":
                cert = Path(record["cert_file"])
                self.certs = CertFiles(ca=Path(record["ca_file"]), cert=cert, key=cert.with_name("tls.key"))

    def wait_ready(self, timeout: float = 30) -> LocalWebhook:
        """Until /readyz answers 200: the API answers and the watch caches are synced."""
        deadline = time.monotonic() + timeout
        while self.get("/readyz")[0] != 200:
            if time.monotonic() > deadline:
                tail = self.log()[-2000:]
                raise ControlPlaneError(f"webhook on port {self.port} not ready after {timeout}s:\n{tail}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        stop_process(self.proc, grace=10)
