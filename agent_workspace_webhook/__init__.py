"""agent-workspace-webhook: a workspace PVC of its own for every agent of a service."""
