"""Ink both ways between a tutor and a student through the real server."""

from __future__ import annotations

from sessionserver.client import SessionClient
from sessionserver.connection import Connection
from tests.conftest import RunningServer, StartServer
from tests.inkdata import draw, finished, handwriting, pages_of
from wire import HAS_PRESSURE, HAS_TILT, Limits, Point, Role, decode_frame
from wire import messages as m


async def test_ink_flows_both_ways_in_order(server: RunningServer) -> None:
    tutor, student = await server.pair("s1")
    sent_t = [handwriting(200, 1), handwriting(37, 2, tilt=True)]
    sent_s = [handwriting(50, 3)]
    await draw(tutor, sent_t[0], flags=HAS_PRESSURE)
    await draw(student, sent_s[0], flags=HAS_PRESSURE)
    await draw(tutor, sent_t[1], batch=7, flags=HAS_PRESSURE | HAS_TILT)
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == 2)
    await tutor.wait_for(lambda: len(finished(tutor, Role.STUDENT)) == 1)
    assert finished(student, Role.TUTOR) == sent_t
    assert finished(tutor, Role.STUDENT) == sent_s
    # both replicas agree on everything, including each other's own strokes
    await tutor.wait_for(lambda: tutor.replica.last_seq == student.replica.last_seq)

    def by_key(c: SessionClient) -> dict[tuple[int, int], list[Point]]:
        return {(s.pid, s.stroke): s.points for s in c.replica.strokes()}

    assert by_key(tutor) == by_key(student)
    await tutor.close()
    await student.close()


async def test_pages_undo_clear_and_page_switch_reach_the_other_side(server: RunningServer) -> None:
    tutor, student = await server.pair("s2")
    await tutor.add_page(1)
    await tutor.add_page(2)
    a = await draw(tutor, handwriting(20, 4), page=0)
    await draw(tutor, handwriting(20, 5), page=1)
    await student.wait_for(lambda: len(student.replica.pages) == 3)
    await draw(student, handwriting(20, 6), page=2)
    await draw(tutor, handwriting(20, 7), page=2)
    await tutor.undo(a)
    await tutor.clear(1)
    await tutor.switch_page(2)
    await student.wait_for(lambda: student.replica.current_pages[tutor.pid] == 2)
    await tutor.wait_for(lambda: tutor.replica.last_seq == student.replica.last_seq)
    assert pages_of(student) == pages_of(tutor)
    assert [len(p) for p in student.replica.pages] == [0, 0, 2]
    assert tutor.errors == [] and student.errors == []
    await tutor.close()
    await student.close()


async def test_events_carry_monotonic_session_time_and_ping_measures_rtt(server: RunningServer) -> None:
    tutor, student = await server.pair("s3")
    times: list[int] = []
    original = student._receive

    def spy(frame: bytes) -> None:
        msg = decode_frame(frame, Limits(max_frame_bytes=1 << 24))
        if isinstance(msg, m.Event) and not isinstance(msg.body, m.Presence):
            times.append(msg.session_ms)
        original(frame)

    student._receive = spy  # type: ignore[method-assign]
    for seed in range(5):
        await draw(tutor, handwriting(8, seed))
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == 5)
    assert times == sorted(times) and len(times) == 5 * 4
    await student.ping()
    await student.wait_for(lambda: student.clock_sync.rtt_ms is not None)
    assert student.clock_sync.rtt_ms is not None and 0 <= student.clock_sync.rtt_ms < 1000
    await tutor.close()
    await student.close()


async def test_healthz(server: RunningServer) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://{server.base}/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_server_pings_measure_each_clients_clock_offset(start_server: StartServer) -> None:
    server = await start_server(ping_interval_s=0.02)
    tutor, student = await server.pair("clock")
    connection = server.hub.rooms["clock"].participants[student.pid][""]
    assert isinstance(connection, Connection)
    for _ in range(3):
        await student.ping()
    await student.wait_for(lambda: len(student.clock_sync._samples) >= 3)
    await student.wait_for(lambda: len(connection.clock_sync._samples) >= 3)  # the server's own pings
    server_view = connection.clock_sync.offset_ms  # student's device clock minus session clock
    client_view = student.clock_sync.offset_ms  # session clock minus student's device clock
    assert server_view is not None and client_view is not None
    assert abs(server_view + client_view) < 50  # the same offset seen from both ends (loopback: ~0 ms apart)
    await tutor.close()
    await student.close()
