"""The two definitions of an AdmissionReview request agree: whatever msgspec's structs decode,
the pydantic models (the documented schema, and the judge of what the structs refuse) accept with
the same values, so the fast path never admits what the schema forbids."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_workspace_webhook.admission import review as wire
from agent_workspace_webhook.testing.objects import job_pod, review

BUDGET = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
texts = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.text(min_size=120, max_size=260))
values = st.one_of(texts, st.lists(texts, max_size=2), st.dictionaries(st.text(max_size=5), texts, max_size=2))
FIELDS = ["uid", "namespace", "name", "operation", "dryRun", "object", "kind"]
KIND_FIELDS = ["group", "version", "kind"]


def both(body: bytes) -> tuple[wire.Review | None, wire.Review | str]:
    """(what the strict decoder gives, or None; what parse_review gives, or its error)."""
    try:
        fast: wire.Review | None = msgspec.json.decode(body, type=wire.Review)
    except msgspec.DecodeError:
        fast = None
    try:
        return fast, wire.parse_review(body)
    except wire.ReviewError as exc:
        return fast, str(exc)


@BUDGET
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), values, max_size=2),
    kind_changes=st.dictionaries(st.sampled_from(KIND_FIELDS), texts, max_size=1),
    dropped=st.lists(st.sampled_from(FIELDS), max_size=1),
)
def test_what_the_structs_decode_the_models_accept_alike(
    changes: dict[str, Any], kind_changes: dict[str, Any], dropped: list[str]
) -> None:
    request = copy.deepcopy(review(job_pod())["request"])  # a valid one, a few fields changed or dropped
    request.update(changes)
    if isinstance(request.get("kind"), dict):
        request["kind"].update(kind_changes)
    for name in dropped:
        request.pop(name, None)
    body = json.dumps({"apiVersion": wire.API_VERSION, "kind": "AdmissionReview", "request": request}).encode()
    fast, parsed = both(body)
    if fast is not None:
        slow = wire._validate(body)
        assert msgspec.convert(slow.model_dump(by_alias=True), wire.Review) == fast == parsed


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({}, True),
        ({"uid": "u" * 128}, True),
        ({"uid": "u" * 129}, False),
        ({"uid": ""}, False),
        ({"name": "n" * 253}, True),
        ({"name": "n" * 254}, False),
        ({"namespace": None}, True),
        ({"operation": "X" * 17}, False),
        ({"dryRun": "true"}, True),  # pydantic's coercion, as before
        ({"dryRun": [1]}, False),
        ({"extra": {"ignored": True}}, True),
    ],
)
def test_the_bounds_hold_on_both_paths(change: dict[str, Any], accepted: bool) -> None:
    body = copy.deepcopy(review(job_pod()))
    body["request"].update(change)
    _, parsed = both(json.dumps(body).encode())
    assert isinstance(parsed, wire.Review) == accepted, parsed
    if not accepted:
        assert isinstance(parsed, str) and parsed.startswith("AdmissionReview field request.")
