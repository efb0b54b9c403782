"""`workspaces restore --generation N` clones only a generation the webhook made: the PVC the
platform's controller re-makes under the generation-1 name after deleting it for a fresh run is
empty, not generation 1's content, and is refused, naming the way to the real one."""

from __future__ import annotations

from typing import Any

import pytest

from agent_workspace_webhook.ops.history import histories
from agent_workspace_webhook.ops.lifecycle import PlanError, restore_plan
from agent_workspace_webhook.rules.generations import generation_name
from agent_workspace_webhook.rules.pvc import PvcSpec
from agent_workspace_webhook.testing.objects import stored_pvc

GEN1 = "workspace-cto-cleo"
GEN2 = generation_name(GEN1, 2)
SPEC = PvcSpec("10Gi", ("ReadWriteOnce",), "workspaces-retain")


OURS = {"app.kubernetes.io/managed-by": "agent-workspace-webhook", "agents.platform/generation-of": GEN1}
PLACEHOLDER = stored_pvc(
    GEN1, labels={"app": "orchestrator", "component": "code-runner", "service": "cto", "agent": "cleo"}
)
SECOND = stored_pvc(GEN2, labels={**OURS, "agents.platform/generation": "2"})


def plan(*pvcs: dict[str, Any], generation: int) -> Any:
    copies = histories(pvcs)[("agents", GEN1)]
    by_name = {p["metadata"]["name"]: p for p in pvcs}
    return restore_plan("agents", GEN1, "cto", "cleo", copies, by_name, SPEC, generation=generation)


def test_the_controllers_re_made_generation_1_is_not_restored() -> None:
    with pytest.raises(PlanError) as refused:
        plan(PLACEHOLDER, SECOND, generation=1)
    assert "was not made by the webhook" in str(refused.value) and "--released PV" in str(refused.value)


def test_a_generation_the_webhook_made_is_cloned() -> None:
    restore = plan(PLACEHOLDER, SECOND, generation=2)
    assert restore.manifest["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": GEN2}
    adopted = stored_pvc(
        GEN1, labels={**OURS, "agents.platform/generation": "1"}
    )  # the webhook's (adopted) generation 1
    assert plan(adopted, SECOND, generation=1).manifest["spec"]["dataSource"]["name"] == GEN1
