"""The chart takes exactly the storage sizes the webhook takes: a size the chart renders never
stops the webhook's start-up, and one the webhook would take is never refused by the chart.
Needs only the helm binary, like tests/e2e/test_helm.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_workspace_webhook.settings import SettingsError, load_settings
from tests.e2e.test_helm import CHART, NAMESPACE, RELEASE, env_of, helm, objects

pytestmark = pytest.mark.tools  # helm, from controlplane/build.sh

SIZES = [
    # the usual, and Kubernetes' other spellings of them
    "10Gi", "20000Mi", "1.5Ti", ".5Gi", "1.Gi", "+3Gi", "1e9", "1E9", "11e+9", "25e-1", "1E", "500M",
    "2000m", "1000000000n", "0.25Ki",
    # quantities, but no whole number of bytes above zero
    "0", "-0", "-1Gi", "1.5", "500m", "0.3Ki", "1e-1", "1e-999999999",
    # a fraction of a binary unit: whole only if a multiple of its 1/1024ths
    "0.000000000000000000867361737988403547205962240695953369140625Ei",  # 1 byte
    "0.0000000000000000008673617379884035472059622406959533691406251Ei",
    # around Kubernetes' largest quantity, 2^63-1 bytes
    "9223372036854775807", "9223372036854775808", "9.223372036854775807E", "7.5Ei", "8Ei",
    "8191.875Pi", "8192Pi", "1e18", "1e19", "1e999999", "1e999999999", "1e" + "9" * 40,
    # not quantities
    "1gi", "1K", "10GB", "1KiB", "10 Gi", " 10Gi", "10Gi\n", "1Ki1", "1e3Gi", ".", "+", "1e", "e3",
    "0x10", "1,5Gi", "1_000", "NaN", "Infinity", "\u0661", "\uff11\uff10Gi",
]  # fmt: skip
# Not in SIZES: "" (and null), which the chart reads as unset, leaving the webhook its default.


def webhook_takes(size: str) -> bool:
    try:
        load_settings(storage_size=size)
    except SettingsError:
        return False
    return True


@pytest.mark.parametrize("size", SIZES)
def test_the_chart_and_the_webhook_agree_on_a_storage_size(size: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps({"settings": {"storage": {"size": size}}}))  # JSON: a string whatever it looks like
    rendered = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, "--values", values)
    if webhook_takes(size):
        assert rendered.returncode == 0, f"the webhook takes {size!r}, the chart refuses it: {rendered.stderr}"
        assert env_of(objects(rendered.stdout))["WEBHOOK_STORAGE_SIZE"] == size
    else:
        assert rendered.returncode != 0, f"the chart renders {size!r}, which stops the webhook's start-up"
        assert "settings.storage.size must be" in rendered.stderr, rendered.stderr
