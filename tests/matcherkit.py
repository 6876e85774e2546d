"""Helpers for matcher tests: both stores behind one fixture, a roster, and a stepping clock."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence

import pytest

from matcher.memory_store import MemoryStore
from matcher.records import Pool, TutorRecord
from matcher.redis_store import RedisStore
from matcher.service import Matcher
from matcher.settings import MatcherSettings
from matcher.store import Store

REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = 1_800_000_000.0  # a fixed wall-clock start; tests step time by hand


async def open_store(kind: str) -> Store:
    if kind == "memory":
        return MemoryStore()
    store = RedisStore(REDIS_URL, prefix=f"tw-test-{secrets.token_hex(6)}:")
    await store.redis.ping()  # type: ignore[misc]
    return store


async def close_store(store: Store) -> None:
    if isinstance(store, RedisStore):
        await store.delete_all()
    await store.close()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    s = await open_store(str(request.param))
    try:
        yield s
    finally:
        await close_store(s)


def tutor(tutor_id: str, pools: Sequence[tuple[str, str]] = (("math", "junior"),),
          strengths: Sequence[str] = ()) -> TutorRecord:
    return TutorRecord(tutor_id, name=tutor_id.title(), teaches=tuple(Pool(s, b) for s, b in pools),
                       strengths=tuple(strengths))


async def roster(matcher: Matcher, *tutors: TutorRecord, now: float = T0, available: bool = True) -> None:
    for t in tutors:
        await matcher.upsert_tutor(t)
        if available:
            await matcher.set_availability(t.tutor_id, True, now)


def settings(**kw: float) -> MatcherSettings:
    return MatcherSettings(**kw)  # type: ignore[arg-type]
