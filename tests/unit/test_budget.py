"""The budget of lookups a forged review can trigger (rules/budget.py)."""

from __future__ import annotations

from agent_workspace_webhook.rules.budget import LookupBudget


def test_the_lookup_budget_refills_and_forgets_what_was_missing() -> None:
    budget = LookupBudget(per_second=2, burst=3, missing_seconds=5, max_missing=2)
    assert [budget.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert budget.take(0.5) and not budget.take(0.5)  # one more after half a second
    budget.missing("a", 0.0)
    assert budget.known_missing("a", 4.9) and not budget.known_missing("a", 5.0)
    for key in ("b", "c", "d"):
        budget.missing(key, 10.0)
    assert not budget.known_missing("b", 10.0) and budget.known_missing("d", 10.0)  # at most 2 remembered
