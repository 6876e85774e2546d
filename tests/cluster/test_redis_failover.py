"""Redis's primary killed under live sessions on two real nodes that reach Redis through three
real Sentinels: the session goes on while there is no primary (ink flows and is acknowledged,
the room is not durable meanwhile), a new session still opens, and once a replica is promoted
everything the room numbered, the outage included, is written to the new primary."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import msgpack
import pytest

from bench.nodes import cluster
from sessionserver.client import SessionClient
from sessionserver.redisconn import redis_client
from tests.cluster.conftest import SERVICE, Sentinels
from wire import Point, Role
from wire.stream import StreamDecoder

pytestmark = pytest.mark.timeout(150)


def pen(start: int, n: int) -> list[Point]:
    return [Point(3 * i, 2 * i, 4 * i, 200 + i) for i in range(start, start + n)]


def settled(client: SessionClient) -> bool:
    return not client.outbox.in_flight and not client.outbox.waiting


async def stream_last_seq(sentinels: str, key: str) -> int:
    """The highest event seq in a room's stream on the current primary (0 if none, or no primary)."""
    client = redis_client("", sentinels, SERVICE)
    try:
        entries = await client.xrange(key)
    finally:
        await client.aclose()
    last = 0
    for _, fields in entries:
        decoder = StreamDecoder(1 << 30)
        decoder.feed(fields[b"f"])
        for frame in decoder.frames():
            last = max(last, int(msgpack.unpackb(frame)[1]))
    return last


async def test_a_redis_primary_failover_under_live_sessions(sentinels: Sentinels) -> None:
    extra = {"TUTORWIRE_REDIS_SENTINELS": sentinels.hosts, "TUTORWIRE_REDIS_SENTINEL_SERVICE": SERVICE}
    with cluster(2, redis_url="", extra=extra) as c:
        session = "through-failover"
        urls = c.urls(session)
        tutor = SessionClient(urls[0], c.token(session, Role.TUTOR), Role.TUTOR, auto_reconnect=True,
                              fallback_urls=urls)
        student = SessionClient(urls[0], c.token(session, Role.STUDENT), Role.STUDENT, auto_reconnect=True,
                                fallback_urls=urls)
        late: SessionClient | None = None
        try:
            await tutor.connect(timeout=20)
            await student.connect(timeout=20)
            stroke = await tutor.begin_stroke()
            await tutor.add_points(stroke, pen(0, 40))
            await tutor.wait_for(lambda: settled(tutor), 10)
            key = f"{c.prefix}room-log:{session}"
            seq_before = student.replica.last_seq
            deadline = time.monotonic() + 20
            while await _safe_last(sentinels.hosts, key) < seq_before:  # durable
                assert time.monotonic() < deadline, "the stream never held the acknowledged ink"
                await asyncio.sleep(0.1)  # the replication's pace
            sync = redis_client("", sentinels.hosts, SERVICE)
            while await sync.wait(1, 1000) < 1:  # ... and on the replica (within the client's socket timeout)
                assert time.monotonic() < deadline, "the replica never caught up"
            await sync.aclose()

            os.kill(sentinels.primary.pid, signal.SIGKILL)
            sentinels.primary.wait()
            # no primary: the session goes on, ink is delivered and acknowledged (not durable)
            await tutor.add_points(stroke, pen(40, 40))
            await student.wait_for(lambda: any(len(s.points) == 80 for s in student.replica.strokes()), 10)
            await tutor.wait_for(lambda: settled(tutor), 10)
            # a new session opens during the outage too
            late = SessionClient(c.nodes[1].ws("opened-in-outage"), c.token("opened-in-outage", Role.TUTOR),
                                 Role.TUTOR)
            await late.connect(timeout=10)

            # a replica is promoted: the room's events, the outage's included, reach the new primary
            await tutor.add_points(stroke, pen(80, 40))
            await tutor.end_stroke(stroke)
            await student.wait_for(lambda: any(s.ended and s.points == pen(0, 120)
                                               for s in student.replica.strokes()), 10)
            final = student.replica.last_seq
            deadline = time.monotonic() + 30
            while (written := await _safe_last(sentinels.hosts, key)) < final:
                assert time.monotonic() < deadline, f"the new primary holds events up to {written}, not {final}"
                await asyncio.sleep(0.2)  # the Sentinels' failover, then the journal's retry
            assert tutor.reconnects == 0 and student.reconnects == 0  # nobody noticed
        finally:
            await tutor.close()
            await student.close()
            if late is not None:
                await late.close()


async def _safe_last(sentinels: str, key: str) -> int:
    try:
        return await stream_last_seq(sentinels, key)
    except Exception:  # no primary yet: the Sentinels are still failing over
        return 0
