"""A TCP proxy for tests that impairs a link the way a rural mobile network does: a fixed
one-way delay (latency without the chunk-by-chunk queueing of ``NetProxy``), cuts, stalls, and
outages during which connects are refused because the listening port is closed.

Each chunk is delivered ``delay_s`` after it was read, in order; a stall holds every chunk in
both directions until it ends, as a radio link that loses its carrier for a while does (the TCP
connections survive); an outage cuts every connection and closes the port until it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from tests.netproxy import TcpProxy


class ImpairedLink(TcpProxy):
    def __init__(self, target_port: int, *, delay_s: float = 0.0) -> None:
        super().__init__(target_port)
        self.delay_s = delay_s
        self.stall_until = 0.0

    async def go_down(self) -> None:
        """An outage begins: every connection is cut and connects are refused."""
        await self._unlisten()
        self.cut()

    async def come_back(self) -> None:
        """The outage ends: the port listens again."""
        await self._listen()

    def stall(self, seconds: float) -> None:
        """Hold every byte in both directions for ``seconds``; connections stay open."""
        self.stall_until = max(self.stall_until, time.monotonic() + seconds)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: set[asyncio.StreamWriter], open_ways: list[int]) -> None:
        queue: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()
        done = False

        async def deliver() -> None:
            while not done or queue:
                if not queue:
                    arrived.clear()
                    await arrived.wait()
                    continue
                due, chunk = queue[0]
                wait = max(due, self.stall_until) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the link's delay: this is the network, not a wait for an event
                    continue
                queue.popleft()
                dst.write(chunk)
                await dst.drain()

        sender = asyncio.create_task(deliver())
        clean = False
        try:
            while chunk := await src.read(65536):
                queue.append((time.monotonic() + self.delay_s, chunk))
                arrived.set()
            done = True
            arrived.set()
            await sender
            if dst.can_write_eof():
                dst.write_eof()  # a FIN passes through like the data before it
            clean = True
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            open_ways[0] -= 1
            if not clean or open_ways[0] == 0:
                self._drop(pair)
