"""The matcher's figures (``MatcherWatch``) from a real matcher's event stream: a request offered
to one tutor who declines, then to another who accepts, with the clock stepped by hand."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from matcher.memory_store import MemoryStore
from matcher.service import Matcher
from matcher.worker import MatchWorker
from sessionserver.metrics import MatcherWatch
from tests.matcherkit import T0, roster, settings, tutor

MATH8 = {"subject": "math", "grade": 8, "knowledge_points": ["math.algebra.factoring"]}


async def test_offers_by_outcome_queue_length_and_time_to_match() -> None:
    store = MemoryStore()
    m = Matcher(store, settings(heartbeat_timeout_s=10_000))
    worker = MatchWorker(m)
    await roster(m, tutor("li"), tutor("zhao"))
    now = [T0]
    registry = CollectorRegistry()
    watch = MatcherWatch(registry, clock=lambda: now[0])
    sub = await store.subscribe()

    async def seen() -> None:  # what the matcher has published so far
        while True:
            try:
                watch.see(await asyncio.wait_for(sub.get(), 0.2))
            except TimeoutError:
                return

    r = await m.create_request("s1", MATH8, T0)
    await seen()
    assert [s for s, _ in watch.open.values()] == ["queued"]
    await worker.step(T0 + 1)
    await seen()
    assert [s for s, _ in watch.open.values()] == ["offered"] and watch.outcomes["offered"] == 1
    first = (await m.request(r.request_id)).offer
    assert first is not None
    await m.decline(first.tutor_id, r.request_id, T0 + 2)
    await worker.step(T0 + 3)
    await seen()
    second = (await m.request(r.request_id)).offer
    assert second is not None and second.tutor_id != first.tutor_id
    now[0] = T0 + 12.5
    await m.accept(second.tutor_id, r.request_id, now[0])
    await seen()
    await sub.close()
    assert dict(watch.outcomes) == {"offered": 2, "declined": 1, "accepted": 1}
    assert watch.open == {}
    assert registry.get_sample_value("tutorwire_matcher_time_to_match_seconds_count") == 1
    assert registry.get_sample_value("tutorwire_matcher_time_to_match_seconds_sum") == 12.5
