"""Kubernetes I/O, behind the small WorkspaceStore interface: the only package that imports the
Kubernetes client. `store` holds the interface and the messages, `client` the real store over the
API (with `watch_cache` keeping the workspace PVCs and the namespaces by list + watch), `memory`
its in-memory twin, `factory` the one the settings name, `connect` the API client from a
kubeconfig, `listings` the operator report's lists."""
