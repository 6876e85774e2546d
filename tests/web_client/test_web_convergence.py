"""The browser's session machine (``web_client/js/wire/session/client.js``, run by Node through
``web_client_harness.mjs``) against the real server over a link with a 30 ms one-way delay
(``tests.impair``), with a tutor and a student writing, clearing, restoring and undoing each
other's ink at the same moments: each browser applies its own ops at once (optimistically), while
the other's ops, sequenced before them, are still on the way (``Replica.rebase`` in
``web_client/js/wire/replica.js``). When everything has settled, both browsers' pages and
cleared layers hold what the room holds, stroke by stroke and point by point, and neither browser
lost its link over an event it could not apply.

The test owns the sockets (``websockets``) and moves the bytes; Node owns the machine."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import RunningServer, StartServer
from tests.impair import ImpairedLink
from wire import Role

HERE = Path(__file__).parent
# minutes of a session's clearing in a few seconds: the refusals that races earn (an op the
# other's Clear overtook) come as fast, so the server's per-minute error budget is scaled with them
MAX_ERRORS = 400
ACTIONS = {"stroke": 22, "points": 36, "end": 10, "clear": 9, "restore": 9, "undo": 7, "undo-other": 7}


class Node:
    """The harness process: one request at a time, each answered by one line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lock = asyncio.Lock()

    async def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self.lock:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            await self.proc.stdin.drain()
            line = await self.proc.stdout.readline()
        answer: dict[str, Any] = json.loads(line)
        assert answer["ok"], answer.get("message")
        return answer


@dataclass
class Browser:
    """One browser: its machine lives in Node, its WebSocket here."""

    name: str
    url: str
    node: Node
    t0: float
    changed: asyncio.Condition
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    last: dict[str, Any] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def handle(self, answer: dict[str, Any]) -> None:
        """Do what the machine asked: write its frames, open or close its link."""
        self.last = answer
        if self.ws is not None:
            for hex_frame in answer["send"]:
                await self.ws.send(bytes.fromhex(hex_frame))
        if answer["close"] is not None and self.ws is not None:
            await self.ws.close(answer["close"]["code"], answer["close"]["reason"])
        if answer["open"]:
            self.ws = await websockets.connect(self.url, max_size=None)
            self.reader = asyncio.create_task(self._read(self.ws))
            await self.handle(await self.node.ask(op="opened", id=self.name, now=self.now()))
        async with self.changed:
            self.changed.notify_all()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                assert isinstance(data, bytes)
                if ws is not self.ws:
                    return  # a link the machine gave up: a browser's shell hears no more of it
                await self.handle(await self.node.ask(op="frame", id=self.name, hex=data.hex(), now=self.now()))
        except websockets.ConnectionClosed:
            pass

    async def act(self, what: str, n: int = 0) -> None:
        await self.handle(await self.node.ask(op="act", id=self.name, now=self.now(), n=n, **{"do": what}))

    async def tick(self) -> None:
        await self.handle(await self.node.ask(op="timer", id=self.name, now=self.now()))

    async def state(self) -> dict[str, Any]:
        return await self.node.ask(op="state", id=self.name)


@pytest.fixture
async def node() -> Any:
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed, so the browser's modules cannot be run")
    proc = await asyncio.create_subprocess_exec(exe, str(HERE / "web_client_harness.mjs"), cwd=HERE.parent,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    yield Node(proc)
    assert proc.stdin is not None
    proc.stdin.close()
    await proc.wait()


def is_live(b: Browser) -> bool:
    return b.last.get("state") == "live"


def room_state(server: RunningServer, session: str) -> tuple[list[Any], list[Any]]:
    room = server.hub.rooms[session].room
    pages = [[[s.pid, s.stroke, s.count] for s in page.strokes.values()] for page in room.pages]
    layers = [[[[s.pid, s.stroke, s.count] for s in layer.values()] for layer in page.cleared] for page in room.pages]
    return pages, layers


def actions(rng: random.Random, steps: int) -> Iterator[tuple[str, str, int]]:
    names, weights = list(ACTIONS), list(ACTIONS.values())
    for _ in range(steps):
        yield rng.choice(["tutor", "student"]), rng.choices(names, weights)[0], rng.randint(1, 12)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_two_browsers_clearing_restoring_and_undoing_at_once_end_with_the_rooms_pages(
        start_server: StartServer, node: Node, seed: int) -> None:
    server = await start_server(max_errors=MAX_ERRORS)
    link = await ImpairedLink(server.port, delay_s=0.03).start()
    session = f"converge-{seed}"
    changed = asyncio.Condition()
    t0 = time.monotonic()
    url = f"ws://127.0.0.1:{link.port}/ws/session/{session}"
    browsers = {name: Browser(name, url, node, t0, changed) for name in ("tutor", "student")}
    for name, role in (("tutor", Role.TUTOR), ("student", Role.STUDENT)):
        b = browsers[name]
        await b.handle(await node.ask(op="new", id=name, token=server.token(session, role), role=int(role),
                                      now=b.now()))
        async with changed:
            await asyncio.wait_for(changed.wait_for(functools.partial(is_live, b)), 10)

    stop = asyncio.Event()

    async def ticking() -> None:  # the browsers' timers: pacing, pings
        while not stop.is_set():
            for b in browsers.values():
                await b.tick()
            await asyncio.sleep(0.004)

    ticker = asyncio.create_task(ticking())
    try:
        await browsers["tutor"].act("grant")  # the student may clear, restore and undo the tutor's ink too
        rng = random.Random(seed)
        for who, what, n in actions(rng, 400):
            await browsers[who].act(what, n)
            await asyncio.sleep(rng.random() * 0.008)  # the users' pace, not a wait for anything
        for b in browsers.values():
            await b.act("end")

        async def settled() -> bool:
            seq = server.hub.rooms[session].room.seq
            for b in browsers.values():
                s = await b.state()
                if s["state"] != "live" or s["outbox"] or s["lastSeq"] != seq:
                    return False
            return True

        deadline = time.monotonic() + 20
        while not await settled():
            if time.monotonic() > deadline:
                states = {name: await b.state() for name, b in browsers.items()}
                seen = {name: {k: states[name][k] for k in ("state", "outbox", "lastSeq")} | {
                    k: b.last[k] for k in ("failures", "errors", "links")} for name, b in browsers.items()}
                raise AssertionError(f"the browsers did not settle at seq {server.hub.rooms[session].room.seq}: {seen}")
            async with changed:
                await asyncio.wait_for(changed.wait(), 5)
    finally:
        stop.set()
        await ticker

    pages, layers = room_state(server, session)
    assert sum(len(p) for p in pages) + sum(len(layer) for p in layers for layer in p) > 20  # ink was written
    rebases = 0
    for b in browsers.values():
        assert b.last["failures"] == [], f"{b.name} gave its link up"
        assert b.last["links"] == 1
        s = await b.state()
        assert (s["pages"], s["layers"]) == (pages, layers), b.name
        rebases += s["rebases"]
    assert rebases > 20  # the orders crossed, often
    for b in browsers.values():
        if b.ws is not None:
            await b.ws.close()
        if b.reader is not None:
            await b.reader
    await link.stop()
