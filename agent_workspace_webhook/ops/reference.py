"""docs/configuration.md, written from the settings themselves: each field of Settings with its
type, default, environment variable, chart key and meaning (the field's docstring), so the
reference cannot drift from the code (tests/test_reference.py compares the two).

    python -m agent_workspace_webhook.ops.reference > docs/configuration.md
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agent_workspace_webhook.setting_values import check_agent_pattern, check_label, check_selector, check_storage_size
from agent_workspace_webhook.settings import CONFIG_FILE_ENV, Settings

COMMAND = "python -m agent_workspace_webhook.ops.reference > docs/configuration.md"

# The settings the chart does not take as settings.*, and why.
NOT_CHART_SETTINGS = {
    "namespace_selector": "from `workspaceNamespaces`, which also sets the webhooks' `namespaceSelector`",
    "own_namespace": "the release's namespace",
    "metrics_port": "the chart's `metricsPort` (the container and probe port), passed as `--metrics-port`",
    "store": "the in-memory store is for `serve` on a laptop",
    "kubeconfig": "in a cluster the webhook uses its ServiceAccount",
}
# Where the chart keeps a setting when not under its own name in camelCase.
CHART_PATH = {
    "storage_size": "storage.size",
    "storage_class": "storage.className",
    "access_modes": "storage.accessModes",
}
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "at least"))
_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
# A string that one of settings' checks takes, by what it must be.
_CHECKED = {
    check_label: "DNS-1123 label",
    check_storage_size: "Kubernetes quantity",
    check_agent_pattern: "regular expression",
    check_selector: "label selector",
}


def env_var(setting: str) -> str:
    return "WEBHOOK_" + setting.upper()


def chart_path(setting: str) -> list[str]:
    """The keys under the chart's `settings` that hold a setting: storage_size is storage, size."""
    head, *rest = setting.split("_")
    return CHART_PATH.get(setting, head + "".join(word.title() for word in rest)).split(".")


def chart_key(setting: str) -> str | None:
    return None if setting in NOT_CHART_SETTINGS else "settings." + ".".join(chart_path(setting))


def type_name(annotation: Any) -> str:
    """An annotation as an operator reads it: `a` | `b`, list of string, map of string to string."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _checked(args[1:]) or type_name(args[0])
    if origin is Literal:
        return " | ".join(f"`{choice}`" for choice in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args if arg is not type(None))
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = ", ".join(f"{name}: {type_name(f.annotation)}" for name, f in annotation.model_fields.items())
        return f"{{{fields}}}"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _checked(metadata: Any) -> str | None:
    return next((_CHECKED[m.func] for m in metadata if getattr(m, "func", None) in _CHECKED), None)


def full_type(field: FieldInfo) -> str:
    bounds = [
        f"{word} {getattr(item, attribute)}"
        for item in field.metadata
        for attribute, word in _BOUNDS
        if getattr(item, attribute, None) is not None
    ]
    return (_checked(field.metadata) or type_name(field.annotation)) + (f" ({', '.join(bounds)})" if bounds else "")


def default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    fields = Settings.model_fields
    undocumented = [name for name, field in fields.items() if not field.description]
    if undocumented:
        raise SystemExit(f"settings.py: give {', '.join(undocumented)} a docstring (what it does, for an operator)")
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from agent_workspace_webhook/settings.py by `{COMMAND}`:",
        "     edit the settings' docstrings there, then regenerate. -->",
        "",
        "Every setting of the webhook. Each is read, strongest first, from an environment variable",
        f"`WEBHOOK_<NAME>`, from a YAML, JSON or TOML file named by `{CONFIG_FILE_ENV}` (as `name: value`),",
        "or else its default. Maps and lists are JSON in an environment variable. A bad value, or a",
        "`WEBHOOK_*` variable that is no setting, stops start-up with a message naming it.",
        "",
        "The Helm chart takes each as its key under `settings` in",
        "[values.yaml](../charts/agent-workspace-webhook/values.yaml) (null: the default) and sets the",
        "environment variable on the Deployment; the few it sets itself say why.",
        "",
        "| setting | environment variable | chart key | type | default |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in fields.items():
        key = chart_key(name)
        lines.append(
            f"| [`{name}`](#{name}) | `{env_var(name)}` | {f'`{key}`' if key else 'none'} "
            f"| {_cell(full_type(field))} | {_cell(default(field))} |"
        )
    for name, field in fields.items():
        lines += ["", f"### {name}", "", str(field.description)]
        if name in NOT_CHART_SETTINGS:
            lines += ["", f"Not a `settings.*` chart value: {NOT_CHART_SETTINGS[name]}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
