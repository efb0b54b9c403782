"""The operator's commands beyond `serve`: `certs` (a CA, a serving certificate and an install
overlay), `workspaces` (a report of the workspace PVCs), and the manifests shipped with the package."""
