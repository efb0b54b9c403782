"""Structured logs: one JSON object per line, fields passed as ``extra={"fields": {...}}``, or
through event() on the hot path."""

from __future__ import annotations

import asyncio
import atexit
import io
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, TextIO

import orjson

LOGGER = "agent_workspace_webhook"


class _Sink:
    """Where event() writes, once configure() has run: stderr's bytes, beside the handler's text."""

    stream: BinaryIO | None = None
    flush_pending = False
    second = -1  # the second whose formatted timestamp is in prefix
    prefix = ""

    def flush(self) -> None:
        self.flush_pending = False
        if self.stream is not None:
            self.stream.flush()


_SINK = _Sink()
_OURS = logging.getLogger(LOGGER)  # loggers live as long as the process: look it up once
_LEVELS = {logging.INFO: "info", logging.WARNING: "warning"}  # the levels event() is called with


def _timestamp(created: float) -> str:
    second = int(created)
    if second != _SINK.second:  # strftime once a second, not once a line
        _SINK.second, _SINK.prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{_SINK.prefix}.{int(created * 1000) % 1000:03d}Z"


def _line(created: float, level: str, event: str, fields: Mapping[str, Any]) -> bytes:
    """One log line's JSON (orjson: a quarter of the standard encoder's cost)."""
    return orjson.dumps({"ts": _timestamp(created), "level": level, "event": event, **fields}, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler's lines (all but event()'s) go out after event()'s lines still held."""

    def emit(self, record: logging.LogRecord) -> None:
        _SINK.flush()
        super().emit(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {}
        if not record.name.startswith(LOGGER):
            fields["logger"] = record.name  # uvicorn, asyncio: say whose line it is
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            fields.update(extra)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return _line(record.created, record.levelname.lower(), record.getMessage(), fields).decode()


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Every logger in the process writes JSON lines: ours at `level`; the libraries' (uvicorn's
    "Invalid HTTP request received.", asyncio's) through the root logger at warning and above,
    where Python would otherwise print them as bare text."""
    stream = stream or sys.stderr
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter())
    _SINK.stream = _buffered(stream)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger(LOGGER)
    ours.handlers.clear()
    ours.setLevel(level.upper())
    ours.propagate = True


def _buffered(stream: TextIO) -> BinaryIO:
    """event()'s own buffer on the stream's descriptor: with PYTHONUNBUFFERED (as the image
    sets), stderr's bytes are unbuffered and every line would be a system call of its own."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return stream.buffer  # no descriptor (a test's stream): its own buffer
    sink = io.BufferedWriter(io.FileIO(fd, "wb", closefd=False), buffer_size=1 << 16)
    atexit.register(sink.flush)  # lines of the last turn of the loop
    return sink


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER)


def event(level: int, name: str, fields: Mapping[str, Any]) -> None:
    """One line, as `logger().log(level, name, extra={"fields": fields})` would write it, for the
    line every admission writes: once configure() has set up stderr, without building a LogRecord
    (with the handler's lock and the caller lookup, that was most of the line's cost)."""
    ours = _OURS
    if not ours.isEnabledFor(level):
        return
    stream = _SINK.stream
    if stream is None:  # not configured (tests, a library user): through logging as usual
        ours.log(level, name, extra={"fields": dict(fields)})
        return
    stream.write(_line(time.time(), _LEVELS.get(level) or logging.getLevelName(level).lower(), name, fields) + b"\n")
    if _SINK.flush_pending:
        return
    # Under load many admissions end in one turn of the event loop: their lines go out in one
    # write at the end of it (a syscall per line was a tenth of an admission's cost).
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        stream.flush()
        return
    _SINK.flush_pending = True
    loop.call_soon(_SINK.flush)
