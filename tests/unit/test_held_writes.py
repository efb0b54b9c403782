"""HeldWrites (server/coalesce.py): a response's head and body reach the transport as one write,
in order; what uvicorn writes outside a response goes at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from agent_workspace_webhook.server.coalesce import HOLD_BYTES, HeldWrites, Outbox


@dataclass
class Transport:
    writes: list[bytes] = field(default_factory=list)
    closed: bool = False
    aborted: bool = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 7


@dataclass
class Cycle:
    response_started: bool = False
    response_complete: bool = False


@dataclass
class Served:
    cycle: Any = None


def held() -> tuple[HeldWrites, Transport, Served]:
    transport, protocol = Transport(), Served()
    return HeldWrites(transport, protocol), transport, protocol  # type: ignore[arg-type]


def test_an_answer_head_and_body_go_out_in_one_write_when_the_response_completes() -> None:
    writes, transport, protocol = held()
    protocol.cycle = Cycle(response_started=True)
    writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writes.write(b"{}")
    assert transport.writes == []
    protocol.cycle.response_complete = True
    writes.release()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    writes.release()  # nothing more held
    assert len(transport.writes) == 1


def test_what_is_written_outside_a_response_goes_at_once() -> None:
    writes, transport, protocol = held()
    writes.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # before any request (uvicorn's 400)
    protocol.cycle = Cycle()
    writes.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before its body
    assert transport.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_closing_sends_what_is_held_first_and_aborting_drops_it() -> None:
    writes, transport, protocol = held()
    protocol.cycle = Cycle(response_started=True)
    writes.write(b"head")
    writes.write(b"body")
    writes.close()  # uvicorn closes a connection: close before its response completes
    assert transport.writes == [b"headbody"] and transport.closed
    writes, transport, protocol = held()
    protocol.cycle = Cycle(response_started=True)
    writes.write(b"head")
    writes.abort()
    assert transport.writes == [] and transport.aborted


def test_a_long_response_goes_out_in_pieces_and_in_order() -> None:
    writes, transport, protocol = held()
    protocol.cycle = Cycle(response_started=True)
    chunk = b"x" * (HOLD_BYTES // 2)
    for _ in range(4):
        writes.write(chunk)
    assert transport.writes == [chunk * 2, chunk * 2]
    writes.write(b"tail")
    protocol.cycle.response_complete = True
    writes.write(b"after")  # past the response: what was held goes first
    assert transport.writes[2:] == [b"tail", b"after"]


def test_the_rest_of_the_transport_is_the_transport() -> None:
    writes, transport, _ = held()
    assert writes.get_write_buffer_size() == 7
    assert not writes.is_closing()
    transport.closed = True
    assert writes.is_closing()


def test_the_outbox_writes_the_answers_of_a_turn_of_the_loop_at_its_end() -> None:
    first, second = held(), held()
    outbox = Outbox()

    async def turn() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        for writes, _, protocol in (first, second):
            protocol.cycle = Cycle(response_started=True)
            writes.write(b"head+")
            writes.write(b"body")
            protocol.cycle.response_complete = True
            outbox.send_later(writes, loop)
        during = [first[1].writes[:], second[1].writes[:]]
        await asyncio.sleep(0)
        return during

    assert asyncio.run(turn()) == [[], []]  # nothing sent while the turn's admissions run
    assert first[1].writes == second[1].writes == [b"head+body"]


def test_an_answer_whose_connection_closed_meanwhile_is_dropped() -> None:
    writes, transport, protocol = held()
    protocol.cycle = Cycle(response_started=True)
    writes.write(b"answer")
    transport.aborted = True  # the client went away before the turn's end
    writes.release()
    assert transport.writes == []
