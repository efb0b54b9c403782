"""The TLS port's accept loop: each socket is admitted through the port's Gate as it is accepted,
before its TLS handshake starts, then handed to the connection's protocol (connections.py).

The event loop's own TLS server makes each connection's TLS state (uvloop: a 256 KiB read
buffer) at accept and tells the application nothing until the handshake is over, so sockets in
a handshake could be neither counted nor dropped: a flood of them held 800 descriptors and over
300 MiB with a cap of 200. uvicorn creates its server with `loop.create_server(..., ssl=...)`;
the loop `serve` runs on (gated_loop) answers that call with this server instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any

from agent_workspace_webhook import logs
from agent_workspace_webhook.server.gate import Gate

# After accept() fails (out of descriptors, say), wait this long before trying again.
ACCEPT_RETRY_SECONDS = 0.1


class GatedServer(asyncio.AbstractServer):
    """What uvicorn gets back from create_server for the TLS port (close and wait_closed are
    what it uses)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], Any],
        context: ssl.SSLContext,
        gate: Gate,
    ) -> None:
        self._loop, self._sock, self._factory, self._context, self._gate = loop, sock, factory, context, gate
        sock.setblocking(False)
        self._accepting: asyncio.Task[None] | None = loop.create_task(self._accept())

    async def _accept(self) -> None:
        while True:
            try:
                conn, _ = await self._loop.sock_accept(self._sock)
            except OSError as exc:
                logs.logger().warning("cannot accept a connection", extra={"fields": {"error": str(exc)}})
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            if not self._gate.admit():
                conn.close()  # no TLS yet to answer through, and none will be started
                continue
            self._factory().handshake(conn, self._context)

    def close(self) -> None:
        """Stop accepting, and end the handshakes in progress (they would become connections
        after uvicorn has asked its connections to close)."""
        if self._accepting is not None:
            self._accepting.cancel()
        for connection in list(self._gate.opened):
            if connection.waiting() and getattr(connection, "_handshake", None) is not None:
                connection.drop()

    async def wait_closed(self) -> None:
        if self._accepting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
            self._accepting = None

    async def start_serving(self) -> None:
        """Serving already: it starts accepting when made."""

    async def serve_forever(self) -> None:
        await self.wait_closed()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._accepting is not None and not self._accepting.done()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)


def gated_loop(gate: Gate) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop (libuv: the fastest loop for uvicorn, measured in bench/README.md),
    whose TLS servers accept through `gate` (GatedServer)."""
    import uvloop

    class Loop(uvloop.Loop):
        async def create_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> asyncio.AbstractServer:  # type: ignore[override]
            context = kwargs.get("ssl")
            if context is None or "sock" not in kwargs:
                return await super().create_server(protocol_factory, *args, **kwargs)
            return GatedServer(self, kwargs["sock"], protocol_factory, context, gate)

    return Loop
