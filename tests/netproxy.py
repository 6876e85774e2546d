"""A TCP proxy for tests that makes a bad network: latency, jitter, and cut connections."""

from __future__ import annotations

import asyncio
import contextlib
import random


class NetProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``. ``cut()`` kills every open connection at
    once, mid-frame if it falls there, as a lost mobile link does."""

    def __init__(self, target_port: int, *, delay_s: float = 0.0, jitter_s: float = 0.0, seed: int = 0) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> NetProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def cut(self) -> None:
        self.cuts += 1
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, {writer, up_writer}))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: set[asyncio.StreamWriter]) -> None:
        # one queue per direction keeps bytes in order while each chunk is delayed
        try:
            while chunk := await src.read(65536):
                if self.delay_s or self.jitter_s:
                    await asyncio.sleep(self.delay_s + self.rng.uniform(0, self.jitter_s))
                dst.write(chunk)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in pair:
                w.transport.abort()
            self._links -= pair
