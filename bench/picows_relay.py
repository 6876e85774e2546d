"""A plain picows relay: each connection joins the room named by its URL path, and each message
is forwarded, unparsed, to the other side of its room. On uvloop, with picows's own server: what
the transport alone costs, with none of the session server's work. Run it as
``python -m bench.picows_relay --port P``."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

rooms: dict[bytes, set[WSTransport]] = {}


class Relay(WSListener):
    def __init__(self, path: bytes) -> None:
        self.path = path
        self.room: set[WSTransport] = set()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.room = rooms.setdefault(self.path, set())
        self.room.add(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.BINARY or kind is WSMsgType.TEXT:
            payload = frame.get_payload_as_memoryview()
            for peer in self.room:
                if peer is not transport:
                    peer.send(kind, payload)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.room.discard(transport)
        if not self.room:
            rooms.pop(self.path, None)


async def run(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    server = await ws_create_server(lambda request: Relay(request.path), host, port, max_frame_size=1 << 20,
                                    use_aiofastnet=False)
    await stop
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
