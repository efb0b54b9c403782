"""manifests/ (the kustomize base) wherever the package runs from: shipped inside the wheel as
package data, or the checkout's own directory in a source or editable install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_PACKAGE = Path(__file__).resolve().parents[1]


def manifests_dir() -> Path:
    shipped = _PACKAGE / "manifests"  # where pyproject.toml puts them in a wheel
    if (shipped / "base").is_dir():
        return shipped
    checkout = _PACKAGE.parent / "manifests"
    if (checkout / "base").is_dir():
        return checkout
    raise FileNotFoundError(f"manifests/ is neither in {shipped} nor in {checkout}: reinstall the package")


def is_shipped(directory: Path) -> bool:
    """True for the copy inside an installed package (not a directory an operator edits)."""
    return directory.resolve().is_relative_to(_PACKAGE)


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def webhook_configuration(manifests: Path) -> dict[str, Any]:
    """The MutatingWebhookConfiguration of manifests/base/webhook.yaml."""
    return next(
        doc for doc in load_yaml(manifests / "base" / "webhook.yaml") if doc["kind"] == "MutatingWebhookConfiguration"
    )


# The optional parts of manifests/: kustomize Components, which a kustomization lists under
# `components:` over manifests/base (or manifests/, or the directory `certs` writes). Any
# combination builds; cert-manager and mtls do not go together (mtls needs the client CA that only
# the Secret of `certs --api-server-client` carries).
COMPONENTS = ("cert-manager", "grow", "mtls", "apiserver-only", "monitoring")
