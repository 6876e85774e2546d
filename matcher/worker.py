"""The matcher worker: every batch interval it sweeps expired leases, silent tutors and stale
requests, widens direct requests whose tutor did not come, then assigns each pool from its
working set (``workingset``: records and statistics in memory, kept current from the store's
change log). Any number of workers may run on one store: pool locks share
the work out, and the store's compare-and-set keeps them from ever double-booking anyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgpack
import numpy as np

from . import transitions as tr
from .assignment import assign_matrix, greedy
from .indexes import LEASES, ONLINE, OPEN
from .lifecycle import RequestState
from .records import GRADE_BANDS, Pool, RequestRecord, TutorRecord, band_distance
from .scoring import BatchScorer, allowed_band_distance
from .service import Matcher, new_id, offer_events, withdrawn
from .store import MatchEvent, build_commit
from .workingset import WorkingSet

log = logging.getLogger("tutorwire.matcher")
SWEEP_LIMIT = 1_000


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
        self.offers_made = 0
        self.last_refit = float("-inf")  # the first step refits knowledge tracing
        self.decisions = 0  # pairs the assignment chose (offers made or lost to a race)

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
        await self.sweep(now)
        made = await self.assign_all(now)
        if now - self.last_refit >= self.settings.bkt_refit_interval_s:
            self.last_refit = now
            # One worker refits (the lock lasts the interval); the fit runs off the event loop.
            if await self.store.try_lock("lock:bkt-refit", self.worker_id, self.settings.bkt_refit_interval_s):
                await self.matcher.fit_knowledge()
        return made

    # -- sweep ---------------------------------------------------------------------------------

    async def sweep(self, now: float) -> None:
        cutoff = now - self.settings.heartbeat_timeout_s
        leases, silent, stale = await self.store.zrange_many([
            (LEASES, now, SWEEP_LIMIT), (ONLINE, cutoff, SWEEP_LIMIT),
            (OPEN, now - self.settings.request_ttl_s, SWEEP_LIMIT)])
        for request_id in leases:
            await self._lease_expired(request_id, now)
        for tutor_id in silent:
            await self._tutor_silent(tutor_id, now, cutoff)
        for request_id in stale:
            await self._request_stale(request_id, now)

    async def _lease_expired(self, request_id: str, now: float) -> None:
        (r,) = await self.store.get_requests([request_id])
        if r is None or r.offer is None or r.offer.expires_at > now:
            return
        (t,) = await self.store.get_tutors([r.offer.tutor_id])
        if t is not None and t.offer == r.offer:
            new_r, new_t = tr.decline(r, t, now, self.settings, ignored=True)
            await self.store.commit(build_commit([r, t], [new_r, new_t],
                                                 events=withdrawn(t.tutor_id, new_r, "lease expired")))
        else:
            new_r = tr.return_request(r, r.offer.tutor_id, now)
            await self.store.commit(build_commit([r], [new_r]))

    async def _tutor_silent(self, tutor_id: str, now: float, cutoff: float) -> None:
        (t,) = await self.store.get_tutors([tutor_id])
        if t is not None and t.last_seen <= cutoff:
            await self.matcher.take_offline(t, now, "tutor lost")

    async def _request_stale(self, request_id: str, now: float) -> None:
        (r,) = await self.store.get_requests([request_id])
        if r is None or r.state.terminal:
            return
        new_r = tr.expire(r, now)
        event = withdrawn(r.offer.tutor_id, new_r, "request expired") if r.offer else []
        old: list[RequestRecord | TutorRecord] = [r]
        new: list[RequestRecord | TutorRecord] = [new_r]
        if r.offer is not None:
            (t,) = await self.store.get_tutors([r.offer.tutor_id])
            if t is not None and t.offer == r.offer:
                old.append(t)
                new.append(tr.release_tutor(t, now, self.settings))
        if not event:
            event = [_request_event(new_r)]
        await self.store.commit(build_commit(old, new, events=event))

    # -- assignment ----------------------------------------------------------------------------

    async def assign_all(self, now: float) -> int:
        await self.ws.refresh()
        await self._widen_direct(now)
        # Pools with free tutors and someone waiting for them (in the pool or widened to it).
        subjects_waiting = {Pool.parse(k).subject for k, q in self.ws.queued.items() if q}
        keys = [k for k in self.ws.pools() if self.ws.free.get(k) and Pool.parse(k).subject in subjects_waiting]
        if self.use_locks:
            held = await self.store.try_locks([f"lock:{k}" for k in keys], self.worker_id,
                                              self.settings.batch_interval_s)
            keys = [k for k, ok in zip(keys, held, strict=True) if ok]
        made = 0
        for key in keys:
            made += await self.assign_pool(Pool.parse(key), now)
        return made

    async def _widen_direct(self, now: float) -> None:
        """Direct requests whose tutor has not taken them in ``direct_widen_after_s`` go to
        everyone (unless "only this tutor"), and the student is told."""
        due = now - self.settings.direct_widen_after_s
        for r in [r for r in self.ws.requests.values() if r.direct and not r.only and r.created_at <= due
                  and r.state is RequestState.QUEUED]:
            new_r = tr.widen(r)
            if await self.store.commit(build_commit([r], [new_r], events=[_request_event(new_r)])):
                self.ws.put_request(r.request_id, new_r)

    async def assign_pool(self, pool: Pool, now: float) -> int:
        ws = self.ws
        tutors = ws.free_tutors(pool)[: self.max_batch_tutors]
        if not tutors:
            return 0
        requests = self._candidates(pool, now, self.max_batch_requests, {t.tutor_id for t in tutors})
        if not requests:
            return 0
        # A pool whose last batch found no allowed pair, with the same records and before any of
        # them can change by the clock alone (a cool-down ending, a request widening), would find
        # none again: skip it.
        signature = (tuple((t.tutor_id, t.version) for t in tutors), tuple((r.request_id, r.version) for r in requests))
        idle = self._idle.get(pool.key)
        if idle is not None and idle[0] == signature and now < idle[1]:
            return 0
        await ws.prepare([t.tutor_id for t in tutors], requests, pool)
        m = self.matcher
        matrix = BatchScorer(ws, now, m.settings, m.model, m.weights, self.rng).matrix(pool, requests, tutors)
        plan = (greedy if self.policy == "greedy" else assign_matrix)(requests, tutors, matrix)
        self.decisions += len(plan)
        if plan:
            self._idle.pop(pool.key, None)
        else:
            self._idle[pool.key] = (signature, self._wake_at(tutors, requests, now))
            return 0
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
        # One round trip for the batch's offers; each is its own compare-and-set.
        results = await self.store.commit_many([o[4] for o in offers])
        stale: list[tuple[str, str]] = []
        for (r, t, new_r, new_t, _), ok in zip(offers, results, strict=True):
            if ok:
                ws.put_request(r.request_id, new_r)
                ws.put_tutor(t.tutor_id, new_t)
            else:  # the working set was behind on one of them: read both again
                stale.append((r.request_id, t.tutor_id))
        if stale:
            rids, tids = [s[0] for s in stale], [s[1] for s in stale]
            for rid, fresh_r in zip(rids, await self.store.get_requests(rids), strict=True):
                ws.put_request(rid, fresh_r)
            for tid, fresh_t in zip(tids, await self.store.get_tutors(tids), strict=True):
                ws.put_tutor(tid, fresh_t)
        made = sum(results)
        self.offers_made += made
        return made

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
