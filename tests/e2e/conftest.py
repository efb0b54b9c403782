"""The living control plane with the webhook registered (tests/cluster.py), for these tests only."""

from tests.cluster import cluster, namespace

__all__ = ["cluster", "namespace"]
