"""Direct and favourite requests that cannot starve, competency tracking through the service, and
the worker's working set kept current from the change log, on both stores."""

from __future__ import annotations

import asyncio

import pytest

from matcher import Conflict, RequestState, ValidationFailed
from matcher.memory_store import MemoryStore
from matcher.service import Matcher
from matcher.store import MatchEvent, Store, Subscription
from matcher.worker import MatchWorker
from tests.matcherkit import T0, roster, settings, store, tutor

__all__ = ["store"]

KP = "math.algebra.factoring"
MATH8 = {"subject": "math", "grade": 8, "knowledge_points": [KP]}


async def next_request_event(sub: Subscription, student: str) -> dict[str, object]:
    while True:
        e: MatchEvent = await asyncio.wait_for(sub.get(), 5)
        if e.user_id == student and e.kind == "request":
            return dict(e.data["request"])


async def test_direct_to_an_offline_tutor_tells_at_once_then_widens(store: Store) -> None:
    m = Matcher(store, settings(direct_widen_after_s=60, heartbeat_timeout_s=10_000))
    w = MatchWorker(m)
    await roster(m, tutor("li"))
    await roster(m, tutor("zhao"), available=False)
    sub = await store.subscribe()
    try:
        r = await m.create_request("s1", {**MATH8, "favourite": "zhao", "direct": True}, T0)
        assert r.notice == "favourite_offline" and r.public()["notice_text"].startswith("the tutor you asked for")
        assert (await next_request_event(sub, "s1"))["notice"] == "favourite_offline"  # pushed at once
        await m.heartbeat("li", T0 + 29)
        await w.step(T0 + 59)
        assert (await m.request(r.request_id)).state is RequestState.QUEUED  # still waiting for zhao
        await m.heartbeat("li", T0 + 59)
        await w.step(T0 + 60)
        widened = await m.request(r.request_id)
        assert widened.state is RequestState.OFFERED and not widened.direct and widened.notice == "widened"
        assert widened.offer is not None and widened.offer.tutor_id == "li"
        pushed = await next_request_event(sub, "s1")
        assert (pushed["notice"], pushed["direct"]) == ("widened", False)
    finally:
        await sub.close()


async def test_only_this_tutor_waits_and_ends_when_refused(store: Store) -> None:
    m = Matcher(store, settings(direct_widen_after_s=60, request_ttl_s=3600, heartbeat_timeout_s=10_000))
    w = MatchWorker(m)
    await roster(m, tutor("li"))
    await roster(m, tutor("zhao"), available=False)
    with pytest.raises(ValidationFailed) as info:
        await m.create_request("s0", {**MATH8, "only": True}, T0)
    assert info.value.field == "only"
    r = await m.create_request("s1", {**MATH8, "favourite": "zhao", "direct": True, "only": True}, T0)
    await m.heartbeat("li", T0 + 25)
    await w.step(T0 + 26)
    await m.heartbeat("li", T0 + 50)
    await w.step(T0 + 120)  # long past the widening wait: it is still zhao's alone
    assert (await m.request(r.request_id)).state is RequestState.QUEUED
    await m.set_availability("zhao", True, T0 + 121)  # the tutor comes online and gets it first
    await m.heartbeat("li", T0 + 121)
    await w.step(T0 + 122)
    assert (await m.request(r.request_id)).offer.tutor_id == "zhao"  # type: ignore[union-attr]
    refused = await m.decline("zhao", r.request_id, T0 + 123)
    assert (refused.state, refused.notice) == (RequestState.EXPIRED, "favourite_declined_only")


async def test_a_favourite_coming_online_gets_the_waiting_request_first(store: Store) -> None:
    m = Matcher(store, settings(exploration=0.0, heartbeat_timeout_s=10_000))
    w = MatchWorker(m)
    await roster(m, tutor("zhao"), available=False)
    r = await m.create_request("s1", {**MATH8, "favourite": "zhao", "direct": True}, T0)
    # Better-fitting tutors come online at the same moment as the favourite: the favourite wins.
    await roster(m, tutor("wang", strengths=["math.algebra"]), tutor("zhao"), tutor("li", strengths=["math"]),
                 now=T0 + 30)
    await w.step(T0 + 31)
    assert (await m.request(r.request_id)).offer.tutor_id == "zhao"  # type: ignore[union-attr]
    # Also a plain (not direct) favourite: among free tutors, they come first.
    await m.decline("zhao", r.request_id, T0 + 32)
    plain = await m.create_request("s2", {**MATH8, "favourite": "li"}, T0 + 33)
    await w.step(T0 + 34)
    assert (await m.request(plain.request_id)).offer.tutor_id == "li"  # type: ignore[union-attr]


