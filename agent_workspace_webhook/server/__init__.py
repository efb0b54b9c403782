"""The HTTP/TLS side: the ASGI app (`app`), how it is served (`serve`), the reloading serving
certificate (`tls`) and the Prometheus metrics (`metrics`). Imports no developer tooling."""
