"""Dropped connections resume with nothing lost and nothing doubled; late joiners see every page."""

from __future__ import annotations

import asyncio

from sessionserver.client import SessionClient
from tests.conftest import RunningServer, StartServer
from tests.inkdata import draw, finished, handwriting, pages_of
from wire import CatchUp, Limits, PointState, Role, decode_frame, encode, encode_points
from wire import messages as m


async def test_sender_drops_mid_stroke_and_resumes(server: RunningServer) -> None:
    tutor, student = await server.pair("r1")
    points = handwriting(400, 11)
    stroke = await tutor.begin_stroke(0)
    for i in range(0, 200, 4):
        await tutor.add_points(stroke, points[i : i + 4])
    await tutor.drop()  # some of these frames may never have left; none were necessarily acked
    for i in range(200, 400, 4):  # drawn while offline: kept in the outbox
        await tutor.add_points(stroke, points[i : i + 4])
    await tutor.end_stroke(stroke)
    assert tutor.outbox, "ops made offline wait in the outbox"
    welcome = await tutor.connect()
    assert welcome.mode is CatchUp.REPLAY
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == 1)
    assert finished(student, Role.TUTOR) == [points]
    await tutor.wait_for(lambda: not tutor.outbox)
    await draw(tutor, handwriting(30, 12))
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == 2)
    assert finished(student, Role.TUTOR) == [points, handwriting(30, 12)]
    assert tutor.errors == []
    await tutor.close()
    await student.close()


async def test_receiver_drops_mid_stroke_and_gets_exactly_what_it_missed(server: RunningServer) -> None:
    tutor, student = await server.pair("r2")
    points = handwriting(300, 13)
    stroke = await tutor.begin_stroke(0)
    for i in range(0, 100, 4):
        await tutor.add_points(stroke, points[i : i + 4])
    await student.wait_for(lambda: sum(len(s.points) for s in student.replica.strokes(tutor.pid)) == 100)
    await student.drop()
    for i in range(100, 300, 4):
        await tutor.add_points(stroke, points[i : i + 4])
    await tutor.end_stroke(stroke)
    await tutor.wait_for(lambda: not tutor.outbox)
    welcome = await student.connect()
    assert welcome.mode is CatchUp.REPLAY
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == 1)
    assert finished(student, Role.TUTOR) == [points]
    await tutor.close()
    await student.close()


async def test_a_resent_op_is_applied_once(server: RunningServer) -> None:
    tutor, student = await server.pair("r3")
    points = handwriting(12, 14)
    await draw(tutor, points)
    await tutor.wait_for(lambda: not tutor.outbox)
    before = tutor.replica.last_seq
    assert finished(student, Role.TUTOR) == [points]
    # resend the first points batch with its original cseq, as a client unsure of delivery would
    blob = encode_points(points[:4], 1, PointState())
    await tutor.send_raw(encode(m.StrokePoints(2, 1, 0, 4, blob)))
    await tutor.ping()  # frames are handled in order: once the pong is back the resend was processed
    await tutor.wait_for(lambda: tutor.clock_sync.rtt_ms is not None)
    assert tutor.replica.last_seq == before
    assert finished(student, Role.TUTOR) == [points]
    await tutor.close()
    await student.close()


async def _draw_a_session(server: RunningServer, session: str) -> tuple[SessionClient, int]:
    tutor = server.client(session, Role.TUTOR)
    await tutor.connect()
    await tutor.add_page(1)
    await tutor.add_page(2)
    keep = [await draw(tutor, handwriting(40, s), page=s % 3) for s in range(6)]
    await tutor.undo(keep[1])
    await tutor.clear(2)
    await draw(tutor, handwriting(25, 99), page=2)
    open_stroke = await tutor.begin_stroke(1)
    await tutor.add_points(open_stroke, handwriting(10, 98))  # still being written
    await tutor.switch_page(1)
    await tutor.wait_for(lambda: not tutor.outbox)
    return tutor, open_stroke


async def test_late_joiner_sees_every_page_by_replay(server: RunningServer) -> None:
    tutor, _ = await _draw_a_session(server, "late1")
    student = server.client("late1", Role.STUDENT)
    welcome = await student.connect()
    assert welcome.mode is CatchUp.REPLAY and welcome.page_count == 3
    await student.wait_for(lambda: student.replica.last_seq >= welcome.last_seq)
    assert pages_of(student) == pages_of(tutor)
    assert student.replica.current_pages[tutor.pid] == 1