async def test_outcomes_train_the_knowledge_state_and_the_matcher_reads_it(store: Store) -> None:
    m = Matcher(store, settings(exploration=0.0, heartbeat_timeout_s=10_000))
    w = MatchWorker(m)
    await roster(m, tutor("wang"))
    weak, strong = "math.algebra.factoring", "math.geometry.congruent-triangles"
    r = await m.create_request("s1", {"subject": "math", "grade": 8, "knowledge_points": [weak, strong]}, T0)
    await w.step(T0)
    match = await m.accept("wang", r.request_id, T0 + 1)
    await m.report_outcome(match.session_id, "s1", 4, 0.5, T0 + 700)
    states = await m.knowledge_state("s1")
    assert set(states) == {weak, strong} and states[weak].observations == 1
    view = await m.knowledge_view("s1", "zh")
    assert view["points"][0]["name"] in ("因式分解", "三角形全等的判定") and view["summary"]
    tutor_view = await m.knowledge_view("s1", "en", for_tutor=True)
    assert tutor_view["points"][0]["says"] in ("is getting there", "is weak here: start with this")
    rows = await m.knowledge_rows()
    assert {(row["student_id"], row["knowledge_point"]) for row in rows} == {("s1", weak), ("s1", strong)}
    # The worker's working set holds the state once it changes (read from the change log).
    await m.set_availability("wang", True, T0 + 701)
    again = await m.create_request("s1", {"subject": "math", "grade": 8, "knowledge_points": [weak]}, T0 + 702)
    await w.step(T0 + 702)
    assert w.ws.knowledge("s1")[weak].observations == 1
    assert (await m.request(again.request_id)).state is RequestState.OFFERED


async def test_fit_knowledge_stores_parameters_per_point(store: Store) -> None:
    m = Matcher(store, settings(heartbeat_timeout_s=10_000))
    w = MatchWorker(m)
    await roster(m, tutor("wang"))
    for i in range(4):
        r = await m.create_request(f"s{i}", MATH8, T0 + i * 1000)
        await m.heartbeat("wang", T0 + i * 1000)
        await w.step(T0 + i * 1000)
        match = await m.accept("wang", r.request_id, T0 + i * 1000 + 1)
        await m.report_outcome(match.session_id, f"s{i}", 5, float(i % 2), T0 + i * 1000 + 2)
        await m.set_availability("wang", True, T0 + i * 1000 + 3)
    assert await m.fit_knowledge(min_observations=5) == {}  # too few checks yet
    fitted = await m.fit_knowledge(min_observations=4)
    assert set(fitted) == {KP} and set(await m.bkt_params()) == {KP}
    await w.step(T0 + 5000)
    assert set(w.ws.bkt_params()) == {KP}  # the worker read the new parameters from the change log


async def test_unknown_knowledge_points_are_refused(store: Store) -> None:
    m = Matcher(store, settings(heartbeat_timeout_s=10_000))
    for body, message in [({**MATH8, "knowledge_points": ["kp1"]}, "'kp1' is not in the knowledge-point catalogue"),
                          ({**MATH8, "subject": "music"}, "must be one of the catalogue's subjects"),
                          ({**MATH8, "knowledge_points": ["physics.optics"]}, "not a knowledge point, chapter")]:
        with pytest.raises(ValidationFailed) as info:
            await m.create_request("s1", body, T0)
        assert message in info.value.message


async def test_working_set_follows_changes_and_reloads_after_a_gap() -> None:
    store = MemoryStore(changelog_max=1_000)
    m = Matcher(store, settings(heartbeat_timeout_s=10_000))
    w = MatchWorker(m)
    await roster(m, tutor("wang"), available=False)
    await w.ws.refresh()
    assert w.ws.full_loads == 1 and "wang" in w.ws.tutors and not w.ws.free
    await m.set_availability("wang", True, T0)
    await w.ws.refresh()
    assert w.ws.full_loads == 1 and w.ws.free["math/junior"] == {"wang"}  # one change, one key re-read
    for i in range(2_100):  # more changes than the log keeps: the set starts again from scratch
        await m.upsert_tutor(tutor(f"t{i}"))
    await w.ws.refresh()
    assert w.ws.full_loads == 2 and len(w.ws.tutors) == 2_101
    r = await m.create_request("s1", MATH8, T0 + 1)
    await w.step(T0 + 1)
    assert (await m.request(r.request_id)).state is RequestState.OFFERED
    with pytest.raises(Conflict):
        await m.create_request("s1", MATH8, T0 + 2)
