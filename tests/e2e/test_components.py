"""The optional parts of the kustomize install are Components (manifests/COMPONENTS): an
operator's kustomization lists any of them over manifests/base, or over the directory `certs`
writes. Every combination that makes sense builds with what each part adds and nothing of the
others, and applies server-side. cert-manager and mtls exclude each other: mtls needs the client
CA (client-ca.crt) that only the Secret of `certs --api-server-client` carries, and cert-manager
writes that Secret itself, without it. They apply beside the CRDs of the kinds they add (the
Prometheus Operator's for monitoring, cert-manager's for cert-manager; built by
controlplane/build.sh from their Go modules), which the API server checks them against."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from agent_workspace_webhook.ops.manifests import COMPONENTS
from agent_workspace_webhook.testing import Environment
from agent_workspace_webhook.testing.install import compose
from agent_workspace_webhook.testing.kube import wait_established
from agent_workspace_webhook.testing.tools import binaries_dir, cli, kubectl, ok, tool

FREE = ("grow", "apiserver-only", "monitoring")  # go with anything
CERTIFICATE_SOURCES: tuple[tuple[str, ...], ...] = ((), ("cert-manager",), ("mtls",))  # at most one
COMBINATIONS = [
    (*source, *free)
    for source in CERTIFICATE_SOURCES
    for n in range(len(FREE) + 1)
    for free in itertools.combinations(FREE, n)
]
ALWAYS = {
    "deployment.apps/agent-workspace-webhook",
    "networkpolicy.networking.k8s.io/agent-workspace-webhook",
    "mutatingwebhookconfiguration.admissionregistration.k8s.io/agent-workspace-webhook",
}
MONITORING_CRDS = ("servicemonitors", "podmonitors", "prometheusrules")
CERT_MANAGER_CRDS = ["certificates.cert-manager.io", "issuers.cert-manager.io"]


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return {e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def parts(docs: list[dict[str, Any]]) -> set[str]:
    """Which Components a build shows, each by what it adds."""
    named = {(d["kind"], d["metadata"]["name"]) for d in docs}
    env = env_of(docs)
    config = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    found = set()
    if ("Certificate", "agent-workspace-webhook-serving") in named and "cert-manager.io/inject-ca-from" in (
        config["metadata"].get("annotations") or {}
    ):
        found.add("cert-manager")
    if env.get("WEBHOOK_GROW_EXISTING") == "true" and ("ClusterRole", "agent-workspace-webhook-grow") in named:
        found.add("grow")
    if env.get("WEBHOOK_CLIENT_CA_FILE") == "/tls/client-ca.crt" and "WEBHOOK_CLIENT_NAMES" in env:
        found.add("mtls")
    if policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.0.2.0/28"}}]:
        found.add("apiserver-only")
    if {("ServiceMonitor", "agent-workspace-webhook"), ("PrometheusRule", "agent-workspace-webhook")} <= named:
        found.add("monitoring")
    return found


def build(directory: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(ok(tool("kubectl"), "kustomize", directory)) if d]


def test_the_combinations_cover_every_component() -> None:
    assert set(itertools.chain(*COMBINATIONS)) == set(COMPONENTS)
    assert len(COMBINATIONS) == 3 * 2 ** len(FREE)  # no certificate part, cert-manager or mtls; any of the rest


@pytest.mark.parametrize("components", COMBINATIONS, ids=lambda c: "+".join(c) or "base")
def test_every_combination_builds_with_what_each_component_adds(components: tuple[str, ...], tmp_path: Path) -> None:
    docs = build(compose(tmp_path, *components))
    assert parts(docs) == set(components)
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys))  # no object twice


def test_all_five_build_together_though_cert_manager_and_mtls_do_not_run_together(tmp_path: Path) -> None:
    # kustomize cannot know the Secret cert-manager writes lacks client-ca.crt: it builds
    docs = build(compose(tmp_path, *COMPONENTS))
    assert parts(docs) == set(COMPONENTS)
    serving = next(d for d in docs if d["kind"] == "Certificate" and d["metadata"]["name"].endswith("-serving"))
    assert "client-ca.crt" not in yaml.safe_dump(serving)  # why mtls needs the certs bundle instead


@pytest.fixture
def component_crds(cluster: Environment) -> Iterator[None]:
    """The CRDs of the kinds the Components add: the Prometheus Operator's and cert-manager's
    (the CRDs only: their objects are checked by the API server's schema, nothing acts on them)."""
    directories = [binaries_dir() / "prometheus-operator-crds", binaries_dir() / "cert-manager-crds"]
    for directory in directories:
        kubectl(cluster, "apply", "--server-side", "-f", str(directory))
    for crd in [f"{name}.monitoring.coreos.com" for name in MONITORING_CRDS] + CERT_MANAGER_CRDS:
        wait_established(cluster.admin, crd)
    try:
        yield
    finally:
        for directory in directories:
            kubectl(cluster, "delete", "--wait=false", "-f", str(directory))


def dry_run(cluster: Environment, directory: Path) -> str:
    # The tests' own registration points clientConfig at a URL; an apply over it would merge in
    # `service` beside `url`. Take it away for the dry run, as on a cluster without the webhook.
    client.AdmissionregistrationV1Api(cluster.admin).delete_mutating_webhook_configuration("agent-workspace-webhook")
    try:
        return kubectl(cluster, "apply", "-k", str(directory), "--dry-run=server")
    finally:
        cluster.restore()


def applied(output: str) -> set[str]:
    return {line.split()[0] for line in output.splitlines() if line.endswith("(server dry run)")}


@pytest.mark.e2e
def test_every_combination_applies_server_side(cluster: Environment, component_crds: None, tmp_path: Path) -> None:
    for components in COMBINATIONS:
        out = dry_run(cluster, compose(tmp_path / ("+".join(components) or "base"), *components))
        names = applied(out)
        assert names >= ALWAYS, out
        assert ("clusterrole.rbac.authorization.k8s.io/agent-workspace-webhook-grow" in names) == ("grow" in components)
        monitored = {"servicemonitor.monitoring.coreos.com/agent-workspace-webhook",
                     "prometheusrule.monitoring.coreos.com/agent-workspace-webhook"}  # fmt: skip
        assert (monitored <= names) == ("monitoring" in components), out
        issued = "certificate.cert-manager.io/agent-workspace-webhook-serving" in names
        assert issued == ("cert-manager" in components), out


@pytest.mark.e2e
def test_components_go_on_top_of_the_certs_bundle_with_mutual_tls(
    cluster: Environment, component_crds: None, tmp_path: Path
) -> None:
    bundle = tmp_path / "generated"
    made = cli("certs", "--out", str(bundle), "--api-server-client")
    assert made.returncode == 0, made.stderr
    mine = compose(tmp_path / "mine", *FREE, over=bundle)  # the operator's kustomization over the bundle
    docs = build(mine)
    assert parts(docs) == {"mtls", *FREE}
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert "client-ca.crt" in secret["data"]
    names = applied(dry_run(cluster, mine))
    assert {"secret/agent-workspace-webhook-tls", "clusterrole.rbac.authorization.k8s.io/agent-workspace-webhook-grow",
            "servicemonitor.monitoring.coreos.com/agent-workspace-webhook"} <= names  # fmt: skip
