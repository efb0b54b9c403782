from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_workspace_webhook.rules.names import is_dns1123_label
from agent_workspace_webhook.rules.workspace import (
    NamingError,
    NamingPolicy,
    choose_workspace,
    is_healer_run,
    is_workspace_name,
    legacy_pvc_name,
    pvc_name,
    validate_service,
)

LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@pytest.mark.parametrize("service", ["cto", "my-service", "a", "a" * 63])
def test_valid_services(service: str) -> None:
    assert validate_service(service, "spec.service") == service


@pytest.mark.parametrize("service", ["", "CTO", "my_service", "-cto", "cto-", "a" * 64, "cto.io", "ctö"])
def test_invalid_service_names_the_field(service: str) -> None:
    with pytest.raises(NamingError, match=r"spec\.service is .*DNS-1123"):
        validate_service(service, "spec.service")


def test_pvc_name() -> None:
    assert pvc_name("cto", "rex") == "workspace-cto-rex"
    assert legacy_pvc_name("cto") == "workspace-cto"


def test_long_names_are_shortened_with_a_stable_hash() -> None:
    service = "a-very-long-service-name-that-goes-on-and-on-forever"
    name = pvc_name(service, "cleo")
    assert len(name) <= 63
    assert name.startswith("workspace-a-very-long") and name.endswith("-cleo")
    assert name == pvc_name(service, "cleo")  # stable
    other = pvc_name(service + "-x", "cleo")
    assert other != name and len(other) <= 63


@given(LABEL, LABEL)
def test_pvc_name_is_always_a_valid_label(service: str, agent: str) -> None:
    name = pvc_name(service, agent)
    assert is_dns1123_label(name), name


@given(LABEL, LABEL, LABEL)
def test_different_services_never_share(service_a: str, service_b: str, agent: str) -> None:
    if service_a != service_b:
        assert pvc_name(service_a, agent) != pvc_name(service_b, agent)


@given(LABEL, LABEL, LABEL)
def test_different_agents_never_share(service: str, agent_a: str, agent_b: str) -> None:
    if agent_a != agent_b:
        assert pvc_name(service, agent_a) != pvc_name(service, agent_b)


def test_agent_mode() -> None:
    policy = NamingPolicy(mode="agent")
    assert choose_workspace("cto", "rex", None, policy).pvc == "workspace-cto-rex"
    with pytest.raises(NamingError, match=r"spec\.githubApp: nope"):
        choose_workspace("cto", None, "spec.githubApp: nope", policy)


def test_dual_mode_falls_back_with_a_warning() -> None:
    policy = NamingPolicy(mode="dual")
    assert choose_workspace("cto", "cleo", None, policy).pvc == "workspace-cto-cleo"
    fallback = choose_workspace("cto", None, "spec.githubApp: nope", policy)
    assert fallback.pvc == "workspace-cto"
    assert fallback.agent is None
    assert "spec.githubApp: nope" in fallback.warnings[0] and "workspace-cto" in fallback.warnings[0]


def test_legacy_mode_uses_the_shared_workspace_for_everyone() -> None:
    policy = NamingPolicy(mode="legacy")
    for agent in ("rex", "cleo", None):
        assert choose_workspace("cto", agent, None, policy).pvc == "workspace-cto"


def test_legacy_owner_prefers_an_existing_shared_workspace_in_dual_mode_only() -> None:
    dual = choose_workspace("cto", "rex", None, NamingPolicy(mode="dual", legacy_owner="rex"))
    assert (dual.pvc, dual.prefer_existing) == ("workspace-cto-rex", "workspace-cto")
    other = choose_workspace("cto", "cleo", None, NamingPolicy(mode="dual", legacy_owner="rex"))
    assert other.prefer_existing is None
    strict = choose_workspace("cto", "rex", None, NamingPolicy(mode="agent", legacy_owner="rex"))
    assert strict.prefer_existing is None


def test_shared_groups() -> None:
    # The platform's own layout: implementation agents share workspace-{service}.
    policy = NamingPolicy(mode="agent", shared={"rex": "", "blaze": "", "atlas": "impl", "nova": "impl"})
    assert choose_workspace("cto", "rex", None, policy).pvc == "workspace-cto"
    assert choose_workspace("cto", "blaze", None, policy).pvc == "workspace-cto"
    assert choose_workspace("cto", "atlas", None, policy).pvc == "workspace-cto-impl"
    assert choose_workspace("cto", "nova", None, policy).pvc == "workspace-cto-impl"
    assert choose_workspace("cto", "cleo", None, policy).pvc == "workspace-cto-cleo"
    assert choose_workspace("cto", "rex", None, NamingPolicy(mode="agent")).pvc == "workspace-cto-rex"  # off by default


def test_only_workspace_claims_are_the_webhooks_to_move() -> None:
    assert is_workspace_name("workspace-cto") and is_workspace_name("workspace-cto-rex-g2-0a1b2c")
    assert not is_workspace_name("healer-workspace") and not is_workspace_name("workspace")
    assert not is_workspace_name("") and not is_workspace_name("Workspace-cto")


@pytest.mark.parametrize(
    ("spec", "healer"),
    [
        ({"service": "healer"}, True),
        ({"service": "cto-Healer-2"}, True),  # the controller lower-cases before it looks
        ({"service": "cto", "cliConfig": {"settings": {"template": "healer/remediation"}}}, True),
        ({"service": "cto", "cliConfig": {"settings": {"template": "code/claude"}}}, False),
        ({"service": "cto", "cliConfig": {"settings": {"template": "x/healer/"}}}, False),
        ({"service": "cto"}, False),
        ({"service": 7, "cliConfig": "healer/", "settings": {"template": "healer/"}}, False),
        ({"service": "cto", "cliConfig": {"settings": ["healer/"]}}, False),
        ({"service": "cto", "cliConfig": {"settings": {"template": 1}}}, False),
    ],
)
def test_healer_runs_by_the_controllers_rule(spec: dict[str, Any], healer: bool) -> None:
    assert is_healer_run(spec) is healer
