"""The matcher's API and push channel on the real server, over the memory store and real Redis:
a student asks, the best tutor is offered the request over the push channel, accepts, and both
meet in the session with the join tokens they were handed."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
import pytest
import websockets

from matcher.records import Pool, TutorRecord
from matcher.redis_store import RedisStore
from matcher.settings import MatcherSettings
from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from tests.conftest import SECRET, RunningServer, StartServer
from tests.matcherkit import REDIS_URL
from wire import Point, Role

FAST = MatcherSettings(batch_interval_s=0.05, exploration=0.0)  # posterior mean: a fixed first offer


def api_token(user: str, role: str) -> dict[str, str]:
    token = TokenSigner(SECRET).mint_api(user, role, int(time.time()) + 600)
    return {"authorization": f"Bearer {token}"}


class Push:
    """A push-channel listener."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, srv: RunningServer, user: str, role: str) -> tuple[Push, dict[str, Any]]:
        ws = await websockets.connect(f"ws://{srv.base}/ws/matcher")
        token = api_token(user, role)["authorization"].split()[1]
        await ws.send(json.dumps({"token": token}))
        push = cls(ws)
        return push, await push.next("welcome")

    async def next(self, kind: str) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if message["type"] == kind:
                return dict(message)


@pytest.fixture(params=["memory", "redis"])
async def srv(request: pytest.FixtureRequest, start_server: StartServer) -> Any:
    extra: dict[str, Any] = {}
    if request.param == "redis":
        extra = {"redis_url": REDIS_URL, "redis_prefix": f"tw-api-{secrets.token_hex(6)}:"}
    running = await start_server(matcher=FAST, **extra)
    m = running.app.state.matching.matcher
    await m.upsert_tutor(TutorRecord("wang", "Wang Fang", (Pool("math", "junior"),), ("math.algebra",)))
    await m.upsert_tutor(TutorRecord("li", "Li Wei", (Pool("math", "junior"),)))
    yield running
    if request.param == "redis":
        store = RedisStore(REDIS_URL, extra["redis_prefix"])
        await store.delete_all()
        await store.close()


