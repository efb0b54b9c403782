"""The CodeRun CRD is the platform's: no install of the webhook (manifests/, its overlays, the
chart's defaults) contains it, the chart's opt-in is the dev stand-in that helm never deletes, and
the stand-in (manifests/dev/) follows the platform's CodeRunSpec so runs are created as the
platform's users create them. The cluster tests install into a control plane of their own (API
server only, a few seconds) where they may replace or delete the CRD; the round trip uses the
shared cluster and leaves its CRD alone."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_workspace_webhook.ops.manifests import COMPONENTS, load_yaml
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import CODERUN_CRD, PLATFORM_CRD_STAND_IN, compose
from agent_workspace_webhook.testing.kube import apply, json_body, wait_established
from agent_workspace_webhook.testing.objects import coderun
from agent_workspace_webhook.testing.tools import ok, run, tool

# helm, kubectl or promtool from controlplane/build.sh (tools); some also need a cluster (e2e)
pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agent-workspace-webhook"
KEEP = {"helm.sh/resource-policy": "keep"}

# The platform's CodeRunSpec (5dlabs/cto crates/controller/src/crds/coderun.rs, the commit named in
# manifests/dev/crd-coderun.yaml): every field by its JSON name, with its schema type.
PLATFORM_SPEC = {
    "projectId": "string", "harnessAgent": "string", "enableCodeServer": "boolean",
    "runType": "string", "taskId": "integer", "service": "string", "repositoryUrl": "string",
    "docsRepositoryUrl": "string", "skillsUrl": "string", "skillsProject": "string",
    "docsProjectDirectory": "string", "workingDirectory": "string", "model": "string",
    "promptStyle": "string", "githubUser": "string", "githubApp": "string", "contextVersion": "integer",
    "docsBranch": "string", "continueSession": "boolean", "overwriteMemory": "boolean", "env": "object",
    "envFromSecrets": "array", "enableDocker": "boolean", "taskRequirements": "string",
    "serviceAccountName": "string", "cliConfig": "object", "linearIntegration": "object",
    "promptModification": "string", "acceptanceCriteria": "string", "remoteTools": "string",
    "localTools": "string", "freshWorkspace": "boolean", "subtasks": "array", "watcherConfig": "object",
    "watcherFor": "string", "escalationPolicy": "object", "implementationAgent": "string",
    "quality": "string", "security": "string", "testing": "string", "deployment": "string", "acp": "array",
    "openclaw": "object",
}  # fmt: skip
# Neither an Option nor defaulted in the struct.
PLATFORM_REQUIRED = {"service", "repositoryUrl", "docsRepositoryUrl"}
# Its #[kube(printcolumn)] attributes, in order.
PLATFORM_COLUMNS = [
    ("Type", "string", ".spec.runType"),
    ("Task", "integer", ".spec.taskId"),
    ("Service", "string", ".spec.service"),
    ("Model", "string", ".spec.model"),
    ("Phase", "string", ".status.phase"),
    ("Age", "date", ".metadata.creationTimestamp"),
]

# A run as the platform's users create one, with the fields this webhook's old CRD did not know.
PLATFORM_RUN_FIELDS: dict[str, Any] = {
    "runType": "implementation",
    "freshWorkspace": True,
    "implementationAgent": "rex",
    "quality": "cleo",
    "testing": "tess",
    "contextVersion": 2,
    "subtasks": [{"id": 1, "title": "schema", "subagentType": "rex", "dependencies": []}],
    "watcherConfig": {"enabled": False},
    "cliConfig": {"cliType": "claude", "model": "sonnet", "settings": {"approval": "never"}},
    "escalationPolicy": {"mode": "allowlist", "allow": ["mcp_tools_github_*"]},
    "env": {"RUST_LOG": "info"},
}


# --- helpers ---------------------------------------------------------------------------------


def docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def crds(text: str) -> list[dict[str, Any]]:
    return [doc for doc in docs(text) if doc["kind"] == "CustomResourceDefinition"]


def stand_in() -> dict[str, Any]:
    (crd,) = load_yaml(PLATFORM_CRD_STAND_IN)
    return crd


def contains(got: Any, sent: Any) -> bool:
    """Every field of `sent` is in `got` with the same value (the API server may add defaults)."""
    if isinstance(sent, dict):
        return isinstance(got, dict) and all(key in got and contains(got[key], value) for key, value in sent.items())
    if isinstance(sent, list):
        return isinstance(got, list) and len(got) == len(sent) and all(map(contains, got, sent))
    return bool(got == sent)


def read_crd(api: Any) -> dict[str, Any]:
    from kubernetes import client

    response = client.ApiextensionsV1Api(api).read_custom_resource_definition(CODERUN_CRD, _preload_content=False)
    found: dict[str, Any] = json_body(response)
    return found


def find_crd(api: Any) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return read_crd(api)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def read_run(api: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(  # type: ignore[assignment]
        "agents.platform", "v1", namespace, "coderuns", name
    )
    return found


def create_run(api: Any, namespace: str, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    """Create the CodeRun once the API server serves a schema that keeps all of its spec (a
    replaced CRD reaches the handlers a moment after the write)."""
    from kubernetes import client

    runs = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while True:
        trial = runs.create_namespaced_custom_object(
            "agents.platform", "v1", namespace, "coderuns", body, dry_run="All"
        )
        if contains(trial["spec"], body["spec"]):  # type: ignore[index]
            stored: dict[str, Any] = runs.create_namespaced_custom_object(  # type: ignore[assignment]
                "agents.platform", "v1", namespace, "coderuns", body
            )
            return stored
        assert time.monotonic() < deadline, f"the served schema drops fields of {body['spec']}"
        time.sleep(0.2)


def wait_gone(api: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if find_crd(api) is None:
            return
        time.sleep(0.2)
    raise AssertionError(f"{CODERUN_CRD} still there after {timeout}s")


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Environment]:
    """A control plane of the test's own (API server only), with the stand-in installed."""
    with Environment(workdir=tmp_path / "env") as env:
        yield env


