import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_workspace_webhook.rules.agents import (
    AgentError,
    compile_rules,
    extract_agent,
    is_ambiguous_label,
    label_form,
)
from agent_workspace_webhook.rules.names import is_dns1123_label
from agent_workspace_webhook.settings import DEFAULT_AGENT_PATTERN, DEFAULT_AGENT_TABLE

RULES = compile_rules(DEFAULT_AGENT_TABLE, DEFAULT_AGENT_PATTERN)


@pytest.mark.parametrize(
    ("app", "agent"),
    [
        ("5DLabs-Rex", "rex"),
        ("5DLabs-Cleo[bot]", "cleo"),
        ("5dlabs-tess", "tess"),
        ("  5DLabs-Blaze  ", "blaze"),
        ("5DLABS-MORGAN[BOT]", "morgan"),
        # label-sanitised forms the controller writes into pod labels
        ("5dlabs-cleobot", "cleo"),
        ("5dlabs-rexbot", "rex"),
        # not in the table: the pattern
        ("5DLabs-Cipher", "cipher"),
        ("5DLabs_Atlas[bot]", "atlas"),
        ("5dlabsnova", "nova"),
        ("5DLabs-Code-Review", "code-review"),
        # 'bot' is part of the name unless written as [bot]
        ("5DLabs-Robot", "robot"),
        ("5dlabs-robot", "robot"),
    ],
)
def test_extracts_agent(app: str, agent: str) -> None:
    assert extract_agent(app, RULES) == agent


@pytest.mark.parametrize(
    "app",
    [
        "",
        "   ",
        "octocat",
        "5DLabs-",
        "5DLabs-[bot]",
        "5DLabs-rex_bot",  # underscore cannot be in a label
        "5DLabs-Rex-",  # a label cannot end in '-'
        "acme-bot-rex",
        "5DLabs-" + "a" * 64,  # too long for a label
        "5dlabs-rex\nx",
        "5DLabs-\u212aex",  # Kelvin sign, which Unicode case folding would turn into 'k'
        "5DLabs-Rëx",
    ],
)
def test_rejects_with_message_quoting_input(app: str) -> None:
    with pytest.raises(AgentError) as err:
        extract_agent(app, RULES)
    if app.strip():
        assert repr(app[:80])[:20] in str(err.value)


def test_overlong_input_is_refused_cheaply() -> None:
    with pytest.raises(AgentError, match="longer than 256"):
        extract_agent("5dlabs-" + "a" * 100_000, RULES)


def test_other_organisations_work_through_configuration() -> None:
    rules = compile_rules({"Acme-Reviewer": "critic"}, r"^acme-bot-(?P<agent>[a-z0-9-]+)$")
    assert extract_agent("acme-bot-rex", rules) == "rex"
    assert extract_agent("Acme-Reviewer[bot]", rules) == "critic"
    with pytest.raises(AgentError):
        extract_agent("5DLabs-Rex", rules)


def test_table_entries_whose_label_forms_collide() -> None:
    rules = compile_rules({"Acme-Cleo": "cleo", "Acme-Cleobot": "janitor"}, DEFAULT_AGENT_PATTERN)
    assert extract_agent("Acme-Cleo", rules) == "cleo"
    assert extract_agent("Acme-Cleo[bot]", rules) == "cleo"
    assert extract_agent("Acme-Cleobot", rules) == "janitor"  # an exact entry wins
    # ...but as a label value it may have been Acme-Cleo[bot]: only the CodeRun can tell
    assert is_ambiguous_label("acme-cleobot", rules)
    assert not is_ambiguous_label("acme-cleo", rules)


def test_label_form_matches_the_controller() -> None:
    assert label_form("5DLabs-Cleo[bot]") == "5dlabs-cleobot"
    assert label_form("5DLabs-Rex") == "5dlabs-rex"


def test_ambiguous_labels() -> None:
    assert not is_ambiguous_label("5dlabs-cleobot", RULES)  # the table explains it
    assert not is_ambiguous_label("5dlabs-cipher", RULES)
    assert is_ambiguous_label("5dlabs-robot", RULES)  # Robot, or Ro[bot]?


@given(st.text(max_size=300))
def test_any_string_gives_a_label_or_a_clear_error(app: str) -> None:
    try:
        agent = extract_agent(app, RULES)
    except AgentError as exc:
        assert str(exc)
    else:
        assert is_dns1123_label(agent)


@given(
    st.from_regex(
        re.compile(r"5[dD][lL]abs[-_]?[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\[bot\])?", re.ASCII), fullmatch=True
    )
)
def test_well_formed_app_names_always_extract(app: str) -> None:
    agent = extract_agent(app, RULES)
    assert is_dns1123_label(agent)
    assert agent in app.lower()
