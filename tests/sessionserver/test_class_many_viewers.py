"""One presenter and 200 viewer clients, real WebSocket clients in four separate processes on
loopback: every viewer receives every stroke, in order."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests.conftest import SECRET, RunningServer
from tests.inkdata import draw, handwriting
from wire import Role

ROOM = "class-2000000000aa"
PROCESSES, PER_PROCESS, STROKES = 4, 50, 20


@pytest.mark.timeout(180)
async def test_two_hundred_viewers_get_every_stroke_in_order(server: RunningServer) -> None:
    presenter = server.client(ROOM, Role.PRESENTER, "t.wang")
    await presenter.connect()
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.class_viewers", f"ws://{server.base}", ROOM, str(PER_PROCESS),
        str(i * PER_PROCESS), str(STROKES), SECRET, stdout=asyncio.subprocess.PIPE)
        for i in range(PROCESSES)]
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 90)
            assert line.strip() == b"joined", line
        sent = [await draw(presenter, handwriting(24, seed=i)) for i in range(STROKES)]
        reports = []
        for p in procs:
            assert p.stdout is not None
            reports += json.loads(await asyncio.wait_for(p.stdout.readline(), 90))
            assert await asyncio.wait_for(p.wait(), 30) == 0
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
    assert len(reports) == PROCESSES * PER_PROCESS
    assert all(r["strokes"] == sent for r in reports), [r["user"] for r in reports if r["strokes"] != sent]
    await presenter.close()
