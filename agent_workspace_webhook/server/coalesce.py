"""An answer's head and body in one write, and the answers of one turn of the event loop sent
together at its end.

uvicorn writes a response's status line and headers, then its body, each with a transport write
of its own; on TLS each is a record to encrypt and a send() system call. Wrapped in HeldWrites,
the transport holds what a response writes until the response is complete (or closes, or holds
more than HOLD_BYTES), then writes it once. Only a started response is held: what uvicorn writes
before one (a "100 Continue" the client waits for) or without one (a 400 for a malformed
request) goes out at once.

A completed answer is not written at once either but put in the Outbox, which writes every
answer completed in this turn of the loop at the turn's end. Under load one turn reads many
requests and admits them one after another; a send() between two admissions (encrypting,
the kernel's loopback delivery) left the next admission's code and data cold in the CPU's
caches, and sending after all of them cut a fifth of a request's cost (bench/README.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

HOLD_BYTES = 1 << 16  # a streamed answer still goes out as it comes, in pieces of about this size


class _Cycle(Protocol):
    response_started: bool
    response_complete: bool


class _Served(Protocol):
    cycle: _Cycle | None  # uvicorn's request/response cycle under way, None before the first


class HeldWrites:
    """The transport uvicorn's protocol writes to. `release()` sends what is held; the protocol
    calls it when a response completes (connections.Guarded.on_response_complete)."""

    __slots__ = ("_held", "_protocol", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: _Served) -> None:
        self._transport, self._protocol = transport, protocol
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        cycle = self._protocol.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self._held.append(bytes(data))
            self._size += len(data)
            if self._size >= HOLD_BYTES:
                self.release()
            return
        self.release()  # anything held first: the bytes keep their order
        self._transport.write(data)

    def release(self) -> None:
        if self._held:
            data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
            self._held.clear()
            self._size = 0
            if not self._transport.is_closing():  # gone meanwhile: nobody to read it
                self._transport.write(data)

    def close(self) -> None:
        self.release()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    # What uvicorn calls on every request, spelled out; the rest through __getattr__.
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Outbox:
    """The answers completed in this turn of the event loop, written at its end. One per server
    (its connections share its loop)."""

    def __init__(self) -> None:
        self._ready: list[HeldWrites] = []

    def send_later(self, writes: HeldWrites, loop: asyncio.AbstractEventLoop) -> None:
        if not self._ready:
            loop.call_soon(self._send)
        self._ready.append(writes)

    def _send(self) -> None:
        ready, self._ready = self._ready, []
        for writes in ready:
            writes.release()
