"""Which connection makes room at the cap (server/connections.make_room): never one whose
request is in progress; one that never served before one that has; the biggest source first;
then the longest waiting."""

from __future__ import annotations

from dataclasses import dataclass

from agent_workspace_webhook.server.connections import make_room


@dataclass(eq=False)
class Conn:
    source: str
    served: bool = False
    since: float = 0.0
    dropped: bool = False
    busy: bool = False

    def waiting(self) -> bool:
        return not self.busy


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
