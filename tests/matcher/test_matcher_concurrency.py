"""Many matcher workers on one real Redis: nobody is ever offered two requests at once, no request
is offered to two tutors, every request ends accepted, cancelled or expired, and a worker that
dies mid-batch loses nothing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence

from matcher import RequestState, TutorState
from matcher.catalogue import catalogue
from matcher.indexes import LEASES
from matcher.redis_store import RedisStore
from matcher.service import Matcher
from matcher.settings import MatcherSettings
from matcher.store import Commit, Store
from matcher.worker import MatchWorker
from tests.matcherkit import T0, close_store, open_store, tutor

SUBJECTS = ("math", "physics")
BANDS = ("primary-lower", "primary-upper", "junior", "senior")
GRADES = {"primary-lower": 2, "primary-upper": 5, "junior": 8, "senior": 11}
TICK = 5.0  # virtual seconds between worker rounds
POINTS = {s: [p.id for p in catalogue().of_kind("point", s)][:7] for s in SUBJECTS}  # seven of each subject


class Sim:
    """Tutors and students who answer offers, hold sessions, go silent and cancel, seeded."""

    def __init__(self, matcher: Matcher, rng: random.Random, n_tutors: int) -> None:
        self.m = matcher
        self.rng = rng
        self.tutor_ids = [f"t{i:03d}" for i in range(n_tutors)]
        self.request_ids: list[str] = []
        self.session_ends: dict[str, float] = {}

    async def setup(self, now: float) -> None:
        for i, tid in enumerate(self.tutor_ids):
            subject = SUBJECTS[i % 2]
            bands = [BANDS[i % 4]] + ([BANDS[(i + 1) % 4]] if i % 3 == 0 else [])
            await self.m.upsert_tutor(tutor(tid, [(subject, b) for b in bands], [POINTS[subject][i % 7]]))
            await self.m.set_availability(tid, True, now)

    async def arrive(self, count: int, now: float) -> None:
        for _ in range(count):
            n = len(self.request_ids)
            band = self.rng.choice(BANDS)
            subject = self.rng.choice(SUBJECTS)
            body = {"subject": subject, "grade": GRADES[band],
                    "knowledge_points": [self.rng.choice(POINTS[subject])]}
            r = await self.m.create_request(f"s{n:05d}", body, now)
            self.request_ids.append(r.request_id)

    async def act(self, now: float) -> None:
        tutors = await self.m.store.get_tutors(self.tutor_ids)
        for t in tutors:
            assert t is not None
            if t.state is TutorState.OFFERED and t.offer is not None:
                roll = self.rng.random()
                if roll < 0.7:
                    await self.m.accept(t.tutor_id, t.offer.request_id, now)
                    self.session_ends[t.tutor_id] = now + self.rng.choice((TICK, 2 * TICK, 3 * TICK))
                elif roll < 0.85:
                    await self.m.decline(t.tutor_id, t.offer.request_id, now)
                # else: ignore it and let the lease run out
            elif t.state is TutorState.IN_SESSION and self.session_ends.get(t.tutor_id, 0) <= now:
                await self.m.set_availability(t.tutor_id, True, now)
            elif t.state is TutorState.OFFLINE and self.rng.random() < 0.5:
                await self.m.set_availability(t.tutor_id, True, now)
            if t.state is not TutorState.OFFLINE and self.rng.random() > 0.01:  # 1% go silent
                await self.m.heartbeat(t.tutor_id, now)
        for rid in self.rng.sample(self.request_ids, k=min(3, len(self.request_ids))):
            r = await self.m.request(rid)
            if not r.state.terminal and self.rng.random() < 0.5:
                await self.m.cancel_request(rid, r.student_id, now)


async def check_one_offer_each(store: Store, sim: Sim) -> None:
    """Every offered tutor holds exactly the offer of one offered request, and the reverse."""
    tutors = [t for t in await store.get_tutors(sim.tutor_ids) if t is not None]
    requests = [r for r in await store.get_requests(sim.request_ids) if r is not None]
    held = {t.tutor_id: t.offer for t in tutors if t.state is TutorState.OFFERED}
    offered = [r for r in requests if r.state is RequestState.OFFERED]
    assert all(t.offer is None for t in tutors if t.state is not TutorState.OFFERED)
    assert Counter(r.offer.tutor_id for r in offered if r.offer).most_common(1)[0][1] <= 1 if offered else True
    assert {r.offer.tutor_id: r.offer for r in offered if r.offer} == held


def check_offer_log(offers: Sequence[tuple[str, str, float]]) -> None:
    """Within one round (one ``now``), no tutor and no request was offered twice."""
    by_round: dict[float, list[tuple[str, str]]] = {}
    for request_id, tutor_id, at in offers:
        by_round.setdefault(at, []).append((request_id, tutor_id))
    for pairs in by_round.values():
        assert len({r for r, _ in pairs}) == len(pairs), "a request was offered twice in one round"
        assert len({t for _, t in pairs}) == len(pairs), "a tutor was offered two requests in one round"


async def run_rounds(workers: Sequence[MatchWorker], sim: Sim, store: Store, now: float, limit: int) -> float:
    for _ in range(limit):
        await asyncio.gather(*(w.step(now) for w in workers))
        await check_one_offer_each(store, sim)
        requests = await store.get_requests(sim.request_ids)
        if all(r is not None and r.state.terminal for r in requests):
            return now
        await sim.act(now + TICK / 2)
        now += TICK
    raise AssertionError("requests still open after the round limit")


async def test_eight_workers_2000_requests_500_tutors() -> None:
    settings = MatcherSettings(offer_lease_s=3 * TICK, heartbeat_timeout_s=4 * TICK, ignore_cooldown_s=2 * TICK,
                               load_cap=20)
    stores = [await open_store("redis") for _ in range(9)]
    prefix = stores[0].prefix if isinstance(stores[0], RedisStore) else ""
    for s in stores[1:]:
        assert isinstance(s, RedisStore)
        s.prefix = prefix
    try:
        sim = Sim(Matcher(stores[0], settings), random.Random(8), 500)
        await sim.setup(T0)
        # Locks off: all eight workers compete for every pool, so only compare-and-set stands
        # between them and a double booking.
        workers = [MatchWorker(Matcher(s, settings), f"w{i}", use_locks=False) for i, s in enumerate(stores[1:])]
        now = T0
        for _ in range(10):  # 2,000 requests arrive over ten rounds, while matching goes on
            await sim.arrive(200, now)
            await asyncio.gather(*(w.step(now) for w in workers))
            await check_one_offer_each(stores[0], sim)
            await sim.act(now + TICK / 2)
            now += TICK
        await run_rounds(workers, sim, stores[0], now, limit=400)
        final = Counter(r.state for r in await stores[0].get_requests(sim.request_ids) if r)
        assert sum(final.values()) == 2000
        assert set(final) <= {RequestState.ACCEPTED, RequestState.CANCELLED, RequestState.EXPIRED}
        assert final[RequestState.ACCEPTED] > 1500
        offers = await sim.m.offers_made()
        check_offer_log([(o.request_id, o.tutor_id, o.offered_at) for o in offers])
        assert sum(w.offers_made for w in workers) == len(offers)
        # every worker competed (chose pairs); which of them wins the compare-and-set is a race:
        # on a loaded machine the first to run may win every round
        assert len({w.worker_id for w in workers if w.decisions}) > 1
    finally:
        for s in stores:
            await close_store(s)


class DiesAfter:
    """A store whose worker dies (raises) after ``n`` successful commits, mid-batch."""

    def __init__(self, inner: Store, n: int) -> None:
        self.inner = inner
        self.left = n

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def commit(self, commit: Commit) -> bool:
        if self.left <= 0:
            raise ConnectionError("worker killed")
        ok = await self.inner.commit(commit)
        self.left -= ok
        return ok

    async def commit_many(self, commits: Sequence[Commit]) -> list[int]:
        """The first ``n`` reach Redis, then the worker dies before it hears back."""
        done = await self.inner.commit_many(commits[: self.left])
        self.left -= sum(1 for n in done if n)
        if len(done) < len(commits):
            raise ConnectionError("worker killed")
        return done


async def test_worker_killed_mid_batch_loses_no_request() -> None:
    settings = MatcherSettings(offer_lease_s=30)
    store, other = await open_store("redis"), await open_store("redis")
    assert isinstance(store, RedisStore) and isinstance(other, RedisStore)
    other.prefix = store.prefix
    try:
        sim = Sim(Matcher(store, settings), random.Random(9), 20)
        await sim.setup(T0)
        await sim.arrive(30, T0)
        doomed = MatchWorker(Matcher(DiesAfter(store, 5), settings), "doomed")  # type: ignore[arg-type]
        try:
            await doomed.step(T0)
        except ConnectionError:
            pass
        else:
            raise AssertionError("the doomed worker should have died")
        leased = await store.zrange(LEASES)
        assert len(leased) == 5  # its claims are in Redis with leases, nothing else happened
        survivor = MatchWorker(Matcher(other, settings), "survivor")
        for tid in sim.tutor_ids:
            await sim.m.heartbeat(tid, T0 + 29)
        await survivor.step(T0 + 31)  # the dead worker's leases ran out: back in play, for others
        for rid in leased:
            r = await sim.m.request(rid)
            assert len(r.excluded) == 1  # the dead worker's pick, who let it lapse
            assert r.state is RequestState.QUEUED or (r.offer is not None and r.offer.tutor_id not in r.excluded)
        await run_rounds([survivor], sim, store, T0 + 31 + TICK, limit=200)
        states = Counter(r.state for r in await store.get_requests(sim.request_ids) if r)
        assert sum(states.values()) == 30 and all(s.terminal for s in states)
    finally:
        await close_store(store)
        await other.close()
