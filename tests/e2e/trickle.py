"""Clients that hold a webhook's connections as an attacker in the cluster would (issue 23): each
opens a TLS connection from `--source`, trickles a request header a byte every `--every`
seconds, and reconnects as soon as it is dropped. A process of its own, so that its handshakes
do not share the test's interpreter; it stops by itself after `--seconds` and prints one JSON
line: {"connects": N, "refused": N} (refused: connects that failed).

    python -m tests.e2e.trickle PORT CA_FILE --clients 200 --seconds 20 --source 127.0.0.2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl

HEADER = b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def trickle(
    port: int, context: ssl.SSLContext, source: str, every: float, end: float, counts: dict[str, int]
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=context, local_addr=(source, 0)), timeout=5
            )
        except (OSError, TimeoutError, ssl.SSLError):
            counts["refused"] += 1
            await asyncio.sleep(0.05)
            continue
        counts["connects"] += 1
        try:
            writer.write(HEADER)
            while loop.time() < end:
                try:
                    await asyncio.wait_for(reader.read(4096), timeout=every)
                except TimeoutError:  # still held open: one more byte
                    writer.write(b"x")
                    await writer.drain()
                    continue
                break  # answered or closed: dropped, so reconnect at once
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def main(args: argparse.Namespace) -> dict[str, int]:
    context = ssl.create_default_context(cafile=args.ca_file)
    counts = {"connects": 0, "refused": 0}
    end = asyncio.get_running_loop().time() + args.seconds
    clients = [trickle(args.port, context, args.source, args.every, end, counts) for _ in range(args.clients)]
    await asyncio.gather(*clients)
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("ca_file")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--source", default="127.0.0.2")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
