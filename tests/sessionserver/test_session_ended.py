"""Ended sessions are ended: when the tutor ends a session (or nobody has been in it for
``session_idle_end_s``) every connection gets 2007 and close 4006, no join token is handed out
for it, a join with an old token is refused the same way, and the recording is finalised at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from matcher.records import Pool, TutorRecord
from matcher.settings import MatcherSettings
from sessionserver.client import SessionClient
from sessionserver.hub import BoundedSet, Hub
from sessionserver.settings import Settings
from tests.conftest import RunningServer, StartServer
from tests.inkdata import draw, finished, handwriting
from wire import CloseCode, ErrorCode, Role

from .test_matcher_api import Push, api_token


def spy_on_recordings(server: RunningServer) -> list[str]:
    """The reasons the hub closes recordings with, as it closes them."""
    archiver = server.hub.archiver
    assert archiver is not None
    reasons: list[str] = []
    original = archiver.close

    def close(recorder: Any, reason: str) -> Any:
        reasons.append(reason)
        return original(recorder, reason)

    archiver.close = close  # type: ignore[method-assign]
    return reasons


async def ended(client: SessionClient) -> None:
    assert await client.wait_closed() == CloseCode.SESSION_ENDED
    assert client.errors[-1].code == ErrorCode.SESSION_ENDED


async def refused_as_ended(client: SessionClient) -> None:
    with pytest.raises(ConnectionRefusedError):
        await client.connect()
    assert client.errors[-1].code == ErrorCode.SESSION_ENDED
    assert client.close_code == CloseCode.SESSION_ENDED


async def test_the_tutor_ending_the_session_ends_it_everywhere(start_server: StartServer) -> None:
    srv = await start_server(matcher=MatcherSettings(batch_interval_s=0.05))
    await srv.app.state.matching.matcher.upsert_tutor(
        TutorRecord("wang", "Wang Fang", (Pool("math", "junior"),), ("math.algebra",)))
    reasons = spy_on_recordings(srv)
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        tutor_push, _ = await Push.open(srv, "wang", "tutor")
        await http.post("/api/tutor/availability", json={"available": True}, headers=api_token("wang", "tutor"))
        student_push, _ = await Push.open(srv, "stu1", "student")
        body = {"subject": "math", "grade": 8, "knowledge_points": ["math.algebra.factoring"]}
        rid = (await http.post("/api/requests", json=body, headers=api_token("stu1", "student"))).json()["request_id"]
        await tutor_push.next("offer")
        tutor_join = (await http.post(f"/api/offers/{rid}/accept", headers=api_token("wang", "tutor"))).json()["join"]
        student_join = (await student_push.next("matched"))["join"]
        session_id = tutor_join["session_id"]
        tutor = SessionClient(f"ws://{srv.base}{tutor_join['ws_path']}", tutor_join["token"], Role.TUTOR)
        student = SessionClient(f"ws://{srv.base}{student_join['ws_path']}", student_join["token"], Role.STUDENT,
                                auto_reconnect=True, backoff_initial_s=0.01)
        await tutor.connect()
        await student.connect()
        points = handwriting(30, 1)
        await draw(tutor, points)
        await student.wait_for(lambda: finished(student, Role.TUTOR) == [points])
        # the tutor ends it through the matcher (going available again)
        done = await http.post("/api/tutor/availability", json={"available": True}, headers=api_token("wang", "tutor"))
        assert done.status_code == 200
        await ended(tutor)
        await ended(student)
        await student_push.next("session_ended")
        assert session_id not in srv.hub.rooms and srv.hub.is_ended(session_id)
        assert student.reconnects == 0  # 4006 is final: the client does not try again
        await asyncio.wait_for(asyncio.gather(*srv.hub._closing), 10)
        assert reasons == ["session ended"]  # the recording was finalised at once, not after an idle time
        # no new join token for it: the request answers 410 with its view, and without a token
        status = await http.get(f"/api/requests/{rid}", headers=api_token("stu1", "student"))
        assert status.status_code == 410, status.text
        assert status.json()["request"]["session_ended"] is True and "join" not in status.json()["request"]
        me = (await http.get("/api/me", headers=api_token("stu1", "student"))).json()
        assert all("join" not in r for r in me["requests"])
        tutor_me = (await http.get("/api/me", headers=api_token("wang", "tutor"))).json()
        assert tutor_me["join"] is None
        # an old token (still unexpired) is refused
        for join, role in ((tutor_join, Role.TUTOR), (student_join, Role.STUDENT)):
            late = SessionClient(f"ws://{srv.base}{join['ws_path']}", join["token"], role)
            await refused_as_ended(late)
        assert session_id not in srv.hub.rooms  # a refused join does not bring the room back
        await tutor_push.ws.close()
        await student_push.ws.close()


async def test_a_session_nobody_is_in_ends_after_its_idle_time(start_server: StartServer) -> None:
    srv = await start_server(session_idle_end_s=0.05, room_idle_ttl_s=60.0)
    reasons = spy_on_recordings(srv)
    tutor, student = await srv.pair("idle")
    await tutor.close()
    await student.close()
    live = srv.hub.rooms["idle"]
    await asyncio.wait_for(live.empty.wait(), 5)
    assert live.evict_handle is not None
    assert live.evict_handle.when() - asyncio.get_running_loop().time() < 1  # the idle end, not the ttl
    live.evict_handle._run()  # the timer fires (its time is as good as come)
    assert srv.hub.is_ended("idle") and "idle" not in srv.hub.rooms
    await asyncio.wait_for(asyncio.gather(*srv.hub._closing), 10)
    assert reasons == ["session ended"]
    await refused_as_ended(srv.client("idle", Role.TUTOR))


async def test_an_evicted_room_ends_its_session_once_the_idle_time_has_passed(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    srv = await start_server(session_idle_end_s=600.0, room_idle_ttl_s=60.0)
    now = [1000.0]
    monkeypatch.setattr(srv.hub, "clock", lambda: now[0])
    tutor, student = await srv.pair("evicted")
    old_epoch = tutor.replica.epoch
    await tutor.close()
    await student.close()
    live = srv.hub.rooms["evicted"]
    await asyncio.wait_for(live.empty.wait(), 5)
    assert live.evict_handle is not None
    live.evict_handle._run()  # after room_idle_ttl_s: evicted, not ended
    assert "evicted" not in srv.hub.rooms and not srv.hub.is_ended("evicted")
    now[0] += 599.0
    welcome = await tutor.connect()  # within the idle time: a new room of the same session
    assert welcome.epoch != old_epoch and welcome.last_seq == 1  # only its own presence so far
    await tutor.close()
    live = srv.hub.rooms["evicted"]
    await asyncio.wait_for(live.empty.wait(), 5)
    assert live.evict_handle is not None
    live.evict_handle._run()
    now[0] += 600.0
    await refused_as_ended(student)


async def test_the_hub_remembers_a_bounded_number_of_ended_sessions() -> None:
    hub = Hub(Settings(ended_sessions_max=3), clock=lambda: 0.0)
    for i in range(10):
        hub.end_session(f"s{i}", "test")
    assert len(hub.ended) == 3 and [hub.is_ended(f"s{i}") for i in range(10)] == [False] * 7 + [True] * 3
    remembered = BoundedSet(2)
    for item in ("a", "b", "a", "c"):  # adding again refreshes
        remembered.add(item)
    assert "a" in remembered and "c" in remembered and "b" not in remembered


def test_the_settings_are_read_from_the_environment() -> None:
    env = {"TUTORWIRE_SESSION_IDLE_END_S": "30", "TUTORWIRE_ENDED_SESSIONS_MAX": "7"}
    settings = Settings.from_env(env)
    assert (settings.session_idle_end_s, settings.ended_sessions_max) == (30.0, 7)
