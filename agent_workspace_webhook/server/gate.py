"""The limits one listening port puts on its connections, and the state its connections share
to keep them: every socket open (from accept, TLS handshakes included) and the bytes their
requests hold. Which connection gives way at a limit is decided by two pure functions,
make_room (the connection cap) and shed (the byte bound); the protocol that applies them to
uvicorn's connections is in connections.py, the accept loop of the TLS port in accept.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

# reason ("connections", "dropped", "slow", "client_name", "handshake", "headers_too_large",
# "pending_bytes") -> None: counts them in the metrics
Refused = Callable[[str], None]


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float  # also the TLS handshake's
    max_pending_bytes: int  # received, in all, by requests not yet answered
    client_names: frozenset[str] = frozenset()


class Waiting(Protocol):
    """What make_room and shed weigh of an open connection."""

    source: str  # the peer's address
    served: bool  # has answered a request: an attacker's trickle never has, the API server's has
    since: float  # when it began waiting for its current request (accepted, or last answered)
    dropped: bool  # dropped to make room, not yet gone
    held: int  # bytes of its current request received so far

    def waiting(self) -> bool:
        """No request of its has fully arrived and waits for (or is being sent) its answer."""
        ...

    def drop(self) -> None:
        """Close it at once, owing no answer."""
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


def shed(connections: Collection[Waiting]) -> Waiting | None:
    """Past the byte bound, the connection to drop: of those whose request is still arriving,
    one that never served before one that has, then the one holding the most bytes; None when
    no request is still arriving (the bytes are held by admissions in progress)."""
    arriving = [c for c in connections if not c.dropped and c.held and c.waiting()]
    return max(arriving, key=lambda c: (not c.served, c.held), default=None)


# Closed connections between two reclaims of their memory (server/reclaim.py): an API server
# keeps its connections open, so it takes a flood, or a churn of clients, to reach it.
RECLAIM_EVERY = 500


class Gate:
    """What the connections of one port share: its limits, every socket open on it (from accept
    until closed, TLS handshakes included), and the bytes their requests hold. `reclaim` frees
    what closed connections left behind: run every RECLAIM_EVERY closed connections, and when
    connections fall to a quarter of the cap after reaching it (a flood is over)."""

    def __init__(self, limits: ConnectionLimits, refused: Refused, reclaim: Callable[[], None] = lambda: None) -> None:
        self.limits, self.refused, self._reclaim = limits, refused, reclaim
        self.opened: set[Waiting] = set()
        self.pending = 0
        self.closed = 0
        self.crowded = False  # the cap was reached since the last reclaim

    def admit(self) -> bool:
        """Room for a newly accepted socket: True, once a waiting connection is dropped if the cap
        is reached; False (refused, and counted) when every open one has a request in progress."""
        room = make_room(self.opened, self.limits.max_connections)
        if room is not True:
            self.crowded = True
        if room is False:
            self.refused("connections")
            return False
        if room is not True:
            room.drop()
        return True

    def hold(self, connection: Waiting, size: int) -> bool:
        """`size` more bytes for `connection`'s request: False when they do not fit even after
        dropping the requests still arriving that hold the most (then `connection` is refused)."""
        connection.held += size
        self.pending += size
        while self.pending > self.limits.max_pending_bytes:
            victim = shed(self.opened)
            if victim is None or victim is connection:
                return False
            victim.drop()
            self.release(victim)  # thrown away with its connection
        return True

    def close(self, connection: Waiting) -> None:
        """`connection` is gone (closed, or its handshake failed)."""
        self.opened.discard(connection)
        self.release(connection)
        self.closed += 1
        quiet = self.crowded and len(self.opened) <= self.limits.max_connections // 4
        if quiet or self.closed % RECLAIM_EVERY == 0:
            self.crowded = False
            self._reclaim()

    def release(self, connection: Waiting) -> None:
        """`connection`'s request is answered or gone: its bytes are free."""
        self.pending -= connection.held
        connection.held = 0
