"""Every knob of the webhook, validated once at start-up (env prefix ``WEBHOOK_``).

Sources, strongest first: explicit arguments, ``WEBHOOK_*`` environment variables, the config
file named by ``WEBHOOK_CONFIG_FILE`` (YAML, JSON or TOML, by extension), then the defaults.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from agent_workspace_webhook.rules.workspace import NamingMode
from agent_workspace_webhook.setting_values import (
    AccessMode,
    Label,
    LogLevel,
    SharedGroup,
    check_agent_pattern,
    check_selector,
    check_storage_size,
)

CONFIG_FILE_ENV = "WEBHOOK_CONFIG_FILE"

DEFAULT_AGENT_TABLE: dict[str, str] = {
    "5DLabs-Rex": "rex",
    "5DLabs-Cleo": "cleo",
    "5DLabs-Tess": "tess",
    "5DLabs-Blaze": "blaze",
    "5DLabs-Morgan": "morgan",
}
DEFAULT_AGENT_PATTERN = r"^5dlabs[-_]?(?P<agent>[a-z0-9][a-z0-9-]*?)(\[bot\])?$"

# Settings that were renamed: a deployment still setting the old name is stopped with the new one
# rather than silently given the default.
RENAMED = {
    "WEBHOOK_PVC_CACHE": "WEBHOOK_WATCH_CACHES (it switches the namespace cache too)",
    "WEBHOOK_MAX_GENERATIONS_PER_WORKSPACE": (
        "WEBHOOK_MAX_FRESH_PER_HOUR, a rate: a count refused routine intake runs after about 20 (CHANGELOG)"
    ),
}


class Settings(BaseSettings):
    # Each field's docstring is its documentation: docs/configuration.md is generated from them
    # (python -m agent_workspace_webhook.ops.reference).
    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", extra="forbid", frozen=True, use_attribute_docstrings=True)

    # --- the rules --------------------------------------------------------------------------
    naming_mode: NamingMode = "dual"
    """Which PVC a run mounts: `legacy`, everyone `workspace-{service}`; `dual`, one per agent
    (`workspace-{service}-{agent}`), `workspace-{service}` with a warning when there is no agent;
    `agent`, one per agent, and a run without an agent is denied."""
    legacy_owner: Label | None = None
    """In `dual` mode, the agent that keeps an existing `workspace-{service}` (e.g. `rex`)."""
    agent_table: dict[str, Label] = Field(default_factory=lambda: dict(DEFAULT_AGENT_TABLE))
    """GitHub App to agent name, matched case-insensitively (also in `[bot]` user and label form).
    It replaces the whole built-in table: list every app."""
    agent_pattern: Annotated[str, AfterValidator(check_agent_pattern)] = DEFAULT_AGENT_PATTERN
    """For apps the table does not name: a regular expression (matched case-insensitively) whose
    named group `(?P<agent>...)` is the agent's name."""
    shared_groups: list[SharedGroup] = Field(default_factory=list)
    """Agents that share one workspace per service instead of one each:
    `[{"agents": ["rex", "blaze"], "suffix": "impl"}]` shares `workspace-{service}-impl`; an empty
    suffix shares `workspace-{service}`. An agent is in one group at most."""

    # --- where the run's facts are ------------------------------------------------------------
    workspace_volume: Label = "workspace"
    """The Pod volume that is the workspace: its claim becomes the agent's workspace PVC. A Pod
    without it is left unchanged."""
    pod_service_label: str = "service"
    """The Pod label that names the run's service."""
    pod_app_label: str = "github-user"
    """The Pod label that names the run's GitHub App, from which the agent comes."""
    coderun_group: str = "agents.platform"
    """The API group of the platform's CodeRun resource."""
    coderun_version: str = "v1"
    """The API version of the CodeRun resource."""
    coderun_plural: str = "coderuns"
    """The resource (plural) name of the CodeRun resource."""

    # --- the PVC it creates ---------------------------------------------------------------------
    storage_size: Annotated[str, AfterValidator(check_storage_size)] = "10Gi"
    """The storage request of a new workspace PVC: a Kubernetes quantity (`10Gi`, `1.5Ti`, `1e9`)
    that is a positive whole number of bytes, at most 2^63-1 (just under `8Ei`)."""
    storage_class: str | None = None
    """The StorageClass of a new workspace PVC (unset: the cluster's default class)."""
    access_modes: list[AccessMode] = Field(default_factory=lambda: list[AccessMode](["ReadWriteOnce"]), min_length=1)
    """The access modes of a new workspace PVC."""
    seed_from_legacy: Literal["none", "clone"] = "none"
    """A new per-agent workspace of a service whose `workspace-{service}` exists and is Bound:
    `clone` creates it as a clone of that legacy PVC (the storage class's CSI driver must support
    cloning), `none` empty."""
    colocate: bool = True
    """Pods that mount one ReadWriteOnce workspace get a required pod affinity to one node."""
    grow_existing: bool = False
    """Raise an existing workspace's storage request to `storage_size` when it is smaller and its
    class allows expansion: the one change the webhook ever makes to a PVC it did not just create
    (never smaller, nothing else). Needs patch on PVCs and get on StorageClasses."""
    max_workspaces_per_namespace: int = Field(default=1000, ge=1, le=1_000_000)
    """A ceiling on the workspace PVCs the webhook makes in one namespace, every generation counted
    (new ones, a fresh run's among them, are denied past it, naming this setting): a runaway
    controller or a forged review cannot fill a pool."""
    max_fresh_per_hour: int = Field(default=60, ge=1, le=10_000)
    """A bound on the rate of one workspace's new generations: a fresh run keeps every earlier one,
    so a loop of fresh CodeRuns would fill the pool. A rate, not a count: intake runs are fresh and
    routine, and must keep working forever. Past it (in the last hour) a fresh run is denied,
    naming this setting, until the oldest of them is an hour old."""
    create_for: Literal["verified-runs", "any"] = "verified-runs"
    """Who gets a new workspace: `verified-runs`, only a Pod whose controller Job and CodeRun exist
    with the uids it names (its service and agent from that CodeRun; a CodeRun's own workspace is
    then made at its first Pod); `any`, whoever the labels name (bare Pods too: anyone who may
    create Pods in a namespace in scope can mint storage; SECURITY.md). With `store` `memory`
    (no API server, no runs to verify) the default is `any`."""
    agent_allowlist: list[Label] = Field(default_factory=list)
    """With `create_for` `any`, the agents an unverified run may get a new workspace for besides
    those of `agent_table` (an agent only `agent_pattern` names is mounted what exists, no storage
    made). A verified run gets a workspace for whatever agent its GitHub App names."""

    # --- the Kubernetes API ---------------------------------------------------------------------
    store: Literal["kube", "memory"] = "kube"
    """Where the PVCs live: `kube`, the Kubernetes API; `memory`, in the process, for `serve` on a
    laptop and the offline `review` (nothing is kept)."""
    kubeconfig: Path | None = None
    """The kubeconfig to reach the API with (unset: the Pod's ServiceAccount, else the default
    kubeconfig)."""
    kube_deadline_seconds: float = Field(default=2.0, gt=0, le=25)
    """All Kubernetes calls of one admission must finish inside this, well below the
    MutatingWebhookConfiguration's `timeoutSeconds`, so the user sees our message, not a timeout."""
    ready_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    """How long `/readyz` waits for the Kubernetes API to answer."""
    kube_pool_size: int = Field(default=8, ge=1, le=256)
    """Threads, and connections to the Kubernetes API, for its calls."""
    watch_caches: bool = True
    """Keep the workspace PVCs and the namespaces' labels by list + watch, so that an existing
    workspace and the scope check cost no API call; off, every admission asks."""

    # --- the HTTP side ------------------------------------------------------------------------
    max_body_bytes: int = Field(default=3 * 1024 * 1024, ge=1024)
    """The largest request body: a larger one is answered 413."""
    max_pending_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Bytes that requests not yet answered may hold in all (received, then admitted): with the
    connection cap, what bounds memory under a flood. Past it the request still arriving that holds
    the most is dropped. At least `max_body_bytes`."""
    max_in_flight: int = Field(default=256, ge=1, le=100_000)
    """Past this many admissions at once, answer at once (an error, code 429) rather than queue
    beyond the API server's timeout."""
    tls_reload_seconds: float = Field(default=10.0, gt=0, le=3600)
    """How often the serving certificate files are checked for rotation."""
    shutdown_grace_seconds: int = Field(default=5, ge=1, le=300)
    """On SIGTERM, requests in flight get this long to finish. It also bounds the wait for idle
    keep-alive TLS connections (the API server keeps them), which would otherwise hold the process
    for the event loop's 30 s TLS shutdown timeout. Keep it below the pod's
    `terminationGracePeriodSeconds`."""
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Each request's headers, and then its body, must arrive within this (slow clients are
    dropped)."""
    max_connections: int = Field(default=200, ge=1, le=100_000)
    """Open connections per process, counted from accept (TLS handshakes included); past it a
    waiting one is dropped for the newcomer, or the newcomer refused."""
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    """`/healthz`, `/readyz` and `/metrics` on plain HTTP on this port (0: off); `/mutate` stays
    on TLS."""
    log_level: LogLevel = "INFO"
    """The level of the webhook's own JSON log lines (`serve --log-level` wins over it); the
    libraries log at WARNING and above whatever it is."""

    # --- who may call, and for which namespaces ----------------------------------------------------
    client_ca_file: Path | None = None
    """Mutual TLS: callers must present a certificate that chains to this CA (reloaded on
    change)."""
    client_names: list[str] = Field(default_factory=list)
    """With `client_ca_file`: the certificate's CN or a SAN must be one of these (empty: any)."""
    namespace_selector: Annotated[str, AfterValidator(check_selector)] = "agents.platform/workspaces=enabled"
    """Namespaces whose runs get workspaces, as a label selector in `kubectl -l` syntax (empty:
    every namespace). The MutatingWebhookConfiguration's `namespaceSelector` must say the same."""
    own_namespace: Label = "agent-workspace-webhook"
    """Never in scope, whatever its labels (nor is kube-system): the webhook's own namespace."""

    @model_validator(mode="before")
    @classmethod
    def _offline_creates_for_any(cls, data: Any) -> Any:
        # The memory store has no runs to verify against: every object in it is made up.
        if isinstance(data, dict) and data.get("store") == "memory" and "create_for" not in data:
            return {**data, "create_for": "any"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        seen: dict[str, str] = {}
        for group in self.shared_groups:
            for agent in group.agents:
                if agent in seen:
                    raise ValueError(
                        f"shared_groups: agent {agent!r} is in two groups "
                        f"(suffixes {seen[agent]!r} and {group.suffix!r}); list it once"
                    )
                seen[agent] = group.suffix
        if self.max_pending_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_pending_bytes ({self.max_pending_bytes}) is below max_body_bytes ({self.max_body_bytes}): "
                "one whole request must fit; raise WEBHOOK_MAX_PENDING_BYTES or lower WEBHOOK_MAX_BODY_BYTES"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_FILE_ENV)
        if path:
            sources.append(_file_source(settings_cls, Path(path)))
        return tuple(sources)


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise SettingsError(f"{CONFIG_FILE_ENV}={path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    if suffix == ".json":
        return JsonConfigSettingsSource(settings_cls, json_file=path)
    if suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    raise SettingsError(f"{CONFIG_FILE_ENV}={path}: use a .yaml, .yml, .json or .toml file")


class SettingsError(Exception):
    """A setting is wrong; the message names it and says what is expected."""


def load_settings(**overrides: Any) -> Settings:
    """Load and validate the settings, turning pydantic's report into one message per setting."""
    for old, new in RENAMED.items():
        if old in os.environ:
            raise SettingsError(f"invalid settings: {old} was renamed {new}")
    known = {"WEBHOOK_" + name.upper() for name in Settings.model_fields} | {CONFIG_FILE_ENV}
    unknown = sorted(name for name in os.environ if name.startswith("WEBHOOK_") and name not in known)
    if unknown:  # a misspelt setting would silently leave its default in force
        near = difflib.get_close_matches(unknown[0], known, n=1)
        hint = (
            f"; did you mean {near[0]}?"
            if near
            else "; every setting is a field of agent_workspace_webhook/settings.py"
        )
        raise SettingsError(f"invalid settings: {unknown[0]} is not a setting{hint}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            env = "WEBHOOK_" + str(error["loc"][0]).upper() if error["loc"] else CONFIG_FILE_ENV
            problems.append(f"{where} ({env}): {error['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    except ValueError as exc:  # the config file did not parse
        raise SettingsError(f"invalid settings: {exc}") from None
