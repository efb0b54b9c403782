"""What one setting's value must be: the checks behind the fields of settings.py, each raising a
ValueError that pydantic reports under the setting's name."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from agent_workspace_webhook.rules.names import DNS1123_LABEL, is_dns1123_label
from agent_workspace_webhook.rules.quantity import parse_quantity
from agent_workspace_webhook.rules.selector import parse_selector

# No volume is larger: a provisioner is given the size as a signed 64-bit count of bytes (CSI's
# required_bytes), and Kubernetes cuts a larger binary quantity ("9Ei") down to this one.
MAX_STORAGE_BYTES = 2**63 - 1


def check_label(value: str) -> str:
    if not is_dns1123_label(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label ({DNS1123_LABEL}, at most 63 characters)")
    return value


def check_storage_size(value: str) -> str:
    size = parse_quantity(value)
    if size is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 10Gi, 500M or 1.5Ti")
    if size <= 0 or size != size.to_integral_value():
        raise ValueError(f"{value!r} is {_readable(size)} bytes: a storage size is a positive whole number of bytes")
    if size > MAX_STORAGE_BYTES:
        raise ValueError(
            f"{value!r} is {_readable(size)} bytes, more than a volume can be: "
            f"at most {MAX_STORAGE_BYTES} (2^63-1, just under 8Ei)"
        )
    return value


def _readable(size: Decimal) -> str:
    if abs(size.adjusted()) >= 40:  # positional notation would print that many zeros ("1e-999999")
        return f"{size:e}"
    text = f"{size:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def check_agent_pattern(value: str) -> str:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    if "agent" not in compiled.groupindex:
        raise ValueError(f"{value!r} has no named group (?P<agent>...) to take the agent name from")
    return value


def check_selector(value: str) -> str:
    parse_selector(value)  # SelectorError is a ValueError: pydantic reports it under the setting's name
    return value


Label = Annotated[str, AfterValidator(check_label)]
AccessMode = Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany", "ReadOnlyMany"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SharedGroup(BaseModel):
    """Agents that share one workspace per service instead of one each.

    ``suffix: ""`` shares the service's ``workspace-{service}`` (what the platform's controller
    does for its implementation agents, Rex and Blaze); ``suffix: impl`` shares
    ``workspace-{service}-impl``.
    """

    agents: list[Label] = Field(min_length=1)
    suffix: str = ""

    @model_validator(mode="after")
    def _suffix_is_label(self) -> SharedGroup:
        if self.suffix:
            check_label(self.suffix)
        return self
