"""The matcher worker: every batch interval it sweeps expired leases, silent tutors and stale
requests, widens direct requests whose tutor did not come, then assigns each pool from its
working set (``workingset``: records and statistics in memory, kept current from the store's
change log). Any number of workers may run on one store: pool locks share
the work out, and the store's compare-and-set keeps them from ever double-booking anyone.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence

import msgpack
import numpy as np

from . import transitions as tr
from .assignment import assign_matrix, greedy
from .indexes import LEASES, ONLINE, OPEN, Record, record_key, tutor_key
from .lifecycle import RequestState
from .records import GRADE_BANDS, Pool, RequestRecord, TutorRecord, band_distance
from .scoring import BatchScorer, allowed_band_distance
from .service import Matcher, new_id, offer_events, withdrawn
from .store import Commit, MatchEvent, build_commit, change_numbers
from .workingset import WorkingSet

log = logging.getLogger("tutorwire.matcher")
SWEEP_LIMIT = 1_000
LOCK_HOLD = 5  # a pool lock lasts this many batch intervals (renewed with two left)


class MatchWorker:
    def __init__(
        self, matcher: Matcher, worker_id: str | None = None, max_batch_requests: int = 1_000,
        use_locks: bool = True, *, max_batch_tutors: int = 5_000, policy: str = "optimal",
        rng: np.random.Generator | None = None,
    ) -> None:
        if policy not in ("optimal", "greedy"):
            raise ValueError("policy must be optimal or greedy")
        self.matcher = matcher
        self.store = matcher.store
        self.settings = matcher.settings
        self.worker_id = worker_id or new_id("w_")
        self.max_batch_requests = max_batch_requests
        self.max_batch_tutors = max_batch_tutors
        self.use_locks = use_locks  # off only in tests that want every worker on every pool
        self.policy = policy  # "greedy": the first-come baseline benchmarks compare against
        self.rng = rng or np.random.default_rng()
        self.ws = WorkingSet(self.store)
        self._idle: dict[str, tuple[object, float]] = {}  # pool -> (what its empty batch saw, until when)
        self._locks: dict[str, float] = {}  # pool key -> until when (the step's clock) this worker holds it
        self.offers_made = 0
        self.last_refit = float("-inf")  # the first step refits knowledge tracing
        self.decisions = 0  # pairs the assignment chose (offers made or lost to a race)
        self.scorer = BatchScorer  # a benchmark's oracle replaces it (bench/matcher_sim.py)

    async def run(self, stop: asyncio.Event, clock: Callable[[], float] = time.time) -> None:
        """Sweep and assign every batch interval until ``stop`` is set."""
        while not stop.is_set():
            started = clock()
            try:
                await self.step(started)
            except Exception:  # a bad batch must not stop matching; the next one starts clean
                log.exception("matcher batch failed")
            delay = self.settings.batch_interval_s - (clock() - started)
            try:
                await asyncio.wait_for(stop.wait(), max(delay, 0.0))
            except TimeoutError:
                pass

    async def step(self, now: float) -> int:
        s = self.settings
        cutoff = now - s.heartbeat_timeout_s
        # One round trip: what changed since the last step, and what is due for the sweep.
        loads = self.ws.full_loads
        leases, silent, stale = await self.ws.refresh([
            (LEASES, now, SWEEP_LIMIT), (ONLINE, cutoff, SWEEP_LIMIT), (OPEN, now - s.request_ttl_s, SWEEP_LIMIT)])
        if self.ws.full_loads != loads:
            # The working set lives as long as the worker: out of the collector's full passes with
            # everything else loaded so far (each would otherwise walk every record, 60-70 ms a
            # pass with a programme's tutors held).
            gc.freeze()
        await self.sweep(now, leases, silent, stale)
        made = await self.assign_all(now)
        if now - self.last_refit >= s.bkt_refit_interval_s:
            self.last_refit = now
            # One worker refits (the lock lasts the interval); the fit runs off the event loop.
            if await self.store.try_lock("lock:bkt-refit", self.worker_id, s.bkt_refit_interval_s):
                await self.matcher.fit_knowledge()
        return made

    # -- sweep ---------------------------------------------------------------------------------

    async def sweep(self, now: float, leases: Sequence[str], silent: Sequence[str], stale: Sequence[str]) -> None:
        """Expired leases, silent tutors and requests past their time to live, from the working
        set's records (each change still a compare-and-set; one round trip for them all)."""
        ws, s = self.ws, self.settings
        pending: list[tuple[list[Record], Commit]] = []
        touched: set[str] = set()

        def add(old: list[Record], new: list[Record], events: list[MatchEvent]) -> None:
            keys = [record_key(x) for x in old]
            if touched.isdisjoint(keys):  # one change per record a step; the next step sees the rest
                touched.update(keys)
                pending.append((new, build_commit(old, new, events=events)))

        for request_id in leases:
            r = ws.requests.get(request_id)
            if r is None or r.offer is None or r.offer.expires_at > now:
                continue
            t = ws.tutors.get(r.offer.tutor_id)
            if t is not None and t.offer == r.offer:
                new_r, new_t = tr.decline(r, t, now, s, ignored=True)
                add([r, t], [new_r, new_t], withdrawn(t.tutor_id, new_r, "lease expired"))
            else:
                add([r], [tr.return_request(r, r.offer.tutor_id, now)], [])
        for request_id in stale:
            r = ws.requests.get(request_id)
            if r is None or r.state.terminal:
                continue
            new_r = tr.expire(r, now)
            old: list[Record] = [r]
            new: list[Record] = [new_r]
            if r.offer is not None and (t := ws.tutors.get(r.offer.tutor_id)) is not None and t.offer == r.offer:
                old.append(t)
                new.append(tr.release_tutor(t, now, s))
            add(old, new, withdrawn(r.offer.tutor_id, new_r, "request expired") if r.offer else [_request_event(new_r)])
        await self._commit(pending)
        lost = [t for tid in silent if (t := ws.tutors.get(tid)) is not None
                and t.last_seen <= now - s.heartbeat_timeout_s and tutor_key(tid) not in touched]
        for t in lost:  # rare: a tutor's connection lost (the service reads the offered request itself)
            await self.matcher.take_offline(t, now, "tutor lost")
        if lost:
            await ws.reload([t.tutor_id for t in lost], [t.offer.request_id for t in lost if t.offer is not None])

    async def _commit(self, pending: Sequence[tuple[Sequence[Record], Commit]]) -> list[bool]:
        """Commit each in one round trip; the working set takes the new records of those that
        held (and their change numbers, so it need not read them back)."""
        if not pending:
            return []
        results = await self.store.commit_many([c for _, c in pending])
        for (new, commit), number in zip(pending, results, strict=True):
            if number:
                for record in new:
                    self.ws.put(record)
                self.ws.note_own(change_numbers(commit, number))
        return [n > 0 for n in results]

    # -- assignment ----------------------------------------------------------------------------

    async def assign_all(self, now: float) -> int:
        await self._widen_direct(now)
        # Pools with free tutors and someone waiting for them (in the pool or widened to it).
        subjects_waiting = {Pool.parse(k).subject for k, q in self.ws.queued.items() if q}
        keys = [k for k in self.ws.pools() if self.ws.free.get(k) and Pool.parse(k).subject in subjects_waiting]
        if self.use_locks:
            keys = await self._locked(keys, now)
        offers: list[tuple[RequestRecord, TutorRecord, RequestRecord, TutorRecord, Commit]] = []
        for key in keys:
            offers += await self.assign_pool(Pool.parse(key), now)
        if not offers:
            return 0
        # One round trip for the step's offers; each is its own compare-and-set. The working set
        # already holds the offered records (so that the next pool saw the tutors taken).
        results = await self._commit([([new_r, new_t], c) for _, _, new_r, new_t, c in offers])
        lost = [(r.request_id, t.tutor_id) for (r, t, _, _, _), ok in zip(offers, results, strict=True) if not ok]
        if lost:  # the working set was behind on one of them: read both again
            rids, tids = [x[0] for x in lost], [x[1] for x in lost]
            for rid, fresh_r in zip(rids, await self.store.get_requests(rids), strict=True):
                self.ws.put_request(rid, fresh_r)
            for tid, fresh_t in zip(tids, await self.store.get_tutors(tids), strict=True):
                self.ws.put_tutor(tid, fresh_t)
        made = sum(results)
        self.offers_made += made
        return made

    async def _locked(self, keys: list[str], now: float) -> list[str]:
        """The pools of ``keys`` this worker holds the lock of. A lock lasts ``LOCK_HOLD`` batch
        intervals and is renewed when two are left, so most steps need no round trip for it."""
        interval = self.settings.batch_interval_s
        ask = [k for k in keys if self._locks.get(k, float("-inf")) - now < 2 * interval]
        if ask:
            got = await self.store.try_locks([f"lock:{k}" for k in ask], self.worker_id, LOCK_HOLD * interval)
            for k, ok in zip(ask, got, strict=True):
                if ok:
                    self._locks[k] = now + LOCK_HOLD * interval
                else:
                    self._locks.pop(k, None)
        return [k for k in keys if self._locks.get(k, float("-inf")) > now]

    async def _widen_direct(self, now: float) -> None:
        """Direct requests whose tutor has not taken them in ``direct_widen_after_s`` go to
        everyone (unless "only this tutor"), and the student is told."""
        due = now - self.settings.direct_widen_after_s
        widened = [(r, tr.widen(r)) for r in self.ws.requests.values()
                   if r.direct and not r.only and r.created_at <= due and r.state is RequestState.QUEUED]
        await self._commit([([new], build_commit([r], [new], events=[_request_event(new)])) for r, new in widened])

    async def assign_pool(
        self, pool: Pool, now: float,
    ) -> list[tuple[RequestRecord, TutorRecord, RequestRecord, TutorRecord, Commit]]:
        """The pool's batch: its offers, already in the working set, to be committed."""
        ws = self.ws
        tutors = ws.free_tutors(pool)[: self.max_batch_tutors]
        if not tutors:
            return []
        requests = self._candidates(pool, now, self.max_batch_requests, {t.tutor_id for t in tutors})
        if not requests:
            return []
        # A pool whose last batch found no allowed pair, with the same records and before any of
        # them can change by the clock alone (a cool-down ending, a request widening), would find
        # none again: skip it.
        signature = (tuple((t.tutor_id, t.version) for t in tutors), tuple((r.request_id, r.version) for r in requests))
        idle = self._idle.get(pool.key)
        if idle is not None and idle[0] == signature and now < idle[1]:
            return []
        await ws.prepare([t.tutor_id for t in tutors], requests, pool)
        m = self.matcher
        matrix = self.scorer(ws, now, m.settings, m.model, m.weights, self.rng).matrix(pool, requests, tutors)
        plan = (greedy if self.policy == "greedy" else assign_matrix)(requests, tutors, matrix)
        self.decisions += len(plan)
        if plan:
            self._idle.pop(pool.key, None)
        else:
            self._idle[pool.key] = (signature, self._wake_at(tutors, requests, now))
            return []
        by_r = {r.request_id: r for r in requests}
        by_t = {t.tutor_id: t for t in tutors}
        offers = []
        for pairing in plan:
            r, t = by_r[pairing.request_id], by_t[pairing.tutor_id]
            new_r, new_t = tr.make_offer(r, t, now, self.settings)
            assert new_r.offer is not None
            offers.append((r, t, new_r, new_t, build_commit(
                [r, t], [new_r, new_t], events=offer_events(new_r, new_r.offer),
                log=[msgpack.packb(new_r.offer.to_wire())])))
            ws.put_request(r.request_id, new_r)
            ws.put_tutor(t.tutor_id, new_t)
        return offers

    def _wake_at(self, tutors: list[TutorRecord], requests: list[RequestRecord], now: float) -> float:
        """The first moment at which the clock alone may allow a pair that is not allowed now."""
        s = self.settings
        times = [t.cooldown_until for t in tutors if t.cooldown_until > now]
        for t in tutors:
            live = [x for x in t.sessions if now - x < s.load_window_s]
            if len(live) >= s.load_cap:
                times.append(min(live) + s.load_window_s)
        for r in requests:
            times += [w for w in (r.created_at + s.widen_after_s, r.created_at + 2 * s.widen_after_s,
                                  r.created_at + s.direct_widen_after_s) if w > now]
        return min(times, default=float("inf"))

    def _candidates(self, pool: Pool, now: float, limit: int, free: set[str]) -> list[RequestRecord]:
        """The requests this pool's free tutors may take: its queued ones and those of the
        subject's other bands that have waited long enough to be widened to it; a direct one only
        while its tutor is free here. Every request naming a free tutor as its favourite, then the
        oldest, up to twice as many as there are free tutors (at least 32), so that a batch costs
        in proportion to the tutors it can place."""
        found = self.ws.queued_requests(pool)
        for band in GRADE_BANDS:
            if band != pool.band:
                found += [r for r in self.ws.queued_requests(Pool(pool.subject, band))
                          if band_distance(r.band, pool.band) <= allowed_band_distance(r, now, self.settings)]
        found = [r for r in found if not r.direct or r.favourite in free]
        found.sort(key=lambda r: (r.created_at, r.request_id))
        room = min(limit, max(2 * len(free), 32))
        favoured = [r for r in found if r.favourite in free]
        chosen = {r.request_id for r in favoured[:room]}
        rest = [r for r in found if r.request_id not in chosen][: max(room - len(chosen), 0)]
        return sorted([*favoured[:room], *rest], key=lambda r: (r.created_at, r.request_id))


def _request_event(r: RequestRecord) -> MatchEvent:
    return MatchEvent(r.student_id, "request", {"request": r.public()})
