"""The matcher over both stores (memory and the real Redis): one contract, same behaviour."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from matcher import Conflict, Forbidden, NotFound, RequestState, TutorState, ValidationFailed
from matcher.indexes import LEASES, ONLINE
from matcher.service import Matcher
from matcher.store import MatchEvent, Store, build_commit
from matcher.worker import MatchWorker
from tests.matcherkit import T0, roster, settings, store, tutor

__all__ = ["store"]

MATH7 = {"subject": "math", "grade": 7, "knowledge_points": ["math.algebra.linear-equations"]}


async def offered_to(m: Matcher, request_id: str) -> str:
    r = await m.request(request_id)
    assert r.state is RequestState.OFFERED and r.offer is not None
    return r.offer.tutor_id


async def test_request_offer_accept(store: Store) -> None:
    m = Matcher(store, settings(exploration=0.0))
    w = MatchWorker(m)
    await roster(m, tutor("wang", strengths=["math.algebra"]), tutor("li"))
    r = await m.create_request("s1", MATH7, T0)
    assert r.state is RequestState.QUEUED and r.band == "junior"
    assert await w.step(T0 + 1) == 1
    chosen = await offered_to(m, r.request_id)
    assert chosen == "wang"  # declared strength in algebra
    assert (await m.tutor("wang")).state is TutorState.OFFERED
    assert await w.step(T0 + 2) == 0  # nobody is offered twice
    match = await m.accept("wang", r.request_id, T0 + 3)
    assert match.request.state is RequestState.ACCEPTED and match.request.session_id == match.session_id
    assert (await m.tutor("wang")).state is TutorState.IN_SESSION
    assert (await m.tutor("li")).state is TutorState.AVAILABLE
    with pytest.raises(Conflict):
        await m.accept("wang", r.request_id, T0 + 4)


async def test_decline_goes_to_next_best_at_once(store: Store) -> None:
    m = Matcher(store, settings(exploration=0.0))
    w = MatchWorker(m)
    await roster(m, tutor("wang", strengths=["math.algebra"]), tutor("li"))
    r = await m.create_request("s1", MATH7, T0)
    await w.step(T0 + 1)
    assert await offered_to(m, r.request_id) == "wang"
    back = await m.decline("wang", r.request_id, T0 + 2)
    assert back.state is RequestState.QUEUED and back.excluded == ("wang",)
    await w.step(T0 + 2.5)
    assert await offered_to(m, r.request_id) == "li"
    with pytest.raises(Conflict):
        await m.accept("wang", r.request_id, T0 + 3)


async def test_ignored_offer_expires_then_cooldown(store: Store) -> None:
    s = settings(offer_lease_s=30, ignore_cooldown_s=100)
    m = Matcher(store, s)
    w = MatchWorker(m)
    await roster(m, tutor("wang"))
    first = await m.create_request("s1", MATH7, T0)
    await w.step(T0)
    assert await offered_to(m, first.request_id) == "wang"
    await m.heartbeat("wang", T0 + 29)
    await w.step(T0 + 29.9)
    assert (await m.request(first.request_id)).state is RequestState.OFFERED
    await w.step(T0 + 30)  # the lease ran out
    r = await m.request(first.request_id)
    assert r.state is RequestState.QUEUED and "wang" in r.excluded
    t = await m.tutor("wang")
    assert t.state is TutorState.AVAILABLE and t.cooldown_until == T0 + 130
    second = await m.create_request("s2", MATH7, T0 + 31)
    await m.heartbeat("wang", T0 + 40)
    await w.step(T0 + 41)
    assert (await m.request(second.request_id)).state is RequestState.QUEUED  # cooling down
    await m.heartbeat("wang", T0 + 129)
    await w.step(T0 + 131)
    assert await offered_to(m, second.request_id) == "wang"


async def test_heartbeat_loss_returns_offer(store: Store) -> None:
    m = Matcher(store, settings(heartbeat_timeout_s=30))
    w = MatchWorker(m)
    await roster(m, tutor("wang"), tutor("li"))
    r = await m.create_request("s1", MATH7, T0)
    await w.step(T0)
    holder = await offered_to(m, r.request_id)
    other = "li" if holder == "wang" else "wang"
    await m.heartbeat(other, T0 + 25)
    await w.step(T0 + 31)  # the holder has been silent for 31 s
    assert (await m.tutor(holder)).state is TutorState.OFFLINE
    assert (await m.tutor(other)).state is TutorState.OFFERED
    assert await offered_to(m, r.request_id) == other
    with pytest.raises(Conflict):
        await m.heartbeat(holder, T0 + 32)


async def test_cancel_during_offer_releases_tutor(store: Store) -> None:
    m = Matcher(store, settings())
    w = MatchWorker(m)
    await roster(m, tutor("wang"))
    sub = await store.subscribe()
    try:
        r = await m.create_request("s1", MATH7, T0)
        await w.step(T0)
        with pytest.raises(Forbidden):
            await m.cancel_request(r.request_id, "someone-else", T0 + 1)
        cancelled = await m.cancel_request(r.request_id, "s1", T0 + 1)
        assert cancelled.state is RequestState.CANCELLED
        assert (await m.tutor("wang")).state is TutorState.AVAILABLE
        with pytest.raises(Conflict):
            await m.accept("wang", r.request_id, T0 + 2)
        with pytest.raises(Conflict):
            await m.cancel_request(r.request_id, "s1", T0 + 2)
        kinds: list[tuple[str, str]] = []
        while not kinds or kinds[-1] != ("wang", "offer_withdrawn"):
            e = await asyncio.wait_for(sub.get(), 5)
            kinds.append((e.user_id, e.kind))
        assert ("wang", "offer") in kinds and ("s1", "request") in kinds
    finally:
        await sub.close()


async def test_request_expires(store: Store) -> None:
    m = Matcher(store, settings(request_ttl_s=900))
    w = MatchWorker(m)
    r = await m.create_request("s1", MATH7, T0)
    await w.step(T0 + 899)
    assert (await m.request(r.request_id)).state is RequestState.QUEUED
    await w.step(T0 + 900)
    assert (await m.request(r.request_id)).state is RequestState.EXPIRED
    again = await m.create_request("s1", MATH7, T0 + 901)  # an expired request is no longer open
    assert again.state is RequestState.QUEUED


async def test_direct_request_only_to_named_tutor_then_opens(store: Store) -> None:
    m = Matcher(store, settings())
    w = MatchWorker(m)
    await roster(m, tutor("wang", strengths=["math"]), tutor("zhao"))
    r = await m.create_request("s1", {**MATH7, "favourite": "zhao", "direct": True}, T0)
    await w.step(T0)
    assert await offered_to(m, r.request_id) == "zhao"
    await m.decline("zhao", r.request_id, T0 + 1)
    back = await m.request(r.request_id)
    assert not back.direct and back.favourite == "zhao"
    await w.step(T0 + 2)
    assert await offered_to(m, r.request_id) == "wang"


async def test_validation_and_unknowns(store: Store) -> None:
    m = Matcher(store, settings())
    bad = [({"subject": "Math!", "grade": 7}, "subject"), ({"subject": "math", "grade": 13}, "grade"),
           ({"subject": "math", "grade": True}, "grade"), ({**MATH7, "knowledge_points": "x"}, "knowledge_points"),
           ({**MATH7, "knowledge_points": ["ok"] * 17}, "knowledge_points"), ({**MATH7, "text": 5}, "text"),
           ({**MATH7, "direct": True}, "direct"), ({**MATH7, "favourite": "nobody"}, "favourite")]
    for body, field in bad:
        with pytest.raises(ValidationFailed) as info:
            await m.create_request("s1", body, T0)
        assert info.value.field == field
    with pytest.raises(NotFound):
        await m.request("rq_missing")
    with pytest.raises(NotFound):
        await m.accept("ghost", "rq_missing", T0)
    await m.create_request("s1", MATH7, T0)
    with pytest.raises(Conflict):
        await m.create_request("s1", MATH7, T0)


async def test_compare_and_set_refuses_stale_writes(store: Store) -> None:
    from matcher import transitions as tr
    from matcher.store import build_commit

    m = Matcher(store, settings())
    await roster(m, tutor("wang"), tutor("li"))
    r = await m.create_request("s1", MATH7, T0)
    wang, li = await m.tutor("wang"), await m.tutor("li")
    a = tr.make_offer(r, wang, T0, m.settings)
    b = tr.make_offer(r, li, T0, m.settings)
    results = await asyncio.gather(store.commit(build_commit([r, wang], list(a))),
                                   store.commit(build_commit([r, li], list(b))))
    assert sorted(results) == [False, True]
    states = {(await m.tutor(t)).state for t in ("wang", "li")}
    assert states == {TutorState.OFFERED, TutorState.AVAILABLE}


async def test_outcome_updates_profile_once(store: Store) -> None:
    m = Matcher(store, settings())
    w = MatchWorker(m)
    await roster(m, tutor("wang"))
    r = await m.create_request("s1", MATH7, T0)
    await w.step(T0)
    match = await m.accept("wang", r.request_id, T0 + 1)
    before = await m.profile("wang")
    with pytest.raises(Forbidden):
        await m.report_outcome(match.session_id, "s2", 5)
    with pytest.raises(ValidationFailed):
        await m.report_outcome(match.session_id, "s1", 6)
    await m.report_outcome(match.session_id, "s1", 5, 1.0)
    after = await m.profile("wang")
    assert after["estimates"][0]["mean"] > before["estimates"][0]["mean"]
    assert after["estimates"][0]["knowledge_points"]["math.algebra.linear-equations"]["sessions"] == 1.0
    with pytest.raises(Conflict):
        await m.report_outcome(match.session_id, "s1", 5)
    with pytest.raises(NotFound):
        await m.report_outcome("s_nope", "s1", 5)
    assert (await m.pair_history(["s1"]))[("s1", "wang")] == (1.0, 1.0)


async def test_subscription_sees_events_in_order(store: Store) -> None:
    sub = await store.subscribe()
    try:
        m = Matcher(store, settings())
        r = await m.create_request("s9", MATH7, T0)
        await m.cancel_request(r.request_id, "s9", T0 + 1)
        first, second = await asyncio.wait_for(sub.get(), 5), await asyncio.wait_for(sub.get(), 5)
        assert isinstance(first, MatchEvent) and first.user_id == "s9"
        assert [first.data["request"]["state"], second.data["request"]["state"]] == ["queued", "cancelled"]
    finally:
        await sub.close()


async def test_poll_reads_changes_and_due_ranges_in_one_snapshot(store: Store) -> None:
    """A worker's step starts with one poll: the keys changed since a change number, each with
    the number of its latest change, and the sweep's ranges; commits say their change numbers."""
    m = Matcher(store, settings(heartbeat_timeout_s=10_000))
    start = (await store.poll(0, [])).latest
    await roster(m, tutor("wang"), tutor("li"), now=T0)
    p = await store.poll(start, [(ONLINE, T0, 10), (ONLINE, None, 1), (LEASES, None, 10)])
    numbers = dict(p.changes or [])
    assert set(numbers) == {"t:wang", "t:li"} and max(numbers.values()) == p.latest
    assert p.ranges[0] in (["li", "wang"], ["wang", "li"]) and len(p.ranges[1]) == 1 and p.ranges[2] == []
    assert (await store.poll(p.latest, [])).changes == []
    wang = await m.tutor("wang")
    stale = build_commit([wang], [replace(wang, name="W", version=wang.version + 1)])
    li = await m.tutor("li")
    fresh = build_commit([li], [replace(li, name="L", version=li.version + 1)])
    done = await store.commit_many([stale, stale, fresh])
    assert done == [p.latest + 1, 0, p.latest + 2]  # the second found wang's version moved on
    assert (await m.tutor("li")).name == "L"
    assert dict((await store.poll(p.latest, [])).changes or []) == {"t:wang": p.latest + 1, "t:li": p.latest + 2}


async def test_working_set_does_not_read_back_its_own_offers(store: Store) -> None:
    m = Matcher(store, settings(heartbeat_timeout_s=10_000, exploration=0.0))
    w = MatchWorker(m)
    await roster(m, tutor("wang"), tutor("li"))
    await w.step(T0)
    r = await m.create_request("s1", MATH7, T0 + 1)
    await w.step(T0 + 1)  # reads the new request, offers it
    held = await offered_to(m, r.request_id)
    before = w.ws.keys_reread
    await w.step(T0 + 2)  # its own offer's two records: not read back
    assert w.ws.keys_reread == before
    assert w.ws.requests[r.request_id].state is RequestState.OFFERED and w.ws.tutors[held].offer is not None
    await m.decline(held, r.request_id, T0 + 3)  # somebody else's change: read
    await w.step(T0 + 4)
    assert w.ws.keys_reread == before + 2
    assert held in w.ws.requests[r.request_id].excluded
