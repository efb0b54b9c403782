"""Kubernetes I/O, behind the small WorkspaceStore interface: the only package that imports the
Kubernetes client. `store` holds the interface and the messages, `client` the real store over the
API (with `pvc_cache` keeping existing PVC names by list + watch), `memory` its in-memory twin."""
