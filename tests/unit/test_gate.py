"""Which connection gives way at a port's limits (server/gate.py). At the cap (make_room): never
one whose request is in progress; one that never served before one that has; the biggest source
first; then the longest waiting. Past the byte bound (shed, Gate.hold): a request still arriving,
one that never served first, the biggest first; the newcomer itself when nothing else can go.
And the memory of closed connections is reclaimed after a crowd has left."""

from __future__ import annotations

from dataclasses import dataclass

from agent_workspace_webhook.server.gate import RECLAIM_EVERY, ConnectionLimits, Gate, make_room, shed


@dataclass(eq=False)
class Conn:
    source: str
    served: bool = False
    since: float = 0.0
    dropped: bool = False
    busy: bool = False
    held: int = 0

    def waiting(self) -> bool:
        return not self.busy

    def drop(self) -> None:
        self.dropped = True


def test_below_the_cap_there_is_room() -> None:
    assert make_room([Conn("a"), Conn("b")], 3) is True


def test_connections_already_dropped_do_not_count() -> None:
    assert make_room([Conn("a", dropped=True), Conn("b")], 2) is True


def test_when_every_request_is_in_progress_the_newcomer_is_refused() -> None:
    assert make_room([Conn("a", busy=True), Conn("b", busy=True)], 2) is False


def test_a_trickler_that_never_served_goes_before_the_api_servers_idle_connection() -> None:
    api = Conn("10.0.0.1", served=True, since=1.0)
    trickler = Conn("10.0.0.9", since=5.0)
    assert make_room([api, trickler], 2) is trickler


def test_the_source_holding_most_connections_gives_one_up_and_its_longest_waiting() -> None:
    api = [Conn("10.0.0.1", since=0.5), Conn("10.0.0.1", since=0.6)]
    crowd = [Conn("10.0.0.9", since=t) for t in (3.0, 2.0, 4.0)]
    assert make_room([*api, *crowd], 5) is crowd[1]


def test_a_busy_connection_is_never_chosen_whatever_its_age() -> None:
    old_busy = Conn("10.0.0.9", since=0.0, busy=True)
    young = Conn("10.0.0.9", since=9.0)
    assert make_room([old_busy, young], 2) is young


def gate(cap: int = 4, pending: int = 100) -> tuple[Gate, list[str], list[int]]:
    refused: list[str] = []
    reclaims: list[int] = []
    made = Gate(ConnectionLimits(cap, 1.0, pending), refused.append, lambda: reclaims.append(1))
    return made, refused, reclaims


def test_past_the_byte_bound_the_biggest_request_still_arriving_of_a_stranger_goes() -> None:
    api = Conn("10.0.0.1", served=True, held=90)
    small, big = Conn("10.0.0.9", held=10), Conn("10.0.0.9", held=50)
    in_admission = Conn("10.0.0.9", held=500, busy=True)  # its bytes are already being used
    assert shed([api, small, big, in_admission]) is big
    assert shed([api]) is api  # a served connection goes only when no stranger holds anything
    assert shed([in_admission, Conn("x")]) is None


def test_hold_drops_others_until_the_bytes_fit_and_refuses_the_newcomer_when_they_cannot() -> None:
    made, _, _ = gate(pending=100)
    trickler = Conn("10.0.0.9")
    api = Conn("10.0.0.1", served=True)
    made.opened |= {trickler, api}
    assert made.hold(trickler, 70)
    assert made.hold(api, 50)  # 120 > 100: the trickler's request goes, the API server's stays
    assert trickler.dropped and made.pending == 50 and api.held == 50
    api.busy = True  # its request has arrived: it is being admitted, its bytes stay
    newcomer = Conn("10.0.0.2")
    made.opened.add(newcomer)
    assert not made.hold(newcomer, 60)  # nothing else can go: the newcomer is refused
    assert not api.dropped and not newcomer.dropped


def test_at_the_cap_the_gate_drops_a_waiting_connection_or_refuses_the_newcomer() -> None:
    made, refused, _ = gate(cap=2)
    first, second = Conn("a", since=1.0), Conn("b", since=2.0)
    made.opened |= {first, second}
    assert made.admit() and first.dropped and refused == []
    first.busy = second.busy = True
    first.dropped = False
    assert not made.admit() and refused == ["connections"]


def test_closed_connections_memory_is_reclaimed_when_a_crowd_leaves_and_every_so_often() -> None:
    made, _, reclaims = gate(cap=4)
    crowd = [Conn("10.0.0.9") for _ in range(4)]
    made.opened |= set(crowd)
    assert made.admit()  # the cap is reached: a crowd
    for connection in crowd[:2]:
        made.close(connection)
    assert reclaims == []  # still half the cap open
    made.close(crowd[2])
    assert reclaims == [1] and not made.crowded  # a quarter of the cap: the crowd has left
    for _ in range(RECLAIM_EVERY - made.closed % RECLAIM_EVERY):
        made.close(Conn("a"))
    assert reclaims == [1, 1]
