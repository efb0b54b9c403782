"""Structured logs: one JSON object per line, fields passed as ``extra={"fields": {...}}``."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

LOGGER = "agent_workspace_webhook"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        if not record.name.startswith(LOGGER):
            line["logger"] = record.name  # uvicorn, asyncio: say whose line it is
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # orjson: a quarter of the standard encoder's cost, on every admission's line.
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "INFO") -> None:
    """Every logger in the process writes JSON lines: ours at `level`; the libraries' (uvicorn's
    "Invalid HTTP request received.", asyncio's) through the root logger at warning and above,
    where Python would otherwise print them as bare text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger(LOGGER)
    ours.handlers.clear()
    ours.setLevel(level.upper())
    ours.propagate = True


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER)
