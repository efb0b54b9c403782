"""A real, throw-away Kubernetes control plane (etcd + kube-apiserver) on 127.0.0.1.

What envtest gives Go operators: the binaries come from `controlplane/build.sh`; this starts
them on free loopback ports with an admin token, waits for /readyz, writes a kubeconfig, and
stops exactly the processes it started. Nothing schedules pods: admission is what it proves.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from webhook.certs import CertFiles

REPO = Path(__file__).resolve().parents[1]
BIN_ENV = "CONTROLPLANE_BIN"


class ControlPlaneError(RuntimeError):
    pass


def binaries_dir() -> Path:
    return Path(os.environ.get(BIN_ENV) or REPO / ".cache" / "controlplane" / "bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM this one process, SIGKILL it after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


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


@dataclass
class ControlPlane:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="devcluster-")))
    bin_dir: Path = field(default_factory=binaries_dir)
    etcd: subprocess.Popen[bytes] | None = None
    apiserver: subprocess.Popen[bytes] | None = None
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    _apiserver_args: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        # kube-apiserver writes its self-signed serving certificate and the CA that signed it here.
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        binary = self.bin_dir / name
        if not os.access(binary, os.X_OK):
            raise ControlPlaneError(f"{binary} is missing: build it with `bash controlplane/build.sh`")
        with (self.workdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [str(binary), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def _wait(
        self,
        what: str,
        proc: subprocess.Popen[bytes],
        probe: str,
        timeout: float,
        context: ssl.SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{what} exited with {proc.returncode}; see {self.workdir}/{what}.log:\n{self.tail(what)}"
                )
            request = urllib.request.Request(probe, headers={"Authorization": f"Bearer {token}"} if token else {})
            try:
                with urllib.request.urlopen(request, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ControlPlaneError(f"{what} not ready after {timeout}s ({last}); see {self.workdir}/{what}.log")

    def tail(self, what: str, lines: int = 20) -> str:
        path = self.workdir / f"{what}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start(self, timeout: float = 60) -> ControlPlane:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        etcd_port, peer_port = free_port(), free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        self.etcd = self._spawn(
            "etcd",
            [
                "--name=devcluster",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=devcluster={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", self.etcd, f"{etcd_url}/health", timeout)

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_key = self.workdir / "sa.key"
        sa_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        sa_pub = self.workdir / "sa.pub"
        sa_pub.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},admin,admin,"system:masters"\n')
        self.port = free_port()
        self._apiserver_args = [
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            f"--token-auth-file={tokens}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
        ]
        self.start_apiserver(timeout)
        self.kubeconfig.write_text(kubeconfig_text(self.server, self.ca_file, self.token))

    def start_apiserver(self, timeout: float = 60) -> None:
        """(Re)start kube-apiserver on the same port, certificates and etcd."""
        self.apiserver = self._spawn("kube-apiserver", self._apiserver_args)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the CA file does not exist until the server has started
        self._wait("kube-apiserver", self.apiserver, f"{self.server}/readyz", timeout, insecure, self.token)

    def stop_apiserver(self) -> None:
        _stop(self.apiserver, grace=10)

    def stop(self) -> None:
        """API server first (it hangs without etcd), then etcd; each by its own pid."""
        self.stop_apiserver()
        _stop(self.etcd, grace=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            self.remove()


# --- installing the webhook into it, from manifests/ ----------------------------------------

MANIFESTS = REPO / "manifests" / "base"
WEBHOOK_NAMESPACE = "agent-workspace-webhook"
WEBHOOK_SERVICE_ACCOUNT = "agent-workspace-webhook"


def json_body(response: object) -> Any:
    """The JSON of a call made with _preload_content=False (the client's types do not say so)."""
    return json.loads(cast(Any, response).data)


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def apply(api: Any, doc: dict[str, Any]) -> None:
    """Create the object, or replace it if it exists (where `kubectl apply` would end up)."""
    from kubernetes import dynamic
    from kubernetes.client.exceptions import ApiException

    dynamic_client = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    resource = dynamic_client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    namespace = doc["metadata"].get("namespace")
    try:
        resource.create(body=doc, namespace=namespace)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = resource.get(name=doc["metadata"]["name"], namespace=namespace)
        doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current.metadata.resourceVersion}}
        resource.replace(body=doc, namespace=namespace)


