"""The live classes' HTTP API on the real server: a teacher schedules a class, a student finds it
by its code and gets a viewer seat, the teacher a presenter seat, attendance comes back as CSV,
and ending the class ends its room; hostile bodies get 422 naming the field."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from sessionserver.auth import TokenSigner
from sessionserver.classes.redis_store import RedisClassStore
from sessionserver.client import SessionClient
from tests.conftest import SECRET, RunningServer, StartServer
from tests.matcherkit import REDIS_URL
from wire import Role


def auth(user: str, role: str, school: str | None = None) -> dict[str, str]:
    token = TokenSigner(SECRET).mint_api(user, role, int(time.time()) + 600, school)
    return {"authorization": f"Bearer {token}"}


TEACHER = auth("t.wang", "tutor")
STUDENT = auth("s.zhang", "student", "school-7")


def new_class(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"title": "Linear equations 一元一次方程", "subject": "maths", "grade": 7,
                            "starts_unix": int(time.time()) + 60, "duration_min": 40}
    body.update(changes)
    return body


@pytest.fixture
async def api(server: RunningServer) -> Any:
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as client:
        yield client


async def test_schedule_find_by_code_join_attend_and_end(api: httpx.AsyncClient, server: RunningServer) -> None:
    created = await api.post("/api/classes", json=new_class(), headers=TEACHER)
    assert created.status_code == 201, created.text
    c = created.json()
    assert c["state"] == "scheduled" and c["room_id"] == f"class-{c['class_id']}"
    found = await api.get(f"/api/classes/code/{c['code'].lower()}", headers=STUDENT)
    assert found.status_code == 200 and found.json()["class_id"] == c["class_id"]

    seat = (await api.post(f"/api/classes/code/{c['code']}/join", headers=STUDENT)).json()
    assert (seat["role"], seat["ws_path"]) == ("viewer", f"/ws/session/{c['room_id']}")
    grant = TokenSigner(SECRET).check(seat["token"], c["room_id"], Role.VIEWER, time.time())
    assert grant.user_id == "s.zhang"
    presenter = (await api.post(f"/api/classes/{c['class_id']}/join", headers=TEACHER)).json()
    assert presenter["role"] == "presenter" and presenter["class"]["state"] == "live"

    listed = (await api.get("/api/classes", headers=TEACHER)).json()["classes"]
    assert [x["class_id"] for x in listed] == [c["class_id"]]
    sheet = await api.get(f"/api/classes/{c['class_id']}/attendance.csv", headers=TEACHER)
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    assert sheet.text.lstrip("\ufeff").startswith("class_id,title,user_id,role,joined_utc,left_utc,minutes")

    ended = await api.post(f"/api/classes/{c['class_id']}/end", headers=TEACHER)
    assert ended.json()["state"] == "ended" and server.hub.is_ended(c["room_id"])
    again = await api.post(f"/api/classes/{c['class_id']}/join", headers=STUDENT)
    assert (again.status_code, again.json()["error"]) == (409, "this class has ended")


async def test_bad_bodies_and_callers_get_clear_errors(api: httpx.AsyncClient) -> None:
    many = await api.post("/api/classes", json={"titel": "x", "grade": 13}, headers=TEACHER)
    assert many.status_code == 422
    errors = many.json()["errors"]
    assert set(errors) == {"titel", "title", "subject", "grade", "starts_unix", "duration_min"}
    assert errors["grade"] == "must be a school grade from 1 to 12"
    for raw in (b"[" * 10_000, b"\xff\xfe", b"[1, 2]", b"{" * 20_000):
        r = await api.post("/api/classes", content=raw, headers=TEACHER)
        assert (r.status_code, r.json()["field"]) == (422, "body"), raw[:8]
    assert (await api.post("/api/classes", json=new_class(), headers=STUDENT)).status_code == 403
    assert (await api.post("/api/classes", json=new_class())).status_code == 401
    assert (await api.get("/api/classes/not-an-id", headers=TEACHER)).status_code == 404
    r = await api.get("/api/classes/code/0O1I", headers=STUDENT)
    assert (r.status_code, r.json()["field"]) == (422, "code")
    assert (await api.get("/api/classes/code/ABCDEF", headers=STUDENT)).status_code == 404


async def test_classes_are_shared_through_redis_between_two_servers(start_server: StartServer) -> None:
    """Two server processes on one Redis (as several nodes run): a class scheduled on one is
    found by its code and joined on the other."""
    shared = {"redis_url": REDIS_URL, "redis_prefix": f"tw-classes-api-{secrets.token_hex(6)}:"}
    one, two = await start_server(**shared), await start_server(**shared)
    try:
        async with httpx.AsyncClient(base_url=f"http://{one.base}") as a, \
                httpx.AsyncClient(base_url=f"http://{two.base}") as b:
            c = (await a.post("/api/classes", json=new_class(), headers=TEACHER)).json()
            seat = await b.post(f"/api/classes/code/{c['code']}/join", headers=STUDENT)
            assert seat.status_code == 200 and seat.json()["class"]["class_id"] == c["class_id"]
    finally:
        store = RedisClassStore(REDIS_URL, shared["redis_prefix"])
        await store.delete_all()
        await store.close()


async def test_attendance_follows_the_class_rooms_presence(api: httpx.AsyncClient, server: RunningServer) -> None:
    c = (await api.post("/api/classes", json=new_class(), headers=TEACHER)).json()
    teacher_seat = (await api.post(f"/api/classes/{c['class_id']}/join", headers=TEACHER)).json()
    student_seat = (await api.post(f"/api/classes/{c['class_id']}/join", headers=STUDENT)).json()
    url = f"ws://{server.base}{teacher_seat['ws_path']}"
    presenter = SessionClient(url, teacher_seat["token"], Role.PRESENTER)
    viewer = SessionClient(url, student_seat["token"], Role.VIEWER)
    await presenter.connect()
    await viewer.connect()
    await presenter.wait_for(lambda: presenter.replica.online.get(viewer.pid) is True)
    await viewer.close()
    await presenter.wait_for(lambda: presenter.replica.online.get(viewer.pid) is False)
    await server.app.state.attendance.settle()
    sheet = (await api.get(f"/api/classes/{c['class_id']}/attendance", headers=TEACHER)).json()
    stays = {(s["user_id"], s["role"]): s for s in sheet["stays"]}
    assert set(stays) == {("t.wang", "presenter"), ("s.zhang", "viewer")} and sheet["attendees"] == 1
    assert stays[("s.zhang", "viewer")]["left_unix"] is not None
    assert stays[("t.wang", "presenter")]["left_unix"] is None  # still there
    await presenter.close()
