"""A tutor and a student (Python clients, as the pen gateway and the load generators use) writing,
clearing, restoring and undoing each other's ink at the same moments through the real server,
over a link with a 30 ms one-way delay (``tests.impair``): each client applies its own ops at
once, while the other's, sequenced before them, are still on the way (``wire/rebase.py``). When
everything has settled, both replicas' pages and cleared layers are the room's, stroke by stroke
and point by point; neither client lost its link over an event it could not apply, or spent its
error budget on points for a stroke the other had cleared."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from sessionserver.client import SessionClient
from tests.conftest import StartServer
from tests.impair import ImpairedLink
from wire import Point, Rights, Role

MAX_ERRORS = 400
ACTIONS = {"stroke": 22, "points": 36, "end": 10, "clear": 9, "restore": 9, "undo": 7, "undo-other": 7}


def ink_of(pages: Any) -> list[Any]:
    return [[[k[0], k[1], len(s.points) if hasattr(s, "points") else s.count] for k, s in page.items()]
            for page in pages]


class User:
    """What a person does with one client: a stroke at a time on page 0."""

    def __init__(self, client: SessionClient) -> None:
        self.client = client
        self.open: int | None = None
        self.written = 0

    async def act(self, what: str, n: int) -> None:
        c = self.client
        page = c.replica.pages[0]
        if what == "stroke":
            await self.act("end", 0)
            self.open, self.written = await c.begin_stroke(0), 0
            await self.act("points", n)
        elif what == "points" and self.open is not None:
            pts = [Point(100 + 7 * i, 200 + 3 * i, 5 * i, 2000) for i in range(self.written, self.written + n)]
            self.written += n
            await c.add_points(self.open, pts)
        elif what == "end" and self.open is not None:
            await c.end_stroke(self.open)
            self.open = None
        elif what == "clear":
            await c.clear(0)
        elif what == "restore" and c.replica.cleared.get(0):
            await c.restore(0)
        elif what == "undo":
            mine = [k[1] for k in page if k[0] == c.pid]
            if mine:
                await c.undo(mine[-1])
        elif what == "undo-other":
            theirs = [k for k in page if k[0] != c.pid]
            if theirs:
                await c.undo(theirs[0][1], theirs[0][0])


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_two_clients_clearing_restoring_and_undoing_at_once_end_with_the_rooms_pages(
        start_server: StartServer, seed: int) -> None:
    # minutes of a session's clearing in a few seconds: the refusals that races earn (an op the
    # other's Clear overtook) come as fast, so the per-minute error budget is scaled with them
    server = await start_server(max_errors=MAX_ERRORS)
    session = f"concurrent-{seed}"
    link = await ImpairedLink(server.port, delay_s=0.03).start()
    url = f"ws://127.0.0.1:{link.port}/ws/session/{session}"
    tutor = SessionClient(url, server.token(session, Role.TUTOR), Role.TUTOR)
    student = SessionClient(url, server.token(session, Role.STUDENT), Role.STUDENT)
    await tutor.connect()
    await student.connect()
    await tutor.grant(student.pid, Rights.CLEAR | Rights.UNDO_OTHERS)
    await student.wait_for(lambda: student.replica.participants[student.pid].granted != Rights.NONE)
    users = {"tutor": User(tutor), "student": User(student)}
    rng = random.Random(seed)
    names, weights = list(ACTIONS), list(ACTIONS.values())
    for _ in range(400):
        await users[rng.choice(list(users))].act(rng.choices(names, weights)[0], rng.randint(1, 12))
        await asyncio.sleep(rng.random() * 0.008)  # the users' pace, not a wait for anything
    for u in users.values():
        await u.act("end", 0)

    room = server.hub.rooms[session].room
    clients = [tutor, student]
    await tutor.wait_for(lambda: all(not c.outbox and c.replica.last_seq == room.seq for c in clients), 20)
    pages = ink_of(p.strokes for p in room.pages)
    layers = [ink_of(p.cleared) for p in room.pages]
    assert sum(map(len, pages)) + sum(len(layer) for p in layers for layer in p) > 20  # ink was written
    assert tutor.replica.rebases + student.replica.rebases > 20  # and the orders crossed, often
    for c in clients:
        assert c.session.joins == 1, "a client lost its link"
        assert (ink_of(c.replica.pages), [ink_of(c.replica.cleared.get(i, [])) for i in range(len(pages))]) == (
            pages, layers)
    await tutor.close()
    await student.close()
    await link.stop()
