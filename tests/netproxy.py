"""TCP proxies for tests that make a bad network.

``TcpProxy`` is the part every proxy shares: it listens on a free loopback port, connects each
accepted connection to the target, keeps the pairs so that ``cut()`` can kill them all at once
(mid-frame if it falls there, as a lost mobile link does), and leaves how bytes travel to a
subclass's ``_pump``. ``NetProxy`` delays each chunk by a latency plus random jitter;
``tests.impair.ImpairedLink`` adds a fixed one-way delay, stalls and outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Self


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Self:
        await self._listen()
        return self

    async def stop(self) -> None:
        self.cut()
        await self._unlisten()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def cut(self) -> None:
        """Kill every open connection at once, mid-frame wherever it falls."""
        self.cuts += 1
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _listen(self) -> None:
        """Listen on ``port`` (a free one the first time; the same one again after an outage)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self._links |= pair
        open_ways = [2]  # directions of this connection still forwarding
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, pair, open_ways))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _drop(self, pair: set[asyncio.StreamWriter]) -> None:
        """End both sides of one connection."""
        for w in pair:
            w.transport.abort()
        self._links -= pair

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: set[asyncio.StreamWriter], open_ways: list[int]) -> None:
        """Carry one direction of one connection from ``src`` to ``dst``."""
        raise NotImplementedError


class NetProxy(TcpProxy):
    """Each chunk is delayed by ``delay_s`` plus up to ``jitter_s`` (seeded), in order."""

    def __init__(self, target_port: int, *, delay_s: float = 0.0, jitter_s: float = 0.0, seed: int = 0) -> None:
        super().__init__(target_port)
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: set[asyncio.StreamWriter], open_ways: list[int]) -> None:
        # one task per direction keeps bytes in order while each chunk is delayed
        try:
            while chunk := await src.read(65536):
                if self.delay_s or self.jitter_s:
                    await asyncio.sleep(self.delay_s + self.rng.uniform(0, self.jitter_s))
                dst.write(chunk)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._drop(pair)
