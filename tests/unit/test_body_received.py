"""The connection guard marks a request whose whole body has arrived, so that /mutate reads it
without arming its body deadline; a body still on its way is not marked (the deadline holds)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from agent_workspace_webhook.server.connections import BODY_RECEIVED, guarded
from agent_workspace_webhook.server.gate import ConnectionLimits, Gate


class FakeProtocol(asyncio.Protocol):
    """What the guard relies on of uvicorn's protocol: data_received feeds `cycle`."""

    def __init__(self) -> None:
        self.cycle: Any = None

    def data_received(self, data: bytes) -> None:
        if self.cycle is None:
            self.cycle = SimpleNamespace(scope={}, more_body=True)
        if data.endswith(b"\r\n\r\n"):  # the fake's end of a request
            self.cycle.more_body = False


def test_only_a_complete_body_is_marked() -> None:
    protocol: Any = guarded(FakeProtocol, Gate(ConnectionLimits(10, 1.0, 1 << 20), lambda _: None))()
    protocol.data_received(b"POST /mutate HTTP/1.1\r\ncontent-length: 10\r\n\r\n12345")
    assert BODY_RECEIVED not in protocol.cycle.scope
    protocol.data_received(b"6789\r\n\r\n")
    assert protocol.cycle.scope[BODY_RECEIVED] is True
