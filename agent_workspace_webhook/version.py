"""The one version of this webhook: the installed package's metadata (pyproject.toml's
`version`). `--version`, the `serving` log line and the build_info metric say it; the chart's
appVersion, and so its default image tag, must equal it (tests/test_version.py)."""

from __future__ import annotations

import functools
from importlib import metadata

DISTRIBUTION = "agent-workspace-webhook"


@functools.cache
def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"