# --- the files -------------------------------------------------------------------------------


def test_the_stand_in_follows_the_platforms_coderun_spec() -> None:
    crd = stand_in()
    header = PLATFORM_CRD_STAND_IN.read_text().split("apiVersion:", 1)[0]
    assert "STAND-IN" in header and "crates/controller/src/crds/coderun.rs" in header
    assert "00d9fe896efa6166a7b7372aeba82efed3181fa0" in header.replace("\n# ", "")
    (version,) = crd["spec"]["versions"]
    assert (crd["metadata"]["name"], version["name"], crd["spec"]["scope"]) == (CODERUN_CRD, "v1", "Namespaced")
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {name: field.get("type") for name, field in spec["properties"].items()} == PLATFORM_SPEC
    assert set(spec["required"]) == PLATFORM_REQUIRED
    assert [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]] == PLATFORM_COLUMNS
    assert version["subresources"] == {"status": {}}


def test_no_default_install_contains_a_crd(tmp_path: Path) -> None:
    kubectl, helm = tool("kubectl"), tool("helm")
    for directory in (ROOT / "manifests", ROOT / "manifests/base", compose(tmp_path / "all", *COMPONENTS)):
        assert not crds(ok(kubectl, "kustomize", directory)), directory
    for source in ("secret", "certManager"):
        rendered = ok(helm, "template", "aww", CHART, "--set", f"tls.source={source}")
        assert not crds(rendered), source
    assert crds(ok(kubectl, "kustomize", ROOT / "manifests" / "dev")) == [stand_in()]


def test_the_charts_crd_opt_in_is_the_stand_in_that_helm_keeps() -> None:
    (crd,) = crds(ok(tool("helm"), "template", "aww", CHART, "--set", "installCRD=true"))
    assert crd["metadata"].pop("annotations") == KEEP
    assert crd["metadata"].pop("labels")["app.kubernetes.io/name"] == "agent-workspace-webhook"  # the chart's own
    assert crd == stand_in()


# --- through the API server ------------------------------------------------------------------


def platforms_crd() -> dict[str, Any]:
    """The stand-in, marked as the platform's own and with a field the stand-in does not know
    (as a newer platform would have): what an install must leave exactly as it is."""
    crd = copy.deepcopy(stand_in())
    crd["metadata"]["annotations"] = {"platform.example/installed-by": "cto-controller-chart"}
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    schema["properties"]["platformOnly"] = {"type": "string"}
    return crd


