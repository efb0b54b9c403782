"""Agent-name extraction: GitHub App name -> agent name (pure).

In order: the configured table, then the configured pattern, else an error that quotes the
input. The result is always a DNS-1123 label, never a silently mangled name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent_workspace_webhook.rules.names import DNS1123_LABEL, is_dns1123_label, quote

# GitHub Apps act as a bot user named "<app>[bot]".
BOT_SUFFIX = "[bot]"
# Longer than any GitHub login or App name; a bound that keeps hostile input cheap.
MAX_APP_LENGTH = 256
_NOT_IN_LABEL_VALUE = re.compile(r"[^a-z0-9._-]")


class AgentError(ValueError):
    """The GitHub App name does not yield a valid agent name."""


@dataclass(frozen=True)
class AgentRules:
    # lower-cased app name, its "[bot]" user and their label forms -> agent
    table: Mapping[str, str]
    # label forms that two different table entries produce: only the CodeRun can tell
    ambiguous_labels: frozenset[str]
    pattern: re.Pattern[str]


def label_form(app: str) -> str:
    """The app name as the platform's controller writes it into a label value.

    Lower-cased and stripped of characters labels forbid: ``5DLabs-Cleo[bot]`` -> ``5dlabs-cleobot``.
    """
    return _NOT_IN_LABEL_VALUE.sub("", app.strip().lower())


def compile_rules(table: Mapping[str, str], pattern: str) -> AgentRules:
    """Index the table by every form an app name arrives in; compile the pattern once."""
    exact = {app.strip().lower(): agent for app, agent in table.items()}
    claims: dict[str, set[str]] = {}  # every form -> the agents whose entries produce it
    for name, agent in exact.items():
        for key in (name, name + BOT_SUFFIX, label_form(name), label_form(name + BOT_SUFFIX)):
            claims.setdefault(key, set()).add(agent)
    index = {key: next(iter(agents)) for key, agents in claims.items() if len(agents) == 1}
    index.update(exact)  # an exact entry wins over another entry's derived form
    ambiguous = frozenset(key for key, agents in claims.items() if len(agents) > 1)
    # ASCII: with IGNORECASE in Unicode mode, [a-z] would also match the Kelvin sign and long s.
    return AgentRules(index, ambiguous, re.compile(pattern, re.IGNORECASE | re.ASCII))


def extract_agent(app: str, rules: AgentRules) -> str:
    """The agent name for a GitHub App name, or AgentError quoting the input."""
    if len(app) > MAX_APP_LENGTH:
        raise AgentError(f"GitHub App name {quote(app)} is longer than {MAX_APP_LENGTH} characters")
    name = app.strip()
    if not name:
        raise AgentError("GitHub App name is empty")
    agent = rules.table.get(name.lower())
    if agent is not None:
        return agent
    match = rules.pattern.fullmatch(name)
    if match is None or not match.group("agent"):
        raise AgentError(
            f"cannot extract an agent name from GitHub App {quote(app)}: it is not in agent_table "
            f"and does not match agent_pattern '{rules.pattern.pattern}'"
        )
    agent = match.group("agent").lower()
    if not is_dns1123_label(agent):
        raise AgentError(
            f"GitHub App {quote(app)} gives agent name {quote(agent)}, which is not a DNS-1123 "
            f"label ({DNS1123_LABEL}, at most 63 characters)"
        )
    return agent


def is_ambiguous_label(value: str, rules: AgentRules) -> bool:
    """Whether a label-sanitised app name (``5dlabs-cleobot``) may stand for two Apps.

    Sanitising dropped the brackets of ``[bot]``, so a trailing ``bot`` that the table does not
    explain is ambiguous (``5DLabs-Robot`` or ``5DLabs-Ro[bot]``?): ask the owning CodeRun.
    Without one, the value is taken literally, so ``5dlabs-robot`` is ``robot``, never ``ro``.
    """
    key = value.strip().lower()
    return key in rules.ambiguous_labels or (key not in rules.table and key.endswith("bot"))
