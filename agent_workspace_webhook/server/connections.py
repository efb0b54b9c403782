"""Connection-level limits under uvicorn, which has none of its own for slow or numerous clients:
a cap on open sockets, counted from accept (TLS handshakes included); a bound on the bytes that
requests not yet answered hold, in all; a deadline for each request's headers (slowloris) and a
bound on their size; and with mutual TLS the client names allowed. Each refusal is a short HTTP
answer (once TLS is up), then the connection closes.

On the TLS port the sockets are accepted by server/accept.py, which admits each through the
port's Gate before its handshake starts and hands it to the protocol here (handshake()); on a
plain port (the probes, --insecure) the protocol admits itself when the loop connects it.

At the cap a new connection is not refused while an open one is merely waiting: the one least
likely to be the API server's is dropped instead (make_room), so clients that hold connections
open, however many and however they reconnect, cannot lock the API server out. A connection
whose request has fully arrived is never dropped; only when all are such is the newcomer refused.
The byte bound works the same way (shed): the request still arriving that holds the most, on a
connection that never served one first, is dropped.

Applied by subclassing whichever uvicorn HTTP protocol is in use; only its documented hooks
(connection_made, connection_lost, data_received, on_response_complete) and its `cycle` (its
`scope` and `more_body`), `loop` and `transport` attributes are relied on.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any

from agent_workspace_webhook.server.coalesce import HeldWrites, Outbox
from agent_workspace_webhook.server.gate import Gate
from agent_workspace_webhook.server.tls import peer_names

# Set in a request's scope once its whole body has arrived (with its headers, as an API server's
# review does): the app then reads it without arming its body deadline, since it cannot wait.
BODY_RECEIVED = "agent_workspace_webhook.body_received"
# A request's headers past this are refused (431): an API server's are well under 4 KiB.
MAX_HEADER_BYTES = 64 * 1024
# How long a closing TLS connection waits for the peer's close_notify before it is aborted
# (the loop's default, 30 s, let a dropped slow client hold its descriptor that long).
TLS_SHUTDOWN_SECONDS = 2.0


def _answer(status: int, reason: str, message: str) -> bytes:
    body = message.encode() + b"\n"
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    return head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body


def guarded(base: type[Any], gate: Gate) -> type[asyncio.Protocol]:
    """`base` (a uvicorn HTTP protocol class) with the gate's limits applied to every connection,
    and its answers written through HeldWrites and an Outbox (coalesce.py)."""
    outbox = Outbox()
    limits, refused = gate.limits, gate.refused

    class Guarded(base):  # type: ignore[misc]
        # The header deadline: when the awaited request's headers must have arrived (monotonic
        # clock), None while a request is in progress. One timer per connection checks it and
        # re-arms itself while requests keep coming, rather than a timer armed and cancelled
        # for every request of a keep-alive connection.
        _deadline: float | None = None
        _timer: asyncio.TimerHandle | None = None
        _awaited: object = None  # the cycle (request) current when the deadline was set
        _handshake: asyncio.Task[Any] | None = None  # accept.py's, while TLS is being set up
        _wire: asyncio.BaseTransport | None = None  # once connected
        source = ""
        served = False
        since = 0.0
        dropped = False
        held = 0

        def waiting(self) -> bool:
            # uvicorn's cycle: None before a first request; more_body until the body has arrived.
            if self._wire is None:
                return True  # still in its TLS handshake
            cycle = self.cycle
            return cycle is None or cycle.response_complete or cycle.more_body

        def handshake(self, conn: socket.socket, context: ssl.SSLContext) -> None:
            """An accepted socket, admitted by the gate: counted from now, connected once its TLS
            handshake is over (within the header deadline), dropped like any other meanwhile."""
            self._opened(conn.getpeername())
            self._handshake = self.loop.create_task(self._secure(conn, context))

        async def _secure(self, conn: socket.socket, context: ssl.SSLContext) -> None:
            try:
                await self.loop.connect_accepted_socket(
                    lambda: self,
                    conn,
                    ssl=context,
                    ssl_handshake_timeout=limits.header_timeout,
                    ssl_shutdown_timeout=TLS_SHUTDOWN_SECONDS,
                )
            except (Exception, asyncio.CancelledError):  # too slow, not TLS, refused, or dropped: closed
                if self._wire is None:  # (the loop closed it; connection_lost is not called)
                    gate.close(self)
                    if not self.dropped:
                        refused("handshake")
            finally:
                self._handshake = None

        def _opened(self, peer: Any) -> None:
            gate.opened.add(self)
            self.source = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            self.since = time.monotonic()

        def connection_made(self, transport: asyncio.Transport) -> None:
            if self._handshake is None:  # a plain port: admitted here, as it is accepted
                if not gate.admit():
                    message = (
                        f"agent-workspace-webhook has {limits.max_connections} connections open, each with a "
                        "request in progress (WEBHOOK_MAX_CONNECTIONS); retry, or add replicas"
                    )
                    transport.write(_answer(503, "Service Unavailable", message))
                    transport.close()
                    return
                self._opened(transport.get_extra_info("peername"))
            self._wire = transport
            if limits.client_names:
                names = peer_names(transport.get_extra_info("peercert"))
                if not names & limits.client_names:
                    message = (
                        f"client certificate names {sorted(names)} are not in WEBHOOK_CLIENT_NAMES; "
                        "only the API server may call this webhook"
                    )
                    refused("client_name")
                    gate.close(self)
                    self._wire = None
                    transport.write(_answer(403, "Forbidden", message))
                    transport.close()
                    return
            super().connection_made(HeldWrites(transport, self))
            self._await_headers(self.since)

        def drop(self) -> None:
            """Dropped for a newcomer: aborted, not closed, so that its slot is free at once (a
            TLS close would wait for a peer that may never answer)."""
            self.dropped = True
            refused("dropped")
            if self._wire is not None:
                self._wire.abort()  # type: ignore[attr-defined]
            elif self._handshake is not None:
                self._handshake.cancel()

        def _refuse(self, reason: str, status: int, phrase: str, message: str) -> None:
            refused(reason)
            self.transport.write(_answer(status, phrase, message))
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._wire is None:
                return  # refused before uvicorn's protocol had it
            gate.close(self)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not gate.hold(self, len(data)):
                message = (
                    f"requests not yet answered hold more than {limits.max_pending_bytes} bytes "
                    "(WEBHOOK_MAX_PENDING_BYTES); retry"
                )
                self._refuse("pending_bytes", 503, "Service Unavailable", message)
                return
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and not cycle.more_body:
                cycle.scope[BODY_RECEIVED] = True
            if self._deadline is not None:
                if cycle is not self._awaited:
                    self._deadline = None  # a new request's headers are complete
                elif self.held > MAX_HEADER_BYTES:
                    message = f"request headers are larger than {MAX_HEADER_BYTES} bytes"
                    self._refuse("headers_too_large", 431, "Request Header Fields Too Large", message)

        def on_response_complete(self) -> None:
            outbox.send_later(self.transport, self.loop)  # head and body in one write, at the turn's end
            super().on_response_complete()
            gate.release(self)
            self.served, self.since = True, time.monotonic()
            if not self.transport.is_closing():
                self._await_headers(self.since)  # the next request on this keep-alive connection

        def _await_headers(self, now: float) -> None:
            self._deadline, self._awaited = now + limits.header_timeout, self.cycle
            if self._timer is None:
                self._timer = self.loop.call_later(limits.header_timeout, self._check)

        def _check(self) -> None:
            self._timer = None
            if self._deadline is None or self.transport.is_closing():
                return  # a request is in progress: its answer sets the next deadline
            left = self._deadline - time.monotonic()
            if left > 0:  # requests came and went since the timer was set
                self._timer = self.loop.call_later(left, self._check)
                return
            message = f"request headers not received within {limits.header_timeout}s (WEBHOOK_REQUEST_TIMEOUT_SECONDS)"
            self._refuse("slow", 408, "Request Timeout", message)

    return Guarded