async def test_late_joiner_gets_a_snapshot_when_the_log_was_compacted(start_server: StartServer) -> None:
    server = await start_server(oplog_max_events=8)
    tutor, open_stroke = await _draw_a_session(server, "late2")
    student = server.client("late2", Role.STUDENT)
    welcome = await student.connect()
    assert welcome.mode is CatchUp.SNAPSHOT
    await student.wait_for(lambda: student.replica.last_seq >= welcome.last_seq)
    assert pages_of(student) == pages_of(tutor)
    entry = welcome.entry(tutor.pid)
    assert entry is not None and entry.current_page == 1
    # the open stroke continues after the snapshot, point for point
    more = handwriting(30, 98)[10:]
    await tutor.add_points(open_stroke, more)
    await tutor.end_stroke(open_stroke)
    await tutor.wait_for(lambda: not tutor.outbox)
    await student.wait_for(lambda: student.replica.last_seq == tutor.replica.last_seq)
    assert pages_of(student) == pages_of(tutor)
    assert student.replica.pages[1][(tutor.pid, open_stroke)].points == handwriting(30, 98)


async def test_receiver_far_behind_is_caught_up_by_snapshot(start_server: StartServer) -> None:
    server = await start_server(oplog_max_events=16)
    tutor, student = await server.pair("far")
    await draw(tutor, handwriting(20, 1))
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == 1)
    await student.drop()
    for seed in range(2, 8):
        await draw(tutor, handwriting(20, seed))
    await tutor.wait_for(lambda: not tutor.outbox)
    welcome = await student.connect()
    assert welcome.mode is CatchUp.SNAPSHOT
    await student.wait_for(lambda: student.replica.last_seq >= welcome.last_seq)
    assert finished(student, Role.TUTOR) == [handwriting(20, s) for s in range(1, 8)]
    await tutor.close()
    await student.close()


async def test_a_room_that_was_evicted_is_not_mistaken_for_the_old_one(start_server: StartServer) -> None:
    server = await start_server(session_idle_end_s=3600.0)  # evicted long before the session would end
    tutor, student = await server.pair("epoch")
    await draw(tutor, handwriting(30, 21))
    await tutor.wait_for(lambda: not tutor.outbox)
    old = tutor.replica.epoch
    await tutor.drop()
    await student.drop()
    live = server.hub.rooms["epoch"]
    await asyncio.wait_for(live.empty.wait(), 5)  # the server has seen both go: eviction is due
    assert live.evict_handle is not None
    live.evict_handle._run()  # the idle timer fires; the room and its pages are gone
    welcome = await tutor.connect()  # its last_seq belongs to the old room
    assert welcome.epoch != old and welcome.mode is CatchUp.SNAPSHOT
    await tutor.wait_for(lambda: not tutor.replica.awaiting_pages)
    assert tutor.replica.pages == [{}]  # the replica matches the new room instead of mixing the two
    assert tutor.replica.last_seq == welcome.last_seq
    await tutor.close()


async def test_a_big_page_comes_in_bounded_snapshot_parts(start_server: StartServer) -> None:
    server = await start_server(oplog_max_events=8, snapshot_part_bytes=512)
    tutor, open_stroke = await _draw_a_session(server, "parts")
    await draw(tutor, handwriting(600, 7), batch=50, page=1)  # one stroke far bigger than a part
    await tutor.wait_for(lambda: not tutor.outbox)
    student = server.client("parts", Role.STUDENT)
    snapshots: list[tuple[int, m.Snapshot]] = []
    original = student._receive

    def receive(frame: bytes) -> None:
        msg = decode_frame(frame, Limits(max_frame_bytes=1 << 20))
        if isinstance(msg, m.Snapshot):
            snapshots.append((len(frame), msg))
        original(frame)

    student._receive = receive  # type: ignore[method-assign]
    welcome = await student.connect()
    assert welcome.mode is CatchUp.SNAPSHOT
    await student.wait_for(lambda: not student.replica.awaiting_pages and student.replica.last_seq >= welcome.last_seq)
    assert pages_of(student) == pages_of(tutor)
    assert all(size <= 512 for size, _ in snapshots)
    page1 = [s for _, s in snapshots if s.page == 1]
    assert len(page1) > 3 and [s.part for s in page1] == list(range(len(page1)))
    assert [s.last for s in page1] == [False] * (len(page1) - 1) + [True]
    # the open stroke continues after the snapshot, point for point
    await tutor.add_points(open_stroke, handwriting(30, 98)[10:])
    await tutor.wait_for(lambda: not tutor.outbox)
    await student.wait_for(lambda: student.replica.last_seq == tutor.replica.last_seq)
    assert pages_of(student) == pages_of(tutor)
    await tutor.close()
    await student.close()
