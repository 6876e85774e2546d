"""The matcher worker: every batch interval it sweeps expired leases, silent tutors and stale
requests, then assigns each pool. Any number of workers may run on one store: pool locks share
the work out, and the store's compare-and-set keeps them from ever double-booking anyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgpack

from . import transitions as tr
from .assignment import assign
from .indexes import LEASES, ONLINE, OPEN, POOLS, available_key, queue_key
from .lifecycle import RequestState, TutorState
from .records import GRADE_BANDS, Pool, RequestRecord, TutorRecord, band_distance
from .scoring import Scorer, allowed_band_distance
from .service import Matcher, new_id, offer_events, withdrawn
from .store import MatchEvent, build_commit

log = logging.getLogger("tutorwire.matcher")
SWEEP_LIMIT = 1_000


class MatchWorker:
    def __init__(
        self, matcher: Matcher, worker_id: str | None = None, max_batch_requests: int = 256, use_locks: bool = True,
    ) -> None:
        self.matcher = matcher
        self.store = matcher.store
        self.settings = matcher.settings
        self.worker_id = worker_id or new_id("w_")
        self.max_batch_requests = max_batch_requests
        self.use_locks = use_locks  # off only in tests that want every worker on every pool
        self.offers_made = 0

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
        return await self.assign_all(now)

    # -- sweep ---------------------------------------------------------------------------------

    async def sweep(self, now: float) -> None:
        for request_id in await self.store.zrange(LEASES, max_score=now, limit=SWEEP_LIMIT):
            await self._lease_expired(request_id, now)
        cutoff = now - self.settings.heartbeat_timeout_s
        for tutor_id in await self.store.zrange(ONLINE, max_score=cutoff, limit=SWEEP_LIMIT):
            await self._tutor_silent(tutor_id, now, cutoff)
        for request_id in await self.store.zrange(OPEN, max_score=now - self.settings.request_ttl_s, limit=SWEEP_LIMIT):
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
            new_r = tr.return_request(r, r.offer.tutor_id)
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
        made = 0
        for key in sorted(await self.store.smembers(POOLS)):
            if not self.use_locks or await self.store.try_lock(f"lock:{key}", self.worker_id,
                                                                 self.settings.batch_interval_s):
                made += await self.assign_pool(Pool.parse(key), now)
        return made

    async def assign_pool(self, pool: Pool, now: float) -> int:
        tutor_ids = await self.store.zrange(available_key(pool), limit=self.max_batch_requests)
        if not tutor_ids:
            return 0
        requests = await self._candidates(pool, now, limit=min(self.max_batch_requests, 2 * len(tutor_ids)))
        if not requests:
            return 0
        # Indexes are read a moment before the records: keep only what is still free.
        free = TutorState.AVAILABLE
        tutors = [t for t in await self.store.get_tutors(tutor_ids) if t is not None and t.state is free]
        if not tutors:
            return 0
        stats = await self.matcher.stats([t.tutor_id for t in tutors])
        pairs = await self.matcher.pair_history(r.student_id for r in requests)
        m = self.matcher
        by_r = {r.request_id: r for r in requests}
        by_t = {t.tutor_id: t for t in tutors}
        plan = assign(requests, tutors, Scorer(stats, pairs, now, m.settings, m.model, m.weights))
        made = 0
        for pairing in plan:
            r, t = by_r[pairing.request_id], by_t[pairing.tutor_id]
            new_r, new_t = tr.make_offer(r, t, now, self.settings)
            assert new_r.offer is not None
            commit = build_commit([r, t], [new_r, new_t], events=offer_events(new_r, new_r.offer),
                                  log=[msgpack.packb(new_r.offer.to_wire())])
            if await self.store.commit(commit):
                made += 1
        self.offers_made += made
        return made

    async def _candidates(self, pool: Pool, now: float, limit: int) -> list[RequestRecord]:
        """The pool's queued requests, oldest first, and those of the subject's other bands that
        have waited long enough to be widened to this one."""
        ids = await self.store.zrange(queue_key(pool), limit=limit)
        for band in GRADE_BANDS:
            if band != pool.band:
                waited = now - self.settings.widen_after_s * (1 if band_distance(band, pool.band) == 1 else 2)
                ids += await self.store.zrange(queue_key(Pool(pool.subject, band)), max_score=waited, limit=limit)
        records = [r for r in await self.store.get_requests(ids) if r is not None and r.state is RequestState.QUEUED]
        fit = [r for r in records if band_distance(r.band, pool.band) <= allowed_band_distance(r, now, self.settings)]
        fit.sort(key=lambda r: r.created_at)
        return fit[:limit]


def _request_event(r: RequestRecord) -> MatchEvent:
    return MatchEvent(r.student_id, "request", {"request": r.public()})
