"""A programme evening (or a term of them) through the real matcher on the Redis store, in
simulated time, with a hidden true effectiveness per tutor and knowledge point.

At scale 1 an evening is the programme's: 10,871 tutors on the roster, about 3,200 of them coming
online between 18:00 and 20:30 (up to about 2,200 at once), 14,815 requests with a burst of 39 a
second at 19:00, tutors accepting 70-85 % of their offers after 5-40 s, sessions of about 12
minutes rated from the pair's hidden true effectiveness, a post-session check on the points
(answered from the student's hidden knowledge, which a session teaches with the tutor's true
effectiveness). Some requests name a favourite tutor, some only that tutor, some of those tutors
offline. ``--scale`` shrinks tutors, students and requests alike (a tutor's history per evening
stays the same).

The simulated tutors and students learn of offers and matches from the store's push events, as
the apps do; double bookings are counted from their own view: a tutor in two sessions at once, a
student matched twice for one request or in two sessions at once.

Each policy runs on the same seeded workload: ``learning`` (the matcher as configured),
``no-learning`` (the same with ``learning`` off: declared strengths and priors alone) and
``greedy`` (first come, first served); ``oracle`` (scores with the hidden truth: what learning could
at best reach; not run by default). With ``--evenings N`` each policy runs N evenings in a row
on one store (a term) and the figures are the last evening's. Then one batch of 2,500 free tutors
with a term of history and 500 waiting requests is timed on its own (``batch_*`` keys).

The last line is one JSON object (keys in docs/matcher.md). Worker CPU is this process's CPU
time inside the worker's steps (time.process_time), so the simulation's own work is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import heapq
import itertools
import json
import math
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher.catalogue import catalogue
from matcher.errors import MatcherError
from matcher.expertise import outcome_increments
from matcher.indexes import EVENTS, expertise_key, population_key
from matcher.records import Pool, TutorRecord
from matcher.redis_store import RedisStore
from matcher.scoring import BatchScorer
from matcher.service import Matcher
from matcher.settings import MatcherSettings
from matcher.store import Commit, MatchEvent, Op
from matcher.worker import MatchWorker

EVENING_S = 3 * 3600.0
DAY = 86_400.0
T_START = 1_800_000_000.0  # a fixed 18:00 of the first evening
SUBJECTS = {"math": 0.35, "english": 0.2, "chinese": 0.15, "physics": 0.12, "chemistry": 0.09, "biology": 0.09}
BANDS = {"junior": (7, 8, 9), "senior": (10, 11, 12)}
MARKER = "__bench_marker__"


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by its arguments (hidden truths without storing them)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def normal(*parts: object) -> float:
    u1, u2 = max(unit(*parts, "a"), 1e-12), unit(*parts, "b")
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


@dataclass
class SimTutor:
    tutor_id: str
    subject: str
    bands: tuple[str, ...]
    accept_p: float
    strands: tuple[str, ...]  # declared
    online_until: float = 0.0
    online_since: float = 0.0
    busy_s: float = 0.0
    online_s: float = 0.0
    sessions_tonight: int = 0
    in_session: tuple[str, float] | None = None  # own view: (session id, since)
    intervals: list[tuple[float, float]] = field(default_factory=list)

    def effectiveness(self, kp: str) -> float:
        """The hidden truth: a base, a term per strand (larger where declared) and one per point."""
        strand = ".".join(kp.split(".")[:2])
        base = 0.6 + 0.08 * normal("base", self.tutor_id)
        lift = 0.06 if strand in self.strands else 0.0
        return min(max(base + lift + 0.06 * normal("strand", self.tutor_id, strand)
                       + 0.05 * normal("kp", self.tutor_id, kp), 0.05), 0.95)


class OracleScorer(BatchScorer):
    """Scores every pair with its hidden true effectiveness (what learning could at best know)."""

    def __init__(self, tutors: dict[str, SimTutor], *args: Any) -> None:
        super().__init__(*args)
        self.truth = tutors

    def effectiveness(self, pool: Pool, tutors: Sequence[TutorRecord], kps: Sequence[str]) -> npt.NDArray[np.float64]:
        return np.array([[self.truth[t.tutor_id].effectiveness(kp) if kp else 0.6 for kp in kps] for t in tutors])


@dataclass
class Ask:
    request_id: str
    student_id: str
    created: float
    kps: tuple[str, ...]
    favourite: str | None
    direct: bool
    only: bool
    matched_at: float | None = None
    tutor_id: str | None = None
    session_id: str | None = None
    ended: str | None = None  # expired / cancelled
    tutors_free: bool = False  # own view at creation: the pool had more free tutors than waiting requests
    pool: tuple[str, str] = ("", "")


@dataclass
class Result:
    waits: list[float] = field(default_factory=list)
    waits_free: list[float] = field(default_factory=list)  # requests made while tutors were not the bottleneck
    waits_scarce: list[float] = field(default_factory=list)
    by_half_hour: dict[int, list[float]] = field(default_factory=dict)
    free_asks: int = 0
    fits: list[float] = field(default_factory=list)
    asks: int = 0
    expired: int = 0
    direct: int = 0
    direct_expired: int = 0
    only: int = 0  # "only this tutor" requests (not in direct_*: they wait for their tutor by choice)
    only_expired: int = 0
    favourite: int = 0
    favourite_hits: int = 0
    double_bookings: int = 0
    worker_cpu_s: float = 0.0
    decisions: int = 0
    busy_s: float = 0.0
    online_s: float = 0.0
    loads: list[int] = field(default_factory=list)
    batch_wall_max_s: float = 0.0


class Evening:
    """One policy's run over a term: the store, the matcher, the worker and the simulated people."""

    def __init__(self, args: argparse.Namespace, policy: str) -> None:
        self.args, self.policy = args, policy
        scale = args.scale
        self.store = RedisStore(args.redis_url, prefix=f"bench-sim-{secrets.token_hex(5)}:")
        # No heartbeats in simulated time (tutors leave explicitly); knowledge tracing is refitted
        # between evenings, as a nightly job, not inside the measured batches.
        tuning: dict[str, Any] = {} if args.exploration is None else {"exploration": args.exploration}
        settings = MatcherSettings(learning=policy != "no-learning", heartbeat_timeout_s=4 * 3600.0,
                                   bkt_refit_interval_s=10 * 365 * DAY, **tuning)
        self.matcher = Matcher(self.store, settings)
        self.worker = MatchWorker(self.matcher, policy="greedy" if policy == "greedy" else "optimal",
                                  rng=np.random.default_rng(args.seed))
        rng = random.Random(args.seed)
        points = {(s, b): [p.id for p in catalogue().of_kind("point", s)
                           if p.grade in grades] for s in SUBJECTS for b, grades in BANDS.items()}
        self.points = {k: v for k, v in points.items() if v}
        self.tutors: dict[str, SimTutor] = {}
        n_roster = max(int(10_871 * scale), 20)
        for i in range(n_roster):
            subject = rng.choices(list(SUBJECTS), weights=list(SUBJECTS.values()))[0]
            bands = ("junior", "senior") if rng.random() < 0.3 else (rng.choice(("junior", "senior")),)
            strands = tuple(rng.sample([n.id for n in catalogue().of_kind("strand", subject)], k=2))
            tid = f"t{i:05d}"
            self.tutors[tid] = SimTutor(tid, subject, bands, rng.uniform(0.70, 0.85), strands)
        if policy == "oracle":  # the upper bound: scores with the hidden truth itself
            self.worker.scorer = functools.partial(OracleScorer, self.tutors)  # type: ignore[assignment]
        self.students = [f"s{i:05d}" for i in range(max(int(57_247 * scale), 50))]
        self.student_band = {s: rng.choice(list(BANDS)) for s in self.students}
        self.known: dict[tuple[str, str], bool] = {}  # hidden: does the student know the point
        self.history: dict[str, list[str]] = {}  # student -> tutors they had
        self.rng = rng
        self.heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self.counter = 0
        self.asks: dict[str, Ask] = {}
        self.open_students: set[str] = set()
        self.student_view: dict[str, list[tuple[str, str]]] = {}  # student -> (request, session) matched
        self.offers: dict[str, str] = {}  # tutor -> request id offered (own view)
        self.free: dict[tuple[str, str], set[str]] = {}  # pool -> tutors online, in no session, holding no offer
        self.waiting: dict[tuple[str, str], int] = {}  # pool -> requests open and not matched (own view)
        self.online: set[str] = set()
        self.accepted_at: dict[str, float] = {}  # request -> when its tutor accepted it

    def set_free(self, t: SimTutor, free: bool) -> None:
        for band in t.bands:
            pool = self.free.setdefault((t.subject, band), set())
            if free:
                pool.add(t.tutor_id)
            else:
                pool.discard(t.tutor_id)

    def settle(self, a: Ask) -> None:
        """The request is matched or over: it no longer waits in its pool."""
        self.waiting[a.pool] = self.waiting.get(a.pool, 0) - 1

    async def setup(self) -> None:
        profiles = [TutorRecord(t.tutor_id, t.tutor_id, tuple(Pool(t.subject, b) for b in t.bands), t.strands)
                    for t in self.tutors.values()]
        for chunk in range(0, len(profiles), 500):
            await asyncio.gather(*(self.matcher.upsert_tutor(p) for p in profiles[chunk:chunk + 500]))

    def at(self, when: float, kind: str, *data: Any) -> None:
        self.counter += 1
        heapq.heappush(self.heap, (when, self.counter, kind, data))

    # -- an evening ------------------------------------------------------------------------------

    def plan(self, day: int, start: float) -> None:
        """Tonight's tutors and requests, the same for every policy (seeded by the evening)."""
        rng = random.Random(self.args.seed * 1000 + day)
        scale = self.args.scale
        online = rng.sample(sorted(self.tutors), k=min(int(3_200 * scale), len(self.tutors)))
        for tid in online:
            roll = rng.random()
            arrive = start + (rng.uniform(0, 1800) if roll < 0.6 else rng.uniform(1800, 5400) if roll < 0.9
                              else rng.uniform(5400, 9000))
            self.at(arrive, "arrive", tid, min(arrive + rng.uniform(3600, 10_800), start + EVENING_S))
        n = int(14_815 * scale)
        burst = int(39 * 60 * scale)
        times = [start + 3600 + rng.uniform(0, 60) for _ in range(burst)]
        rest = n - burst
        for share, lo, hi in ((0.3, 0, 3600), (0.45, 3660, 7200), (0.25, 7200, EVENING_S - 600)):
            times += [start + rng.uniform(lo, hi) for _ in range(int(rest * share))]
        for t in sorted(times):
            self.at(t, "ask", rng.random())

    async def run_evening(self, day: int) -> Result:
        start = T_START + day * DAY
        self.plan(day, start)
        res = Result()
        subscription = await self.store.subscribe()
        self.asks.clear()
        self.student_view.clear()
        self.waiting.clear()
        for t in self.tutors.values():
            t.busy_s = t.online_s = 0.0
            t.sessions_tonight = 0
            t.intervals.clear()
        now = start
        end = start + EVENING_S + 900  # the last requests may wait out their time to live
        try:
            while now < end:
                while self.heap and self.heap[0][0] <= now:
                    when, _, kind, data = heapq.heappop(self.heap)
                    await self.handle(kind, when, data)
                c0, w0 = time.process_time(), time.perf_counter()
                await self.worker.step(now)
                res.worker_cpu_s += time.process_time() - c0
                res.batch_wall_max_s = max(res.batch_wall_max_s, time.perf_counter() - w0)
                await self.drain(subscription, now)
                now += self.matcher.settings.batch_interval_s
                if int(now - start) % 1800 == 0:
                    print(f"  {self.policy} evening {day + 1} at {18 + (now - start) / 3600:.1f} h: "
                          f"{len(self.asks)} requests, worker cpu {res.worker_cpu_s:.1f} s",
                          file=sys.stderr, flush=True)
            while self.heap:  # sessions still running: finish them (no new requests)
                when, _, kind, data = heapq.heappop(self.heap)
                await self.handle(kind, max(when, now), data)
                await self.drain(subscription, max(when, now))
        finally:
            await subscription.close()
        for a in self.asks.values():
            res.asks += 1
            res.direct += a.direct and not a.only
            res.only += a.only
            res.favourite += a.favourite is not None
            res.free_asks += a.tutors_free
            if a.matched_at is not None:
                wait = a.matched_at - a.created
                res.waits.append(wait)
                (res.waits_free if a.tutors_free else res.waits_scarce).append(wait)
                res.by_half_hour.setdefault(int((a.created - start) // 1800), []).append(wait)
                assert a.tutor_id is not None
                tutor = self.tutors[a.tutor_id]
                res.fits.append(sum(tutor.effectiveness(kp) for kp in a.kps) / len(a.kps))
                res.favourite_hits += a.favourite == a.tutor_id
            elif a.ended == "expired":
                res.expired += 1
                res.direct_expired += a.direct and not a.only
                res.only_expired += a.only
        for t in self.tutors.values():
            res.busy_s += t.busy_s
            res.online_s += t.online_s
            ordered = sorted(t.intervals)
            res.double_bookings += sum(1 for a, b in itertools.pairwise(ordered) if b[0] < a[1])
            if t.online_s > 0:
                res.loads.append(t.sessions_tonight)
        for matched in self.student_view.values():
            requests = [r for r, _ in matched]
            res.double_bookings += len(requests) - len(set(requests))
        res.decisions = self.worker.decisions
        self.worker.decisions = 0
        if self.policy != "greedy":
            await self.matcher.fit_knowledge()
        return res

    async def drain(self, subscription: Any, now: float) -> None:
        """Every push published so far, to the simulated people (a marker ends the batch)."""
        marker = MatchEvent(MARKER, "marker", {})
        await self.store.commit(Commit((), (), (Op("publish", EVENTS, value=marker.pack().hex()),)))
        while True:
            event = await subscription.get()
            if event.user_id == MARKER:
                return
            await self.on_event(event, now)

    async def on_event(self, e: MatchEvent, now: float) -> None:
        if e.kind == "offer" and e.user_id in self.tutors:
            rid = str(e.data["request"]["request_id"])
            self.offers[e.user_id] = rid
            tutor = self.tutors[e.user_id]
            self.set_free(tutor, False)
            delay = self.rng.uniform(5, 40)
            roll = self.rng.random()
            decision = "ignore" if roll < 0.03 else "accept" if roll < 0.03 + tutor.accept_p * 0.97 else "decline"
            self.at(now + delay, decision, e.user_id, rid)
        elif e.kind == "matched" and e.user_id in self.asks_by_student():
            rid, sid = str(e.data["request_id"]), str(e.data["session_id"])
            self.student_view.setdefault(e.user_id, []).append((rid, sid))
            a = self.asks.get(rid)
            if a is not None and a.matched_at is None:
                # The push goes out as the tutor accepts; the drain sees it at the step's end.
                a.matched_at = self.accepted_at.pop(rid, now)
                a.tutor_id, a.session_id = str(e.data["tutor_id"]), sid
                self.settle(a)
        elif e.kind == "offer_withdrawn" and e.user_id in self.tutors:
            tutor = self.tutors[e.user_id]
            if self.offers.get(e.user_id) == e.data["request_id"]:
                del self.offers[e.user_id]  # it lapsed (or was cancelled) before the tutor answered
            if e.user_id in self.online and tutor.in_session is None and e.user_id not in self.offers:
                self.set_free(tutor, True)
        elif e.kind == "request" and e.user_id != MARKER:
            r = e.data["request"]
            a = self.asks.get(str(r["request_id"]))
            if a is not None and r["state"] in ("expired", "cancelled") and a.ended is None:
                a.ended = str(r["state"])
                if a.matched_at is None:
                    self.settle(a)
                self.open_students.discard(a.student_id)

    def asks_by_student(self) -> set[str]:
        return self.open_students | set(self.student_view)

    async def handle(self, kind: str, now: float, data: tuple[Any, ...]) -> None:
        handlers: dict[str, Callable[[float, tuple[Any, ...]], Awaitable[None]]] = {
            "arrive": self.arrive, "leave": self.leave, "ask": self.ask, "accept": self.accept,
            "decline": self.decline, "ignore": self.ignore, "end": self.end_session, "cancel": self.cancel,
        }
        try:
            await handlers[kind](now, data)
        except MatcherError:
            pass  # the offer was withdrawn, the request cancelled: as in the apps, try nothing else

    async def arrive(self, now: float, data: tuple[Any, ...]) -> None:
        tid, until = data
        t = self.tutors[tid]
        t.online_since, t.online_until = now, until
        await self.matcher.set_availability(tid, True, now)
        self.online.add(tid)
        self.set_free(t, True)
        self.at(until, "leave", tid)

    async def leave(self, now: float, data: tuple[Any, ...]) -> None:
        t = self.tutors[data[0]]
        if t.in_session is not None:
            return  # leaves when the session ends
        t.online_s += now - t.online_since
        self.online.discard(t.tutor_id)
        self.set_free(t, False)
        await self.matcher.set_availability(t.tutor_id, False, now)

    async def ask(self, now: float, data: tuple[Any, ...]) -> None:
        rng = self.rng
        student = rng.choice(self.students)
        while student in self.open_students:
            student = rng.choice(self.students)
        band = self.student_band[student]
        subject = rng.choices(list(SUBJECTS), weights=list(SUBJECTS.values()))[0]
        pts = self.points[(subject, band)]
        kps = tuple(dict.fromkeys(rng.choice(pts) for _ in range(rng.choice((1, 1, 2, 3)))))
        body: dict[str, Any] = {"subject": subject, "grade": rng.choice(BANDS[band]), "knowledge_points": list(kps)}
        favourite, direct = None, False
        past = [t for t in self.history.get(student, []) if self.tutors[t].subject == subject]
        if rng.random() < 0.2:
            teaching = [t.tutor_id for t in self.tutors.values() if t.subject == subject and band in t.bands]
            favourite = rng.choice(past) if past else rng.choice(teaching)
            direct = rng.random() < 0.4
            body.update(favourite=favourite, direct=direct, only=direct and rng.random() < 0.25)
        r = await self.matcher.create_request(student, body, now)
        pool = (subject, band)
        free = len(self.free.get(pool, ())) > self.waiting.get(pool, 0)
        self.waiting[pool] = self.waiting.get(pool, 0) + 1
        self.asks[r.request_id] = Ask(r.request_id, student, now, kps, favourite, direct, r.only, tutors_free=free,
                                      pool=pool)
        self.open_students.add(student)
        if rng.random() < 0.03:
            self.at(now + rng.uniform(60, 600), "cancel", r.request_id)

    async def accept(self, now: float, data: tuple[Any, ...]) -> None:
        tid, rid = data
        if self.offers.get(tid) != rid:
            return
        del self.offers[tid]
        match = await self.matcher.accept(tid, rid, now)
        self.accepted_at[rid] = now
        t = self.tutors[tid]
        if t.in_session is not None:  # own view: already in a session
            t.intervals.append((t.in_session[1], now))
        t.in_session = (match.session_id, now)
        t.sessions_tonight += 1
        duration = min(max(self.rng.gauss(720, 180), 240), 1500)
        self.at(now + duration, "end", tid, rid, match.session_id)

    async def decline(self, now: float, data: tuple[Any, ...]) -> None:
        tid, rid = data
        if self.offers.pop(tid, None) == rid:
            await self.matcher.decline(tid, rid, now)
            self.set_free(self.tutors[tid], True)

    async def ignore(self, now: float, data: tuple[Any, ...]) -> None:
        self.offers.pop(data[0], None)  # the lease runs out in the matcher

    async def end_session(self, now: float, data: tuple[Any, ...]) -> None:
        tid, rid, session_id = data
        t = self.tutors[tid]
        assert t.in_session is not None
        t.intervals.append((t.in_session[1], now))
        t.busy_s += now - t.in_session[1]
        t.in_session = None
        if now >= t.online_until:
            t.online_s += now - t.online_since
            self.online.discard(tid)
            await self.matcher.set_availability(tid, False, now)
        else:
            await self.matcher.set_availability(tid, True, now)
            self.set_free(t, True)
        a = self.asks[rid]
        self.open_students.discard(a.student_id)
        self.history.setdefault(a.student_id, []).append(tid)
        if self.rng.random() < 0.7:
            await self.outcome(now, a, t, session_id)

    async def outcome(self, now: float, a: Ask, t: SimTutor, session_id: str) -> None:
        e = sum(t.effectiveness(kp) for kp in a.kps) / len(a.kps)
        rating = 1 + round(4 * min(max(e + self.rng.gauss(0, 0.15), 0.0), 1.0))
        right = 0
        for kp in a.kps:  # the session teaches each point with the tutor's effectiveness on it
            key = (a.student_id, kp)
            known = self.known.get(key, unit("known", *key) < 0.25)
            known = known or self.rng.random() < 0.5 * t.effectiveness(kp)
            self.known[key] = known
            right += sum(1 for _ in range(5) if self.rng.random() < (0.9 if known else 0.2))
        await self.matcher.report_outcome(session_id, a.student_id, rating, right / (5 * len(a.kps)), now)

    async def cancel(self, now: float, data: tuple[Any, ...]) -> None:
        a = self.asks.get(data[0])
        if a is not None and a.matched_at is None and a.ended is None:
            await self.matcher.cancel_request(a.request_id, a.student_id, now)

    async def close(self) -> None:
        await self.store.delete_all()
        await self.store.close()


def gini(values: list[int]) -> float:
    if not values or sum(values) == 0:
        return 0.0
    xs = sorted(values)
    n = len(xs)
    cum = sum((i + 1) * x for i, x in enumerate(xs))
    return (2 * cum) / (n * sum(xs)) - (n + 1) / n


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(int(q * len(xs)), len(xs) - 1)], 1)