def install(api: Any, files: tuple[str, ...] = ("namespace.yaml", "crd-coderun.yaml", "rbac.yaml")) -> None:
    """Apply manifests/ files and wait for the CodeRun CRD to be served."""
    from kubernetes import client

    for name in files:
        for doc in load_yaml(MANIFESTS / name):
            apply(api, doc)
    extensions = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = extensions.read_custom_resource_definition("coderuns.agents.platform", _preload_content=False)
        conditions = json_body(crd).get("status", {}).get("conditions", [])
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise ControlPlaneError("CRD coderuns.agents.platform not established after 30s")


def register(api: Any, url: str, ca_pem: bytes) -> None:
    """Apply manifests/webhook.yaml with clientConfig pointed at `url` instead of the Service."""
    ca_bundle = base64.b64encode(ca_pem).decode()
    for doc in load_yaml(MANIFESTS / "webhook.yaml"):
        for hook in doc["webhooks"]:
            hook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
        apply(api, doc)


def service_account_kubeconfig(plane: ControlPlane, api: Any, path: Path, name: str, namespace: str) -> Path:
    """A kubeconfig that authenticates as that ServiceAccount, with a bound token."""
    from kubernetes import client

    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}}
    response = client.CoreV1Api(api).create_namespaced_service_account_token(
        name,
        namespace,
        request,  # type: ignore[arg-type]  # a plain dict is serialised as it is
        _preload_content=False,
    )
    token = json_body(response)["status"]["token"]
    path.write_text(kubeconfig_text(plane.server, plane.ca_file, token, name))
    path.chmod(0o600)
    return path


def controller_pod(
    service: str | None,
    app: str | None,
    *,
    volume: dict[str, Any] | None = None,
    generate_name: str = "code-run-",
) -> dict[str, Any]:
    """A Pod shaped like the platform controller's job pods: generateName, its labels (a fact
    left out where None), and the shared `workspace-{service}` mounted, unless `volume` is given."""
    labels = {"app": "controller", "component": "code-runner"}
    if service is not None:
        labels["service"] = service
    if app is not None:
        labels["github-user"] = app
    volume = volume or {"name": "workspace", "persistentVolumeClaim": {"claimName": f"workspace-{service}"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": generate_name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "agent",
                    "image": "busybox",
                    "volumeMounts": [{"name": volume["name"], "mountPath": "/workspace"}],
                }
            ],
            "volumes": [volume],
        },
    }


def wait_until_mutating(api: Any, namespace: str, mutated: bool = True, timeout: float = 30) -> None:
    """Dry-run an agent Pod until the API server does (or no longer does) call the webhook:
    registering or removing a webhook configuration takes a moment to reach admission."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        probe = controller_pod("probe", "5dlabs-rex", generate_name="probe-")
        stored = json_body(core.create_namespaced_pod(namespace, probe, dry_run="All", _preload_content=False))  # type: ignore[arg-type]
        if ("agents.platform/workspace" in stored["metadata"].get("annotations", {})) == mutated:
            return
        if time.monotonic() > deadline:
            state = "call" if mutated else "stop calling"
            raise ControlPlaneError(f"the API server did not {state} the webhook within {timeout}s")
        time.sleep(0.2)


def admin_client(plane: ControlPlane, pool: int = 64) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(str(plane.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = pool
    return client.ApiClient(configuration)


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
        args = [sys.executable, "-m", "webhook", "serve", "--port", str(self.port)]
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
        _stop(self.proc, grace=10)
