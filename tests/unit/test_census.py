"""The workspace gauges' counts (rules/census.py)."""

from __future__ import annotations

from agent_workspace_webhook.rules.census import census
from agent_workspace_webhook.rules.pvc import PvcState


def state(phase: str = "Bound", deleting: bool = False, generation: int = 1, service: str | None = "cto") -> PvcState:
    return PvcState(
        phase, deleting, False, ("ReadWriteOnce",), None, None, "10Gi", generation=generation, service=service
    )


def test_counts_states_generations_and_legacy_workspaces() -> None:
    found = census(
        [
            # Cleo: generation 1 kept, 2 current, 3 going
            (
                "workspace-cto-cleo",
                {"workspace-cto-cleo": state(), "g2": state(generation=2), "g3": state("Bound", True, 3)},
            ),
            ("workspace-cto-rex", {"workspace-cto-rex": state("Pending")}),  # current, not Bound yet
            ("workspace-cto", {"workspace-cto": state(service=None)}),  # the legacy shared one (no labels of ours)
            ("workspace-cto-tess", {"workspace-cto-tess": state("Lost", True)}),  # all going: nothing current
        ]
    )
    assert found.pvcs == {"Bound": 3, "Pending": 1, "Lost": 0, "deleting": 2}
    assert (found.current, found.retained, found.legacy) == (3, 1, 1)


def test_a_labelled_legacy_workspace_counts_and_a_deleted_generation_one_does_not() -> None:
    assert census([("workspace-docs", {"workspace-docs": state(service="docs")})]).legacy == 1
    # generation 1 of workspace-docs gone, only a later one of it left: no legacy PVC is there
    assert census([("workspace-docs", {"workspace-docs-g2-abcdef": state(generation=2, service="docs")})]).legacy == 0
