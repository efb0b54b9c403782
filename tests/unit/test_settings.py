import json
from pathlib import Path

import pytest

from agent_workspace_webhook import cli, logs
from agent_workspace_webhook.server import serve
from agent_workspace_webhook.settings import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings()
    assert s.naming_mode == "dual"
    assert s.storage_size == "10Gi"
    assert s.agent_table["5DLabs-Rex"] == "rex"
    assert s.shared_groups == []


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_NAMING_MODE", "agent")
    monkeypatch.setenv("WEBHOOK_STORAGE_SIZE", "50Gi")
    monkeypatch.setenv("WEBHOOK_SHARED_GROUPS", '[{"agents": ["rex", "blaze"]}]')
    monkeypatch.setenv("WEBHOOK_AGENT_TABLE", '{"Acme-Rex": "rex"}')
    monkeypatch.setenv("WEBHOOK_WATCH_CACHES", "false")
    s = load_settings()
    assert s.watch_caches is False
    assert (s.naming_mode, s.storage_size) == ("agent", "50Gi")
    assert s.shared_groups[0].agents == ["rex", "blaze"] and s.shared_groups[0].suffix == ""
    assert s.agent_table == {"Acme-Rex": "rex"}


def test_only_verified_runs_get_new_workspaces_unless_the_store_is_made_up(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().create_for == "verified-runs"
    assert load_settings(store="memory").create_for == "any"  # nothing in it to verify against
    assert load_settings(store="memory", create_for="verified-runs").create_for == "verified-runs"
    monkeypatch.setenv("WEBHOOK_STORE", "memory")
    assert load_settings().create_for == "any"
    monkeypatch.setenv("WEBHOOK_CREATE_FOR", "verified-runs")
    assert load_settings().create_for == "verified-runs"


@pytest.mark.parametrize("suffix", ["yaml", "json", "toml"])
def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    text = {
        "yaml": "naming_mode: legacy\nstorage_class: fast\n",
        "json": json.dumps({"naming_mode": "legacy", "storage_class": "fast"}),
        "toml": 'naming_mode = "legacy"\nstorage_class = "fast"\n',
    }[suffix]
    path = tmp_path / f"config.{suffix}"
    path.write_text(text)
    monkeypatch.setenv("WEBHOOK_CONFIG_FILE", str(path))
    s = load_settings()
    assert (s.naming_mode, s.storage_class) == ("legacy", "fast")
    monkeypatch.setenv("WEBHOOK_NAMING_MODE", "agent")  # the environment wins over the file
    assert load_settings().naming_mode == "agent"


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("WEBHOOK_NAMING_MODE", "strict", "naming_mode (WEBHOOK_NAMING_MODE)"),
        ("WEBHOOK_STORAGE_SIZE", "ten gigs", "'ten gigs' is not a Kubernetes quantity"),
        ("WEBHOOK_AGENT_PATTERN", "^5dlabs-(.*)$", "no named group (?P<agent>...)"),
        ("WEBHOOK_AGENT_PATTERN", "^5dlabs-(?P<agent>", "not a valid regular expression"),
        ("WEBHOOK_LEGACY_OWNER", "Rex", "legacy_owner (WEBHOOK_LEGACY_OWNER)"),
        ("WEBHOOK_AGENT_TABLE", '{"5DLabs-Rex": "Rex!"}', "agent_table.5DLabs-Rex"),
        ("WEBHOOK_KUBE_DEADLINE_SECONDS", "0", "kube_deadline_seconds"),
        (
            "WEBHOOK_SHARED_GROUPS",
            '[{"agents": ["rex"]}, {"agents": ["rex"], "suffix": "x"}]',
            "'rex' is in two groups",
        ),
        ("WEBHOOK_PVC_CACHE", "false", "WEBHOOK_PVC_CACHE was renamed WEBHOOK_WATCH_CACHES"),
        # a misspelt setting stops start-up with the nearest name, rather than leave the default on
        ("WEBHOOK_NAMNG_MODE", "agent", "WEBHOOK_NAMNG_MODE is not a setting; did you mean WEBHOOK_NAMING_MODE?"),
        ("WEBHOOK_NO_SUCH_KNOB", "1", "WEBHOOK_NO_SUCH_KNOB is not a setting"),
        ("WEBHOOK_LOG_LEVL", "DEBUG", "did you mean WEBHOOK_LOG_LEVEL?"),
        ("WEBHOOK_LOG_LEVEL", "LOUD", "log_level (WEBHOOK_LOG_LEVEL): Input should be 'DEBUG', 'INFO'"),
        ("OTHER_NAMNG_MODE", "agent", None),  # only the webhook's prefix is its own
    ],
)
def test_bad_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str | None
) -> None:
    monkeypatch.setenv(env, value)
    if expected is None:
        load_settings()
        return
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value)


def test_unknown_key_in_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("naming_mod: agent\n")
    monkeypatch.setenv("WEBHOOK_CONFIG_FILE", str(path))
    with pytest.raises(SettingsError, match="naming_mod"):
        load_settings()


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_CONFIG_FILE", "/nonexistent/c.yaml")
    with pytest.raises(SettingsError, match="no such file"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "flag", "level"),
    [(None, None, "INFO"), ("WARNING", None, "WARNING"), ("WARNING", "debug", "DEBUG"), (None, "ERROR", "ERROR")],
)
def test_serve_logs_at_the_setting_unless_the_flag_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, env: str | None, flag: str | None, level: str
) -> None:
    configured: list[str] = []
    monkeypatch.setattr(logs, "configure", configured.append)
    monkeypatch.setattr(serve, "serve", lambda *args, **kwargs: None)
    if env is not None:
        monkeypatch.setenv("WEBHOOK_LOG_LEVEL", env)
    assert cli.main(["serve", "--store", "memory", *(["--log-level", flag] if flag else [])]) == 0
    assert configured == [level]
