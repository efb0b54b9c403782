# syntax=docker/dockerfile:1
# Build stage: a virtual environment with the pinned dependencies and the package.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.lock /src/requirements.lock
RUN /opt/venv/bin/pip install --no-deps -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY webhook /src/webhook
RUN /opt/venv/bin/pip install --no-deps /src

# Final stage: the same slim Python, the virtual environment, nothing else (no compilers, no pip cache).
FROM python:3.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["agent-workspace-webhook", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8443", "--cert-file", "/tls/tls.crt", "--key-file", "/tls/tls.key"]
