"""The catalogue and knowledge-state endpoints, and the request form's fields (only, notice),
through the real server."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets

from matcher.records import Pool, TutorRecord
from matcher.settings import MatcherSettings
from sessionserver.auth import TokenSigner
from tests.conftest import SECRET, StartServer


def auth(user: str, role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TokenSigner(SECRET).mint_api(user, role, int(time.time()) + 600)}"}


async def test_catalogue_search_knowledge_and_export(start_server: StartServer) -> None:
    srv = await start_server(matcher=MatcherSettings(batch_interval_s=0.05, exploration=0.0))
    m = srv.app.state.matching.matcher
    await m.upsert_tutor(TutorRecord("wang", "Wang Fang", (Pool("math", "junior"),), ("math.algebra",)))
    student, tutor, admin = auth("stu1", "student"), auth("wang", "tutor"), auth("boss", "admin")
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        subjects = (await http.get("/api/catalogue", headers=student)).json()["subjects"]
        assert [s["id"] for s in subjects][:2] == ["math", "physics"] and subjects[0]["zh"] == "数学"
        tree = (await http.get("/api/catalogue/chemistry", headers=student)).json()
        assert tree["children"][0]["grade"] == 9
        assert (await http.get("/api/catalogue/music", headers=student)).status_code == 404
        found = (await http.get("/api/catalogue/search", params={"q": "因式分解", "kinds": "point"},
                                headers=student)).json()
        assert [r["id"] for r in found["results"]] == ["math.algebra.factoring"]
        assert found["results"][0]["parent"] == "math.g8a.c14"
        for params, field in (({"q": ""}, "q"), ({"q": "x" * 101}, "q"), ({"q": "x", "grade": "13"}, "grade"),
                              ({"q": "x", "kinds": "unit"}, "kinds"), ({"q": "x", "limit": "0"}, "limit")):
            bad = await http.get("/api/catalogue/search", params=params, headers=student)
            assert bad.status_code == 422 and bad.json()["field"] == field
        assert (await http.get("/api/catalogue")).status_code == 401
        # A request with an id outside the catalogue is refused for that field.
        bad = await http.post("/api/requests", json={"subject": "math", "grade": 8, "knowledge_points": ["kp1"]},
                              headers=student)
        assert bad.status_code == 422 and bad.json()["field"] == "knowledge_points"
        # Direct to an offline tutor: the reply says so at once.
        body = {"subject": "math", "grade": 8, "knowledge_points": ["math.algebra.factoring"], "favourite": "wang",
                "direct": True}
        made = (await http.post("/api/requests", json=body, headers=student)).json()
        assert (made["notice"], made["only"]) == ("favourite_offline", False) and made["notice_text"]
        rid = made["request_id"]
        async with websockets.connect(f"ws://{srv.base}/ws/matcher") as push:
            await push.send(json.dumps({"token": tutor["authorization"].split()[1]}))
            await http.post("/api/tutor/availability", json={"available": True}, headers=tutor)
            while (message := json.loads(await asyncio.wait_for(push.recv(), 10)))["type"] != "offer":
                pass
        assert message["request"]["request_id"] == rid  # the favourite, coming online, gets it
        accepted = (await http.post(f"/api/offers/{rid}/accept", headers=tutor)).json()
        session_id = accepted["join"]["session_id"]
        await http.post(f"/api/sessions/{session_id}/outcome", json={"rating": 4, "check": 0.2}, headers=student)
        mine = (await http.get("/api/knowledge/stu1", params={"lang": "zh"}, headers=student)).json()
        assert mine["points"][0]["name"] == "因式分解" and mine["points"][0]["level"] in ("weak", "learning")
        theirs = (await http.get("/api/knowledge/stu1", headers=tutor)).json()
        assert theirs["points"][0]["says"].startswith(("is weak", "is getting"))
        assert (await http.get("/api/knowledge/stu2", headers=tutor)).status_code == 403
        assert (await http.get("/api/knowledge/stu2", headers=student)).status_code == 403
        assert (await http.get("/api/knowledge/stu1", params={"lang": "fr"}, headers=student)).status_code == 422
        csv_text = (await http.get("/api/knowledge-export", headers=admin)).text
        assert csv_text.startswith("\ufeffstudent_id,subject,knowledge_point") and "stu1,math" in csv_text
        assert (await http.get("/api/knowledge-export", headers=student)).status_code == 403


async def test_tutor_snapshot_says_when_the_next_offer_can_come(start_server: StartServer) -> None:
    """GET /api/me tells a tutor who let an offer lapse when the cool-down ends (0.0 before)."""
    srv = await start_server(matcher=MatcherSettings(batch_interval_s=0.05, offer_lease_s=0.5,
                                                     ignore_cooldown_s=120.0))
    m = srv.app.state.matching.matcher
    await m.upsert_tutor(TutorRecord("li", "Li Na", (Pool("math", "junior"),), ()))
    student, tutor = auth("stu9", "student"), auth("li", "tutor")
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        async with websockets.connect(f"ws://{srv.base}/ws/matcher") as push:
            await push.send(json.dumps({"token": tutor["authorization"].split()[1]}))
            await http.post("/api/tutor/availability", json={"available": True}, headers=tutor)
            assert (await http.get("/api/me", headers=tutor)).json()["cooldown_until"] == 0.0
            body = {"subject": "math", "grade": 8, "knowledge_points": ["math.algebra.factoring"]}
            assert (await http.post("/api/requests", json=body, headers=student)).status_code == 201
            while json.loads(await asyncio.wait_for(push.recv(), 10))["type"] != "offer_withdrawn":
                pass
        me = (await http.get("/api/me", headers=tutor)).json()
        assert me["state"] == "available" and me["cooldown_until"] > time.time() + 100
