"""The one dev cluster the e2e and store tests share (testing.Environment, living: scheduler,
controller manager, three simulated nodes, a CSI provisioner), with the install of manifests/
applied and the default webhook registered; started on first use, so unit and API tests never
pay for it. Other fixtures live beside the tests that use them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_workspace_webhook.testing import Environment


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    with Environment(living=True, workdir=tmp_path_factory.mktemp("cluster")) as env:
        env.serve()
        yield env


@pytest.fixture
def namespace(cluster: Environment) -> Iterator[str]:
    """A fresh namespace in the webhook's scope for one test, deleted after it."""
    name = cluster.namespace()
    yield name
    cluster.delete_namespace(name)


@pytest.fixture
def platform(cluster: Environment) -> Iterator[str]:
    """A fresh namespace in the webhook's scope where the platform runs: the twin of its
    controller (testing/twin) reconciles the CodeRuns made there, deleted after the test."""
    name = cluster.namespace(platform=True)
    yield name
    cluster.delete_namespace(name)