async def test_ask_offer_accept_meet(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        tutor_push, hello = await Push.open(srv, "wang", "tutor")
        assert hello["state"] == "offline"
        r = await http.post("/api/tutor/availability", json={"available": True}, headers=api_token("wang", "tutor"))
        assert r.status_code == 200 and r.json()["state"] == "available"
        student_push, _ = await Push.open(srv, "stu1", "student")
        body = {"subject": "math", "grade": 8, "knowledge_points": ["math.algebra.linear-equations"],
                "text": "I am stuck on 3x + 5 = 20"}
        created = await http.post("/api/requests", json=body, headers=api_token("stu1", "student"))
        assert created.status_code == 201, created.text
        request_id = created.json()["request_id"]
        offer = await tutor_push.next("offer")
        assert offer["request"]["request_id"] == request_id and offer["expires_at"] > time.time()
        assert offer["request"]["text"] == body["text"]
        accepted = await http.post(f"/api/offers/{request_id}/accept", headers=api_token("wang", "tutor"))
        assert accepted.status_code == 200, accepted.text
        tutor_join = accepted.json()["join"]
        matched = await student_push.next("matched")
        assert matched["session_id"] == tutor_join["session_id"] and matched["join"]["role"] == "student"
        status = await http.get(f"/api/requests/{request_id}", headers=api_token("stu1", "student"))
        assert status.json()["state"] == "accepted" and status.json()["join"]["session_id"] == matched["session_id"]
        # Both meet in the session with the tokens they were handed.
        tutor = SessionClient(f"ws://{srv.base}{tutor_join['ws_path']}", tutor_join["token"], Role.TUTOR)
        student = SessionClient(f"ws://{srv.base}{matched['join']['ws_path']}", matched["join"]["token"],
                                Role.STUDENT)
        await tutor.connect()
        await student.connect()
        stroke = await tutor.begin_stroke(page=0)
        await tutor.add_points(stroke, [Point(100 + i, 200, t=8 * i, pressure=500) for i in range(5)])
        await tutor.end_stroke(stroke)
        await student.wait_for(lambda: any(s.ended for s in student.replica.strokes(tutor.pid)))
        await tutor.close()
        await student.close()
        outcome = await http.post(f"/api/sessions/{matched['session_id']}/outcome", json={"rating": 5, "check": 0.8},
                                  headers=api_token("stu1", "student"))
        assert outcome.status_code == 200, outcome.text
        again = await http.post(f"/api/sessions/{matched['session_id']}/outcome", json={"rating": 5},
                                headers=api_token("stu1", "student"))
        assert again.status_code == 409
        await tutor_push.ws.close()
        await student_push.ws.close()


async def test_decline_reoffers_and_push_withdraws(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        pushes = {}
        for t in ("wang", "li"):
            pushes[t], _ = await Push.open(srv, t, "tutor")
            await http.post("/api/tutor/availability", json={"available": True}, headers=api_token(t, "tutor"))
        body = {"subject": "math", "grade": 8, "knowledge_points": ["math.algebra.factoring"]}
        rid = (await http.post("/api/requests", json=body, headers=api_token("stu2", "student"))).json()["request_id"]
        first = await pushes["wang"].next("offer")  # declared algebra strength
        assert first["request"]["request_id"] == rid
        r = await http.post(f"/api/offers/{rid}/decline", headers=api_token("wang", "tutor"))
        assert r.status_code == 200
        assert (await pushes["wang"].next("offer_withdrawn"))["reason"] == "declined"
        assert (await pushes["li"].next("offer"))["request"]["request_id"] == rid
        late = await http.post(f"/api/offers/{rid}/accept", headers=api_token("wang", "tutor"))
        assert late.status_code == 409
        cancelled = await http.post(f"/api/requests/{rid}/cancel", headers=api_token("stu2", "student"))
        assert cancelled.json()["state"] == "cancelled"
        assert (await pushes["li"].next("offer_withdrawn"))["reason"] == "cancelled"
        for p in pushes.values():
            await p.ws.close()


async def test_api_errors(srv: RunningServer) -> None:
    student, tutor = api_token("stu3", "student"), api_token("wang", "tutor")
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        assert (await http.post("/api/requests", json={})).status_code == 401
        forged = {"authorization": "Bearer " + TokenSigner("x" * 40).mint_api("stu3", "student", 2**31)}
        assert (await http.post("/api/requests", json={}, headers=forged)).status_code == 401
        assert (await http.post("/api/requests", json={}, headers=tutor)).status_code == 403
        r = await http.post("/api/requests", json={"subject": "math", "grade": 0}, headers=student)
        assert r.status_code == 422 and r.json()["field"] == "grade" and r.json()["error"]
        r = await http.post("/api/requests", content=b"\xff{not json", headers=student)
        assert r.status_code == 422 and r.json()["field"] == "body"
        r = await http.post("/api/requests", content=b"[1, 2]", headers=student)
        assert r.status_code == 422 and r.json()["field"] == "body"
        r = await http.post("/api/requests", content=b"{" + b" " * 20000 + b"}", headers=student)
        assert r.status_code == 422 and r.json()["field"] == "body"
        for path, body in (("/api/requests", {"subject": "math", "grade": 8, "favorite": "wang"}),
                           ("/api/tutor/availability", {"available": True, "avialable": False}),
                           ("/api/sessions/s_nope/outcome", {"rating": 3, "stars": 5})):
            r = await http.post(path, json=body, headers=tutor if "tutor" in path else student)
            misspelt = next(iter(set(body) - {"subject", "grade", "available", "rating"}))
            assert r.status_code == 422 and r.json()["field"] == misspelt, (path, r.text)  # not dropped in silence
        r = await http.post("/api/requests", content=b"[" * 10_000, headers=student)
        assert r.status_code == 422 and r.json()["field"] == "body"  # never a 500
        assert (await http.get("/api/requests/rq_nope", headers=student)).status_code == 404
        assert (await http.get("/api/requests/../../etc", headers=student)).status_code == 404
        assert (await http.post("/api/offers/rq_nope/accept", headers=tutor)).status_code == 404
        r = await http.post("/api/tutor/availability", json={"available": "yes"}, headers=tutor)
        assert r.status_code == 422 and r.json()["field"] == "available"
        assert (await http.post("/api/tutor/heartbeat", headers=tutor)).status_code == 409  # offline
        assert (await http.post("/api/tutor/availability", json={"available": True},
                                headers=api_token("ghost", "tutor"))).status_code == 404
        r = await http.post("/api/sessions/s_nope/outcome", json={"rating": 3}, headers=student)
        assert r.status_code == 404
        assert (await http.get("/api/tutors/export", headers=student)).status_code == 403
        export = await http.get("/api/tutors/export", headers=api_token("boss", "admin"))
        assert export.status_code == 200 and {p["tutor_id"] for p in export.json()} == {"wang", "li"}
        rid = (await http.post("/api/requests", json={"subject": "math", "grade": 8}, headers=student)).json()
        other = await http.get(f"/api/requests/{rid['request_id']}", headers=api_token("stu4", "student"))
        assert other.status_code == 403


@pytest.mark.parametrize("first", ["not json at all", "[" * 5000, b"\x00binary", '{"token": 7}', "[1]"])
async def test_push_channel_refuses_bad_token(srv: RunningServer, first: str | bytes) -> None:
    async with websockets.connect(f"ws://{srv.base}/ws/matcher") as ws:
        await ws.send(first)
        message = json.loads(await ws.recv())
        assert message["type"] == "error" and message["code"] == 401
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4001


async def test_push_survives_garbage_after_welcome(srv: RunningServer) -> None:
    push, hello = await Push.open(srv, "stu5", "student")
    assert hello["requests"] == []
    for garbage in ("garbage", "[" * 5000, b"\x01\x02", "[]", '{"type": "' + "x" * 20_000 + '"}'):
        await push.ws.send(garbage)
        assert (await push.next("error"))["code"] == 422  # that client's error; the channel stays
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        await http.post("/api/requests", json={"subject": "math", "grade": 8}, headers=api_token("stu5", "student"))
    assert (await push.next("request"))["request"]["state"] == "queued"
    await push.ws.close()


async def test_dev_mode_seeds_demo_roster_and_signs_in(start_server: StartServer) -> None:
    srv = await start_server(dev_mode=True, matcher=FAST)
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        bad = await http.get("/dev/login", params={"user": "a b", "role": "tutor"})
        assert bad.status_code == 422 and bad.json()["field"] == "user"
        login = (await http.get("/dev/login", params={"user": "boss", "role": "admin"})).json()
        export = await http.get("/api/tutors/export", headers={"authorization": f"Bearer {login['token']}"})
        tutors = export.json()
        assert len(tutors) >= 6 and all(t["teaches"] for t in tutors)
        tutor_id = tutors[0]["tutor_id"]
        tutor = (await http.get("/dev/login", params={"user": tutor_id, "role": "tutor"})).json()
        r = await http.post("/api/tutor/availability", json={"available": True},
                            headers={"authorization": f"Bearer {tutor['token']}"})
        assert r.status_code == 200 and r.json()["state"] == "available"


async def test_no_dev_login_without_dev_mode(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        assert (await http.get("/dev/login", params={"user": "x", "role": "admin"})).status_code == 404


async def test_tutor_ending_the_session_tells_the_student(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        tutor_push, _ = await Push.open(srv, "wang", "tutor")
        await http.post("/api/tutor/availability", json={"available": True}, headers=api_token("wang", "tutor"))
        student_push, _ = await Push.open(srv, "stu9", "student")
        body = {"subject": "math", "grade": 8, "knowledge_points": ["math.algebra.factoring"]}
        rid = (await http.post("/api/requests", json=body, headers=api_token("stu9", "student"))).json()["request_id"]
        await tutor_push.next("offer")
        accepted = await http.post(f"/api/offers/{rid}/accept", headers=api_token("wang", "tutor"))
        session_id = accepted.json()["join"]["session_id"]
        await student_push.next("matched")
        done = await http.post("/api/tutor/availability", json={"available": True}, headers=api_token("wang", "tutor"))
        assert done.json()["state"] == "available"
        ended = await student_push.next("session_ended")
        assert ended["session_id"] == session_id and ended["request_id"] == rid
        assert (await tutor_push.next("session_ended"))["session_id"] == session_id
        # Going available again while already available ends nothing.
        await http.post("/api/tutor/availability", json={"available": False}, headers=api_token("wang", "tutor"))
        await tutor_push.ws.close()
        await student_push.ws.close()
