"""Talking to the benchmark orchestrator over a multiprocessing pipe from inside an event loop."""

from __future__ import annotations

import asyncio
import os
from multiprocessing.connection import Connection
from typing import Any


async def recv_command(conn: Connection) -> Any:
    """The next object from the orchestrator, without blocking the event loop while waiting."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
        os.set_blocking(conn.fileno(), True)  # the loop made it non-blocking; the pipe's own I/O blocks
    return conn.recv()
