"""The baseline: a plain ``websockets`` relay. Each connection joins the room named by its URL
path, and each message is forwarded, unparsed, to the other side of its room.

It runs on uvloop, as the session server does under uvicorn, so the comparison is of the two
servers' own work and not of their event loops. Run it as ``python -m bench.baseline_relay --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

rooms: dict[str, set[ServerConnection]] = {}


async def relay(ws: ServerConnection) -> None:
    assert ws.request is not None
    path = ws.request.path
    room = rooms.setdefault(path, set())
    room.add(ws)
    try:
        async for message in ws:
            for peer in room:
                if peer is not ws:
                    with contextlib.suppress(ConnectionClosed):
                        await peer.send(message)
    except ConnectionClosed:
        pass
    finally:
        room.discard(ws)
        if not room:
            rooms.pop(path, None)


async def run(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    async with serve(relay, host, port, compression=None, max_size=1 << 20):
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