async def run_policy(args: argparse.Namespace, policy: str) -> Result:
    sim = Evening(args, policy)
    try:
        await sim.setup()
        result = Result()
        for day in range(args.evenings):
            result = await sim.run_evening(day)
            print(f"{policy} evening {day + 1}: matched {len(result.fits)} of {result.asks}, "
                  f"fit {statistics.fmean(result.fits) if result.fits else 0:.4f}, "
                  f"worker cpu {result.worker_cpu_s:.1f} s", file=sys.stderr, flush=True)
        return result
    finally:
        await sim.close()


async def batch_check(args: argparse.Namespace) -> dict[str, Any]:
    """One batch: 2,500 free tutors with a term of history (60 sessions each, over the points of
    their subject), 500 waiting requests, on Redis; the worker's CPU for it."""
    rng = random.Random(args.seed)
    store = RedisStore(args.redis_url, prefix=f"bench-batch-{secrets.token_hex(5)}:")
    m = Matcher(store, MatcherSettings(heartbeat_timeout_s=4 * 3600.0))  # no heartbeats in simulated time
    try:
        now = T_START
        pipe_ops: list[Op] = []
        tutors = []
        for i in range(2_500):
            subject = rng.choices(list(SUBJECTS), weights=list(SUBJECTS.values()))[0]
            band = rng.choice(list(BANDS))
            tutors.append((f"b{i:05d}", subject, band))
        await asyncio.gather(*(m.upsert_tutor(TutorRecord(t, t, (Pool(s, b),), ())) for t, s, b in tutors))
        for t, s, b in tutors:
            pts = [p.id for p in catalogue().of_kind("point", s) if p.grade in BANDS[b]]
            for _ in range(60):
                kps = rng.sample(pts, k=min(2, len(pts)))
                y = rng.random()
                for key, (n, total) in outcome_increments(s, b, kps, y).items():
                    for hkey in (expertise_key(t), population_key(s, b)):
                        pipe_ops += [Op("hincr", hkey, f"{key}#n", repr(n)), Op("hincr", hkey, f"{key}#s", repr(total))]
            if len(pipe_ops) > 20_000:
                await store.commit(Commit((), (), tuple(pipe_ops)))
                pipe_ops = []
        if pipe_ops:
            await store.commit(Commit((), (), tuple(pipe_ops)))
        await asyncio.gather(*(m.set_availability(t, True, now) for t, _, _ in tutors))
        worker = MatchWorker(m, rng=np.random.default_rng(args.seed))
        await worker.step(now)  # a running worker has its working set loaded
        cpus, walls, offers = [], [], []
        for round_ in range(4):  # a warm-up batch, then three measured; the tutors decline between
            now += 60
            for i in range(500):
                subject = rng.choices(list(SUBJECTS), weights=list(SUBJECTS.values()))[0]
                band = rng.choice(list(BANDS))
                pts = [p.id for p in catalogue().of_kind("point", subject) if p.grade in BANDS[band]]
                await m.create_request(f"q{round_}-{i:04d}", {"subject": subject, "grade": BANDS[band][0],
                                                              "knowledge_points": rng.sample(pts, k=2)}, now)
            worker.decisions = 0
            c0, w0 = time.process_time(), time.perf_counter()
            made = await worker.step(now + 1)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            if round_ > 0:
                cpus.append(cpu)
                walls.append(wall)
                offers.append(made)
            for held in worker.ws.tutors.values():
                if held.offer is not None:
                    await m.decline(held.tutor_id, held.offer.request_id, now + 2)
            for r in list(worker.ws.requests.values()):
                await m.cancel_request(r.request_id, r.student_id, now + 3)
        cpu = statistics.median(cpus)
        fields = sum(len(s) for s in worker.ws._tutor_stats.values())
        return {"batch_tutors": 2_500, "batch_requests": 500, "batch_stat_keys": fields,
                "batch_offers": int(statistics.median(offers)),
                "batch_cpu_ms": round(cpu * 1000, 1), "batch_cpu_ms_runs": [round(c * 1000, 1) for c in cpus],
                "batch_wall_ms": round(statistics.median(walls) * 1000, 1),
                "batch_decisions_per_cpu_s": round(statistics.median(offers) / cpu, 0) if cpu > 0 else 0.0}
    finally:
        await store.delete_all()
        await store.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"evenings": args.evenings, "scale": args.scale, "seed": args.seed,
                           "exploration": args.exploration if args.exploration is not None
                           else MatcherSettings().exploration,
                           "offer_lease_s": MatcherSettings().offer_lease_s}
    results = {p: await run_policy(args, p) for p in args.policies.split(",") if p}
    main = results.get("learning") or next(iter(results.values()), None)
    if main is None:
        out.update(await batch_check(args))
        return out
    out.update({
        "requests": main.asks,
        "time_to_match_p50_s": pct(main.waits, 0.5), "time_to_match_p95_s": pct(main.waits, 0.95),
        "tutors_free_share": round(main.free_asks / main.asks, 4) if main.asks else None,
        "time_to_match_free_p50_s": pct(main.waits_free, 0.5),
        "time_to_match_free_p95_s": pct(main.waits_free, 0.95),
        "time_to_match_scarce_p50_s": pct(main.waits_scarce, 0.5),
        "time_to_match_scarce_p95_s": pct(main.waits_scarce, 0.95),
        "time_to_match_by_half_hour": {
            f"{18 + h // 2}:{30 * (h % 2):02d}": [len(w), pct(w, 0.5), pct(w, 0.95)]
            for h, w in sorted(main.by_half_hour.items())},
        "expiry_rate": round(main.expired / main.asks, 4) if main.asks else None,
        "utilisation": round(main.busy_s / main.online_s, 4) if main.online_s else None,
        "load_gini": round(gini(main.loads), 4),
        "fit_mean": round(statistics.fmean(main.fits), 4) if main.fits else None,
        "decisions_per_s": round(main.decisions / main.worker_cpu_s, 0) if main.worker_cpu_s else None,
        "cpu_ms_per_request": round(1000 * main.worker_cpu_s / main.asks, 3) if main.asks else None,
        "batch_wall_max_s": round(main.batch_wall_max_s, 3),
        "double_bookings": sum(r.double_bookings for r in results.values()),
        "direct_expiry_rate": round(main.direct_expired / main.direct, 4) if main.direct else None,
        "favourite_hit_rate": round(main.favourite_hits / main.favourite, 4) if main.favourite else None,
        "only_this_tutor_expiry_rate": round(main.only_expired / main.only, 4) if main.only else None,
    })
    for policy, key in (("greedy", "fit_greedy_mean"), ("no-learning", "fit_no_learning_mean"),
                        ("oracle", "fit_oracle_mean")):
        if policy in results and results[policy].fits:
            out[key] = round(statistics.fmean(results[policy].fits), 4)
    if "greedy" in results:
        g = results["greedy"]
        out["greedy_time_to_match_p95_s"] = pct(g.waits, 0.95)
    if not args.no_batch_check:
        out.update(await batch_check(args))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evenings", type=int, default=1, help="evenings in a row (a term); figures are the last's")
    parser.add_argument("--scale", type=float, default=1.0, help="share of the programme's tutors and requests")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--policies", default="learning,no-learning,greedy",
                        help="comma-separated; empty for the batch timing alone")
    parser.add_argument("--exploration", type=float, default=None,
                        help="the learning policy's exploration (default: the matcher's default)")
    parser.add_argument("--no-batch-check", action="store_true", help="skip the 2,500 x 500 batch timing")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
