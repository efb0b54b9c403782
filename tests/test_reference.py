"""docs/configuration.md is what its generator writes from settings.py now."""

import difflib
import subprocess
import sys
from pathlib import Path

from agent_workspace_webhook.ops.reference import COMMAND

ROOT = Path(__file__).resolve().parents[1]


def test_the_configuration_reference_is_what_the_settings_say_now() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "agent_workspace_webhook.ops.reference"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    committed = (ROOT / "docs" / "configuration.md").read_text()
    diff = "\n".join(
        difflib.unified_diff(committed.splitlines(), generated.stdout.splitlines(), "committed", "generated", n=1)
    )
    assert not diff, f"docs/configuration.md is out of date with settings.py; regenerate it: {COMMAND}\n{diff}"
