"""Clients that hold a webhook's connections as an attacker in the cluster would (issue 23): each
opens a TLS connection to `--host` from `--source`, trickles a request header a byte every
`--every` seconds, and reconnects as soon as it is dropped. A process of its own, so that its
handshakes do not share the test's interpreter; it stops by itself after `--seconds` and prints
one JSON line: {"connects": N, "refused": N} (refused: connects that failed).

    python -m tests.e2e.trickle PORT CA_FILE --clients 200 --seconds 20 --source 127.0.0.2
    python -m tests.e2e.trickle 8443 ca.crt --host 10.88.0.5 --server-name NAME.NAMESPACE.svc --source ""
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl

HEADER = b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def trickle(args: argparse.Namespace, context: ssl.SSLContext, end: float, counts: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    source = (args.source, 0) if args.source else None
    every = args.every
    while loop.time() < end:
        try:
            connecting = asyncio.open_connection(
                args.host, args.port, ssl=context, local_addr=source, server_hostname=args.server_name or args.host
            )
            reader, writer = await asyncio.wait_for(connecting, timeout=5)
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
    clients = [trickle(args, context, end, counts) for _ in range(args.clients)]
    await asyncio.gather(*clients)
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("ca_file")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--source", default="127.0.0.2", help='address to connect from ("": any)')
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--server-name", default="", help="the name the certificate must have (default: --host)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
