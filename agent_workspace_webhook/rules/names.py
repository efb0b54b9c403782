"""Kubernetes name syntax, and how input is quoted in messages (pure)."""

from __future__ import annotations

import re

DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL = re.compile(DNS1123_LABEL)
MAX_LABEL = 63


def is_dns1123_label(value: str) -> bool:
    """True for a lower-case RFC 1123 label of at most 63 characters."""
    return len(value) <= MAX_LABEL and _LABEL.fullmatch(value) is not None


_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
MAX_NAME = 253


def is_object_name(value: str) -> bool:
    """True for a name most objects (a PVC among them) may have: an RFC 1123 subdomain."""
    return len(value) <= MAX_NAME and _SUBDOMAIN.fullmatch(value) is not None


def quote(value: str, limit: int = 80) -> str:
    """The input as it would appear in an error message, shortened if huge."""
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    return repr(value)


def one_line(value: object, limit: int = 300) -> str:
    """Any text (an exception, an API server's message) as one bounded line for a message or log."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."
