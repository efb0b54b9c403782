"""The workspace a run's facts give (pure): the service checked, the agent from its GitHub App
by the agent rules (or a bare agent name, checked), then the naming policy's choice. The
admission memoises it per facts (admission/context.decide); the CLI calls it directly."""

from __future__ import annotations

from agent_workspace_webhook.rules.agents import AgentError, AgentRules, extract_agent
from agent_workspace_webhook.rules.facts import RunFacts
from agent_workspace_webhook.rules.names import DNS1123_LABEL, is_dns1123_label, quote
from agent_workspace_webhook.rules.workspace import (
    NamingError,
    NamingPolicy,
    Workspace,
    choose_workspace,
    validate_service,
)


def decide_workspace(facts: RunFacts, rules: AgentRules, policy: NamingPolicy) -> Workspace:
    """Which workspace these facts give; NamingError where the rules deny."""
    if facts.service is None:
        raise NamingError(f"{facts.service_field} is missing; set it to the service name, for example 'cto'")
    service = validate_service(facts.service, facts.service_field)
    agent: str | None = None
    problem: str | None = None
    if facts.agent is not None:  # a bare agent name: nothing to look up, only to check
        if is_dns1123_label(facts.agent):
            agent = facts.agent
        else:
            problem = (
                f"{facts.app_field} is {quote(facts.agent)}, which is not a DNS-1123 label ({DNS1123_LABEL}); "
                "set it to the agent's name, for example 'rex'"
            )
    elif facts.app is None:
        problem = f"{facts.app_field} is missing; set it to the run's GitHub App, for example '5DLabs-Rex'"
    else:
        try:
            agent = extract_agent(facts.app, rules)
        except AgentError as exc:
            problem = (
                f"{facts.app_field}: {exc}; set it to one of the GitHub Apps in agent_table, for example '5DLabs-Rex'"
            )
    return choose_workspace(service, agent, problem, policy)
