"""The audio baseline: a small aiortc server that relays one speaker's track to every listener with
aiortc's ``MediaRelay``, as aiortc's examples do: the speaker's Opus is decoded once (aiortc's
jitter buffer and decoder) and each listener's sender re-encodes it (one Opus encode per leg per
20 ms, in aiortc's executor threads).

Signalling is one WebSocket per peer (``websockets``): the client sends its offer's SDP as one
binary message and gets the answer's SDP back the same way (with the server's candidates; no
trickle); closing the WebSocket closes the peer. ``/speaker`` must come first; every
``/listener`` gets a ``MediaRelay`` subscription to the speaker's track. ICE gathers on 127.0.0.1
only. On uvloop, as the session server runs under uvicorn. Run it as
``python -m bench.audio_baseline --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import uvloop
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .audio_peers import loopback_peer, restrict_to_loopback


class Relay:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.source: MediaStreamTrack | None = None
        self.peers: set[RTCPeerConnection] = set()

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        role = ws.request.path
        pc = loopback_peer()
        self.peers.add(pc)
        try:
            offer = await ws.recv()
            sdp = offer.decode() if isinstance(offer, bytes) else offer
            if role == "/speaker":
                pc.on("track", self._on_track)
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            elif role == "/listener":
                if self.source is None:
                    raise RuntimeError("a listener came before the speaker")
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                pc.addTrack(self.relay.subscribe(self.source))
            else:
                return
            restrict_to_loopback(pc)
            await pc.setLocalDescription(await pc.createAnswer())
            await ws.send(pc.localDescription.sdp.encode())
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            self.peers.discard(pc)
            await pc.close()
            if role == "/speaker":
                self.source = None
                self.relay = MediaRelay()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.source = track


async def run(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    relay = Relay()
    async with serve(relay.handle, host, port, compression=None, max_size=1 << 20):
        await stop
    for pc in list(relay.peers):
        with contextlib.suppress(Exception):
            await pc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
