"""The recording of a session whose node was killed (issue 20, item 4): three real nodes share
one recordings directory; the session's home is killed with SIGKILL mid-stroke; the node that
takes the room over goes on with the same recording (the events rebuilt from Redis, the new
ones after them, numbered on from a jump). The finished recording has one timeline: every seq
once, in order, every point of the stroke once, and the move in its manifest."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pytest

from bench.nodes import Cluster, cluster
from recordings.eventlog import read_log
from recordings.layout import LOG_NAME
from recordings.loader import scan_log
from recordings.manifest import RecordingStatus, read_manifest
from sessionserver.client import SessionClient
from wire import Point, Role
from wire import messages as m

pytestmark = pytest.mark.timeout(120)


def pen(start: int, n: int) -> list[Point]:
    return [Point(5 * i, 3 * i, 4 * i, 250 + i) for i in range(start, start + n)]


@pytest.fixture
def shared() -> Iterator[Cluster]:
    # the session ends 1 s after everyone left, and its recording is finished then
    with cluster(3, shared_recordings=True,
                 extra={"TUTORWIRE_SESSION_IDLE_END_S": "1", "TUTORWIRE_ROOM_IDLE_TTL_S": "1"}) as c:
        yield c


async def test_the_recording_goes_on_across_a_node_death(shared: Cluster) -> None:
    c = shared
    session = "recorded-move"
    urls = c.urls(session)
    tutor = SessionClient(urls[0], c.token(session, Role.TUTOR), Role.TUTOR, auto_reconnect=True, fallback_urls=urls)
    student = SessionClient(urls[1], c.token(session, Role.STUDENT), Role.STUDENT, auto_reconnect=True,
                            fallback_urls=urls)
    await tutor.connect(timeout=10)
    await student.connect(timeout=10)
    home = c.node_of(tutor.session.redirect or urls[0])
    epoch = tutor.welcome.epoch if tutor.welcome else 0
    stroke = await tutor.begin_stroke()
    await tutor.add_points(stroke, pen(0, 60))
    await tutor.wait_for(lambda: not tutor.outbox.in_flight and not tutor.outbox.waiting, 10)
    await asyncio.sleep(0.7)  # past the recording's flush interval: part of it is on disk before the kill
    home.kill()
    await tutor.add_points(stroke, pen(60, 60))
    await tutor.end_stroke(stroke)
    await student.wait_for(lambda: any(s.ended and s.points == pen(0, 120) for s in student.replica.strokes()), 15)
    await tutor.wait_for(lambda: not tutor.outbox.in_flight and not tutor.outbox.waiting, 10)
    last_seq = student.replica.last_seq
    await tutor.close()
    await student.close()

    folder = c.recordings / f"{session}-{epoch}"
    deadline = time.monotonic() + 30
    while True:  # another process finishes it: its manifest is all there is to wait on
        manifest = read_manifest(folder) if (folder / "manifest.json").exists() else None
        if manifest is not None and manifest.status is RecordingStatus.COMPLETE:
            break
        assert time.monotonic() < deadline, f"the recording is {manifest.status if manifest else 'missing'}"
        await asyncio.sleep(0.1)
    assert [(mv.from_node, mv.continued) for mv in manifest.moves] == [(home.node_id, True)]
    contents = scan_log(read_log((folder / LOG_NAME).read_bytes()).records, manifest.protocol)
    seqs = [e.seq for e in contents.events]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1 and seqs[-1] >= last_seq  # each seq once, in order
    jumps = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
    # one jump, where the new home numbers on (room/restore.py ``renumber``): no event is missing
    # before it or after it
    assert len(jumps) == 1 and jumps[0][1] - jumps[0][0] > 1000, jumps
    points = [p for e in contents.events if isinstance(e.body, m.StrokePoints) for p in [e.body]]
    assert sum(p.count for p in points) == 120  # every point of the stroke, once
