"""The admission's one deadline: a step it cuts off is named in the failure; a cancellation from
elsewhere (a shutdown) is left alone."""

import asyncio

import pytest

from agent_workspace_webhook.admission.context import DeadlinePassed, Target, within


def target(seconds: float) -> Target:
    return Target({}, "agents", "Pod agents/run-1", False, seconds, asyncio.get_running_loop().time() + seconds)


async def two_steps(admission: Target) -> None:
    await within(admission, "reading Namespace agents", asyncio.sleep(0))
    await within(admission, "reading PersistentVolumeClaim agents/workspace-cto-rex", asyncio.sleep(5))


def test_the_step_under_way_is_named_when_the_deadline_passes() -> None:
    async def main() -> DeadlinePassed:
        with pytest.raises(DeadlinePassed) as failure:
            await two_steps(target(0.05))
        return failure.value

    failure = asyncio.run(main())
    assert failure.code == 504 and failure.step == "reading PersistentVolumeClaim agents/workspace-cto-rex"
    assert str(failure).startswith("the Kubernetes API did not answer within 0.05s while reading PersistentVolumeClaim")


def test_a_cancellation_that_is_not_the_deadline_goes_on_up() -> None:
    async def main() -> None:
        task = asyncio.create_task(two_steps(target(10)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
