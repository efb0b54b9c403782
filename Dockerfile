# syntax=docker/dockerfile:1
# Build stage: the package built as a wheel and installed, with the pinned dependencies, into a
# virtual environment that has no pip, no setuptools and no developer tooling.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# pip for this stage only, in a throw-away environment from the interpreter's own ensurepip: a
# base without pip (Debian's python3 + python3-venv, as the node tier builds it) works too, and
# the final stage has no pip to inherit.
RUN python -m venv /opt/pip
ENV PATH=/opt/pip/bin:$PATH
RUN python -m venv --without-pip /opt/venv
COPY requirements.lock /src/requirements.lock
RUN python -m pip --python /opt/venv/bin/python install --no-deps -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY agent_workspace_webhook /src/agent_workspace_webhook
COPY manifests /src/manifests
RUN python -m pip wheel --no-deps --wheel-dir /wheels /src
RUN python -m pip --python /opt/venv/bin/python install --no-deps --no-index --find-links /wheels agent-workspace-webhook
# The dev cluster and the demo (agent_workspace_webhook.testing) have no use in a cluster.
RUN rm -r /opt/venv/lib/python3.11/site-packages/agent_workspace_webhook/testing
# The Kubernetes client's asyncio twin, which nothing imports: 68 MB of the image's 320.
RUN rm -r /opt/venv/lib/python3.11/site-packages/kubernetes/aio

# Final stage: the same slim Python and the virtual environment, nothing else.
FROM python:3.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["agent-workspace-webhook", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8443", "--cert-file", "/tls/tls.crt", "--key-file", "/tls/tls.key"]