@pytest.mark.e2e
def test_installs_leave_the_platforms_crd_and_its_runs_alone(own: Environment) -> None:
    """The platform's CRD installed and a run stored; then `kubectl apply -k manifests/` and
    `helm install` with the defaults (but namespace.create, as the README says): the CRD is the
    same object (resourceVersion), the run has all its fields."""
    apply(own.admin, platforms_crd())
    wait_established(own.admin, CODERUN_CRD)
    namespace = own.namespace()
    body = coderun("cto", None, name="platform-run", platformOnly="kept", **PLATFORM_RUN_FIELDS)
    stored = create_run(own.admin, namespace, body)
    before = read_crd(own.admin)
    assert before["metadata"]["annotations"] == {"platform.example/installed-by": "cto-controller-chart"}

    def unchanged(after: str) -> None:
        crd = read_crd(own.admin)
        assert crd["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], after
        assert crd["spec"] == before["spec"], after
        assert read_run(own.admin, namespace, "platform-run") == stored, after

    kubectl: list[str | Path] = [tool("kubectl"), "--kubeconfig", own.plane.kubeconfig]
    ok(*kubectl, "apply", "-k", ROOT / "manifests")
    unchanged("kubectl apply -k manifests/")
    release = ["--kubeconfig", str(own.plane.kubeconfig), "--namespace", f"helm-{uuid.uuid4().hex[:8]}"]
    ok(tool("helm"), "install", "aww", CHART, *release, "--create-namespace", "--set", "namespace.create=false")
    unchanged("helm install")
    ok(tool("helm"), "uninstall", "aww", *release)
    unchanged("helm uninstall")
    # The opt-in where the CRD exists: helm stops rather than take it over.
    taking = run(tool("helm"), "install", "aww", CHART, *release, "--set", "namespace.create=false",
                 "--set", "installCRD=true")  # fmt: skip
    assert taking.returncode != 0 and "cannot be imported into the current release" in taking.stderr, taking.stderr
    unchanged("helm install --set installCRD=true")


@pytest.mark.e2e
def test_crd_opt_in_then_off_then_uninstall_keeps_the_crd_and_the_runs(own: Environment) -> None:
    """A cluster without the platform, where the chart installs the CRD (installCRD=true); an
    upgrade turns it off, then the release is uninstalled: helm deletes neither the CRD nor with it
    the CodeRuns. Installed again with the opt-in (the kept CRD is the release's again) and
    uninstalled: still there."""
    from kubernetes import client

    client.ApiextensionsV1Api(own.admin).delete_custom_resource_definition(CODERUN_CRD)  # the harness's stand-in
    wait_gone(own.admin)
    helm = tool("helm")
    release = ["--kubeconfig", str(own.plane.kubeconfig), "--namespace", f"helm-{uuid.uuid4().hex[:8]}"]
    ok(helm, "install", "aww", CHART, *release, "--create-namespace", "--set", "namespace.create=false",
       "--set", "installCRD=true")  # fmt: skip
    wait_established(own.admin, CODERUN_CRD)
    installed = read_crd(own.admin)
    assert installed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Outside the webhook's scope: the release's webhook configuration points at pods that never start.
    namespace = f"runs-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(own.admin).create_namespace({"metadata": {"name": namespace}})  # type: ignore[arg-type]
    runs = {
        name: create_run(own.admin, namespace, coderun("cto", app, name=name, **PLATFORM_RUN_FIELDS))
        for name, app in (("run-rex", "5DLabs-Rex"), ("run-cleo", None))
    }

    def kept(after: str) -> None:
        crd = find_crd(own.admin)
        assert crd is not None, f"{after} deleted the CRD, and with it every CodeRun"
        assert crd["metadata"]["uid"] == installed["metadata"]["uid"], after
        for name, stored in runs.items():
            assert read_run(own.admin, namespace, name)["metadata"]["uid"] == stored["metadata"]["uid"], after

    ok(helm, "upgrade", "aww", CHART, *release, "--reuse-values", "--set", "installCRD=false")
    assert not crds(ok(helm, "get", "manifest", "aww", *release)), "the upgraded release still has the CRD"
    kept("helm upgrade --set installCRD=false")
    ok(helm, "uninstall", "aww", *release)
    kept("helm uninstall")
    ok(helm, "install", "aww", CHART, *release, "--set", "namespace.create=false", "--set", "installCRD=true")
    assert crds(ok(helm, "get", "manifest", "aww", *release)), "the release did not take the kept CRD back"
    kept("helm install --set installCRD=true again")
    ok(helm, "uninstall", "aww", *release)
    kept("helm uninstall of a release with the CRD")


@pytest.mark.e2e
def test_a_platform_coderun_applies_strictly_and_round_trips(cluster: Environment, namespace: str) -> None:
    """`kubectl apply` (strict field validation) of a run with the platform's fields: no error, no
    warning but the webhook's own for a fresh run, and every field comes back as sent."""
    body = coderun("cto", None, name="fresh-run", **PLATFORM_RUN_FIELDS)
    kubectl: list[str | Path] = [tool("kubectl"), "--kubeconfig", cluster.plane.kubeconfig, "--namespace", namespace]
    applied = run(*kubectl, "apply", "--validate=strict", "-f", "-", stdin=json.dumps(body))
    assert applied.returncode == 0, applied.stderr
    # freshWorkspace: true: the webhook says which generation its first Pod makes, nothing else
    assert applied.stderr.startswith("Warning: fresh workspace requested: its first Pod makes generation 1")
    assert len(applied.stderr.splitlines()) == 1, applied.stderr
    got = json.loads(ok(*kubectl, "get", "coderun", "fresh-run", "-o", "json"))
    assert contains(got["spec"], body["spec"]), json.dumps(got["spec"], indent=1)
    assert got["spec"]["freshWorkspace"] is True and got["spec"]["runType"] == "implementation"
    # The webhook admitted it as the platform's run it is: the agent from implementationAgent.
    assert got["metadata"]["annotations"]["agents.platform/workspace"] == "workspace-cto-rex"
    table = ok(*kubectl, "get", "coderun", "fresh-run")
    assert table.split()[:6] == ["NAME", "TYPE", "TASK", "SERVICE", "MODEL", "PHASE"], table
