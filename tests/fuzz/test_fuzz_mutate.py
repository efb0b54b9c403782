"""A hypothesis campaign over /mutate's request body, with a fixed example budget so CI runs the
same amount every time: never a 500, never a traceback, never a patch naming an invalid PVC."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_workspace_webhook.kube.memory import MemoryStore
from agent_workspace_webhook.server.app import create_app
from agent_workspace_webhook.settings import load_settings
from agent_workspace_webhook.testing.objects import coderun, decode_patch, job_pod, review

BUDGET = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
hostile_text = st.one_of(
    st.text(max_size=100),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "5DLabs-Rex\n",
            "5DLabs-\u212aex",
            "5dlabs-robot",
            "../../etc",
            "a" * 70,
            "\uff32\uff25\uff38",
            "5DLabs-Rex[bot][bot]",
        ]
    ),
    st.just("x" * 200_000),
)


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    with TestClient(create_app(load_settings(store="memory", naming_mode="dual"), MemoryStore())) as client:
        yield client


def check(http: TestClient, body: bytes) -> dict[str, Any] | None:
    response = http.post("/mutate", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 413), response.text[:500]
    assert "Traceback" not in response.text and 'File "' not in response.text
    payload = response.json()
    if response.status_code != 200:
        assert payload["error"] and "\n" not in payload["error"]
        return None
    answer: dict[str, Any] = payload
    assert "internal error" not in response.text  # the catch-all for bugs never fires
    for op in decode_patch(answer):
        value = op.get("value")
        claims = [value] if op["path"].endswith("/claimName") else []
        if isinstance(value, dict) and "persistentVolumeClaim" in value:
            claims.append(value["persistentVolumeClaim"]["claimName"])
        for claim in claims:
            assert isinstance(claim, str) and len(claim) <= 253 and DNS1123_SUBDOMAIN.fullmatch(claim), claim
    return answer


@BUDGET
@given(service=hostile_text, app=hostile_text, mode=st.sampled_from(["pod", "coderun"]))
def test_hostile_values_in_a_valid_review(http: TestClient, service: str, app: str, mode: str) -> None:
    obj = job_pod(service, app) if mode == "pod" else coderun(service, app)
    answer = check(http, json.dumps(review(obj)).encode())
    assert answer is not None  # the review itself is well formed: always an AdmissionReview answer


@BUDGET
@given(
    field=st.sampled_from(
        ["labels", "volumes", "ownerReferences", "spec", "metadata", "namespace", "kind", "uid", "dryRun"]
    ),
    value=json_values,
)
def test_any_json_in_any_field(http: TestClient, field: str, value: Any) -> None:
    body = review(job_pod("cto", "5dlabs-rex", owner_job="job"))
    request, pod = body["request"], body["request"]["object"]
    if field == "labels":
        pod["metadata"]["labels"] = value
    elif field == "volumes":
        pod["spec"]["volumes"] = value
    elif field == "ownerReferences":
        pod["metadata"]["ownerReferences"] = value
    elif field in ("spec", "metadata"):
        pod[field] = value
    else:
        request[field] = value
    check(http, json.dumps(body).encode())


@BUDGET
@given(cut=st.integers(min_value=0, max_value=2000))
def test_truncated_json(http: TestClient, cut: int) -> None:
    body = json.dumps(review(job_pod("cto", "5dlabs-rex"))).encode()
    check(http, body[: cut % len(body)])


@BUDGET
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_bodies(http: TestClient, body: bytes) -> None:
    check(http, body)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting(http: TestClient, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    check(
        http,
        (
            '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"object":'
            + deep
            + "}}"
        ).encode(),
    )
    check(http, deep.encode())
