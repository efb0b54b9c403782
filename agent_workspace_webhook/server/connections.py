"""Connection-level limits under uvicorn, which has none of its own for slow or numerous clients:
a cap on open connections, a deadline for each request's headers (slowloris), and with mutual
TLS the client names allowed. Each refusal is a short HTTP answer, then the connection closes.

At the cap a new connection is not refused while an open one is merely waiting: the one least
likely to be the API server's is dropped instead (make_room), so clients that hold connections
open, however many and however they reconnect, cannot lock the API server out. A connection
whose request has fully arrived is never dropped; only when all are such is the newcomer refused.

Applied by subclassing whichever uvicorn HTTP protocol is in use; only its documented hooks
(connection_made, connection_lost, data_received, on_response_complete) and its `cycle` (its
`scope` and `more_body`) and `server_state` attributes are relied on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from agent_workspace_webhook.server.coalesce import HeldWrites, Outbox
from agent_workspace_webhook.server.tls import peer_names

# reason ("connections", "dropped", "slow", "client_name") -> None: counts them in the metrics
Refused = Callable[[str], None]
# Set in a request's scope once its whole body has arrived (with its headers, as an API server's
# review does): the app then reads it without arming its body deadline, since it cannot wait.
BODY_RECEIVED = "agent_workspace_webhook.body_received"


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float
    client_names: frozenset[str] = frozenset()


def _answer(status: int, reason: str, message: str) -> bytes:
    body = message.encode() + b"\n"
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    return head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body


class Waiting(Protocol):
    """What make_room weighs of an open connection."""

    source: str  # the peer's address
    served: bool  # has answered a request: an attacker's trickle never has, the API server's has
    since: float  # when it began waiting for its current request (connected, or last answered)
    dropped: bool  # dropped to make room, not yet gone

    def waiting(self) -> bool:
        """No request of its has fully arrived and waits for (or is being sent) its answer."""
        ...


def make_room(connections: Collection[Waiting], cap: int) -> Waiting | bool:
    """At the cap, the open connection to drop for a new one, or False when every connection
    has a request in progress (the newcomer is refused); True when below the cap. The choice: one
    that never served a request before one that has, then one from the source holding the most
    connections (the API server comes from few addresses), then the one waiting longest."""
    if len(connections) < cap:  # the usual case, without a pass over them
        return True
    live = [c for c in connections if not c.dropped]
    if len(live) < cap:
        return True
    per_source = Counter(c.source for c in live)
    waiting = [c for c in live if c.waiting()]
    if not waiting:
        return False
    return min(waiting, key=lambda c: (c.served, -per_source[c.source], c.since))


def guarded(base: type[Any], limits: ConnectionLimits, refused: Refused) -> type[asyncio.Protocol]:
    """`base` (a uvicorn HTTP protocol class) with the limits applied to every connection, and
    its answers written through HeldWrites and an Outbox (coalesce.py)."""
    outbox = Outbox()

    class Guarded(base):  # type: ignore[misc]
        # The header deadline: when the awaited request's headers must have arrived (monotonic
        # clock), None while a request is in progress. One timer per connection checks it and
        # re-arms itself while requests keep coming, rather than a timer armed and cancelled
        # for every request of a keep-alive connection.
        _deadline: float | None = None
        _timer: asyncio.TimerHandle | None = None
        _awaited: object = None  # the cycle (request) current when the deadline was set
        _refused = False
        source = ""
        served = False
        since = 0.0
        dropped = False

        def waiting(self) -> bool:
            # uvicorn's cycle: None before a first request; more_body until the body has arrived.
            cycle = self.cycle
            return cycle is None or cycle.response_complete or cycle.more_body

        def connection_made(self, transport: asyncio.Transport) -> None:
            if limits.client_names:  # before making room: a refused caller must not cost anyone theirs
                names = peer_names(transport.get_extra_info("peercert"))
                if not names & limits.client_names:
                    message = (
                        f"client certificate names {sorted(names)} are not in WEBHOOK_CLIENT_NAMES; "
                        "only the API server may call this webhook"
                    )
                    return self._refuse(transport, "client_name", _answer(403, "Forbidden", message))
            room = make_room(self.server_state.connections, limits.max_connections)
            if room is False:
                message = (
                    f"agent-workspace-webhook has {limits.max_connections} connections open, each with a "
                    "request in progress (WEBHOOK_MAX_CONNECTIONS); retry, or add replicas"
                )
                return self._refuse(transport, "connections", _answer(503, "Service Unavailable", message))
            if isinstance(room, Guarded):
                room._drop()
            peer = transport.get_extra_info("peername")
            self.source = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            self.since = time.monotonic()
            super().connection_made(HeldWrites(transport, self))
            self._await_headers(self.since)
            return None

        def _drop(self) -> None:
            """Dropped for a newcomer: aborted, not closed, so that its slot is free at once (a
            TLS close would wait for a peer that may never answer)."""
            self.dropped = True
            refused("dropped")
            self.transport.abort()

        def _refuse(self, transport: asyncio.Transport, reason: str, answer: bytes) -> None:
            self._refused = True
            refused(reason)
            transport.write(answer)
            transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and not cycle.more_body:
                cycle.scope[BODY_RECEIVED] = True
            if self._deadline is not None and cycle is not self._awaited:
                self._deadline = None  # a new request's headers are complete

        def on_response_complete(self) -> None:
            outbox.send_later(self.transport, self.loop)  # head and body in one write, at the turn's end
            super().on_response_complete()
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
            refused("slow")
            message = f"request headers not received within {limits.header_timeout}s (WEBHOOK_REQUEST_TIMEOUT_SECONDS)"
            self.transport.write(_answer(408, "Request Timeout", message))
            self.transport.close()

    return Guarded
