"""A worker's working set: the records and statistics its batches read, kept in memory and kept
current from the store's change log instead of re-read every batch.

At the start (and whenever the change log no longer reaches back to what the set last saw) it
loads every tutor and every open request. Before each batch ``refresh`` asks the store which keys
changed since, and re-reads those alone, in one pipelined round trip per kind. Statistics (a
tutor's outcomes per point, the population's, a student's knowledge state and pair history) are
loaded the first time a batch needs them and re-read when they change.

The set may be a moment behind the store; that is safe, because every offer is still one
compare-and-set on the versions of both records: a stale record makes the commit fail, never
double-book anyone, and the next refresh brings the record up to date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .expertise import Stats, chapter_points, declares_subject, prefixes, stat_key
from .indexes import (
    BKT_PARAMS,
    OPEN,
    TUTORS,
    expertise_key,
    knowledge_key,
    pairs_key,
    population_key,
    request_key,
    tutor_key,
)
from .knowledge import BktParams, KnowledgeState
from .lifecycle import RequestState, TutorState
from .records import Pool, RequestRecord, TutorRecord
from .store import Store, parse_counts

FULL_LOAD_LIMIT = 1_000_000
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

def _counts(h: dict[str, str]) -> dict[str, tuple[float, float]]:
    return parse_counts(h)


def _pair_counts(h: dict[str, str]) -> dict[str, tuple[float, float]]:
    return parse_counts(h)


def _states(h: dict[str, str]) -> dict[str, KnowledgeState]:
    return {kp: KnowledgeState.unpack(v) for kp, v in h.items()}


class WorkingSet:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.seq = -1  # the change number seen; -1: nothing loaded yet
        self.tutors: dict[str, TutorRecord] = {}
        self.requests: dict[str, RequestRecord] = {}  # open ones only
        self.free: dict[str, set[str]] = {}  # pool key -> available tutor ids
        self.queued: dict[str, set[str]] = {}  # pool key -> queued request ids
        self._tutor_stats: dict[str, dict[str, tuple[float, float]]] = {}
        self._point: dict[str, dict[str, tuple[float, float]]] = {}  # stat key -> tutor -> (n, sum)
        self._point_arrays: dict[str, tuple[IntArray, FloatArray, FloatArray]] = {}  # the same, as arrays
        self.slot: dict[str, int] = {}  # tutor id -> a fixed small integer (array positions)
        self._population: dict[str, dict[str, tuple[float, float]]] = {}
        self._knowledge: dict[str, dict[str, KnowledgeState]] = {}
        self._pairs: dict[str, dict[str, tuple[float, float]]] = {}
        self._params: dict[str, BktParams] | None = None
        self._declared: dict[str, frozenset[str]] = {}
        self._strengths: dict[str, set[str]] | None = None
        self._declared_slots: dict[str, IntArray] = {}
        self._mine: dict[str, int] = {}  # key -> change number of this worker's own latest write
        self.full_loads = 0
        self.keys_reread = 0

    # -- keeping current -----------------------------------------------------------------------

    async def refresh(self, queries: Sequence[tuple[str, float | None, int]] = ()) -> list[list[str]]:
        """Bring the set up to date with the store: one poll (the change log, and ``queries``,
        the sorted-set ranges a step's sweep reads, in the same snapshot), then one read per kind
        of what changed and was not this worker's own write. Returns the ranges."""
        p = await self.store.poll(max(self.seq, 0), queries)
        if self.seq < 0 or p.changes is None:
            await self._full_load(p.latest)
            return p.ranges
        self.seq = p.latest
        if not p.changes:
            return p.ranges
        tutors, requests, hashes = [], [], []
        mine = self._mine
        for key, number in p.changes:
            if mine and mine.pop(key, None) == number:
                continue  # this worker wrote it, and nobody since: the set holds it already
            self.keys_reread += 1
            kind, _, ident = key.partition(":")
            if kind == "t":
                tutors.append(ident)
            elif kind == "r":
                requests.append(ident)
            elif key == BKT_PARAMS:
                self._params = None
            elif (kind == "exp" and ident in self._tutor_stats) or (kind == "pop" and ident in self._population) or (
                    kind in ("ks", "pairs") and ident in (self._knowledge if kind == "ks" else self._pairs)):
                hashes.append(key)
        await self._load_tutors(tutors)
        await self._load_requests(requests)
        await self._load_keys(hashes)
        if self._params is None:
            await self._load_params()
        return p.ranges

    async def reload(self, tutor_ids: Sequence[str], request_ids: Sequence[str]) -> None:
        """Read these records again now (changed by this process outside the worker's commits)."""
        await self._load_tutors(tutor_ids)
        await self._load_requests(request_ids)

    def note_own(self, numbers: Mapping[str, int]) -> None:
        """Keys this worker just wrote (and put in the set), with their change numbers: the next
        refresh need not read them back unless someone changed them since."""
        self._mine.update(numbers)

    async def _load_keys(self, keys: Sequence[str]) -> None:
        """Statistics hashes by store key, all in one read."""
        if not keys:
            return
        stats = []
        for key, h in zip(keys, await self.store.hgetall_many(keys), strict=True):
            kind, _, ident = key.partition(":")
            if kind == "exp":
                stats.append((ident, h))
            elif kind == "pop":
                self._population[ident] = _counts(h)
            elif kind == "ks":
                self._knowledge[ident] = _states(h)
            elif kind == "pairs":
                self._pairs[ident] = _pair_counts(h)
        self._put_stats(stats)

    async def _load_params(self) -> None:
        (h,) = await self.store.hgetall_many([BKT_PARAMS])
        self._params = {kp: BktParams.unpack(v) for kp, v in h.items()}

    async def _full_load(self, latest: int) -> None:
        self.full_loads += 1
        self.seq = latest  # read before the records: a change after it is re-read next time
        self._mine.clear()
        self.tutors.clear()
        self.requests.clear()
        self.free.clear()
        self.queued.clear()
        self._tutor_stats.clear()
        self._point.clear()
        self._point_arrays.clear()
        self._population.clear()
        self._knowledge.clear()
        self._pairs.clear()
        self._params = None
        self._declared.clear()
        self._declared_slots.clear()
        self._strengths = None
        await self._load_tutors(sorted(await self.store.smembers(TUTORS)))
        await self._load_requests(await self.store.zrange(OPEN, limit=FULL_LOAD_LIMIT))

    async def _load_tutors(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        for tid, t in zip(ids, await self.store.get_tutors(ids), strict=True):
            self.put_tutor(tid, t)

    async def _load_requests(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        for rid, r in zip(ids, await self.store.get_requests(ids), strict=True):
            self.put_request(rid, r)

    def put(self, record: RequestRecord | TutorRecord) -> None:
        if isinstance(record, RequestRecord):
            self.put_request(record.request_id, record)
        else:
            self.put_tutor(record.tutor_id, record)

    def put_tutor(self, tid: str, t: TutorRecord | None) -> None:
        old = self.tutors.pop(tid, None)
        if old is not None:
            for p in old.teaches:
                self.free.get(p.key, set()).discard(tid)
        if t is None:
            return
        if old is None or old.strengths != t.strengths:
            self._declared.clear()
            self._declared_slots.clear()
            self._strengths = None
        self.tutors[tid] = t
        if t.state is TutorState.AVAILABLE:
            for p in t.teaches:
                self.free.setdefault(p.key, set()).add(tid)

    def put_request(self, rid: str, r: RequestRecord | None) -> None:
        old = self.requests.pop(rid, None)
        if old is not None:
            self.queued.get(old.pool.key, set()).discard(rid)
        if r is None or r.state.terminal:
            return
        self.requests[rid] = r
        if r.state is RequestState.QUEUED:
            self.queued.setdefault(r.pool.key, set()).add(rid)

    def _put_stats(self, loaded: Sequence[tuple[str, dict[str, str]]]) -> None:
        for tid, h in loaded:
            for key in self._tutor_stats.pop(tid, {}):
                self._point.get(key, {}).pop(tid, None)
                self._point_arrays.pop(key, None)
            stats = parse_counts(h)
            self._tutor_stats[tid] = stats
            for key, value in stats.items():
                self._point.setdefault(key, {})[tid] = value
                self._point_arrays.pop(key, None)

    async def prepare(self, tutor_ids: Iterable[str], requests: Sequence[RequestRecord], pool: Pool) -> None:
        """Load what a batch of ``pool`` will read and the set does not hold yet (one read)."""
        keys = [expertise_key(t) for t in tutor_ids if t not in self._tutor_stats]
        if f"{pool.subject}|{pool.band}" not in self._population:
            keys.append(population_key(pool.subject, pool.band))
        for s in dict.fromkeys(r.student_id for r in requests):
            if s not in self._knowledge:
                keys.append(knowledge_key(s))
            if s not in self._pairs:
                keys.append(pairs_key(s))
        await self._load_keys(keys)
        if self._params is None:
            await self._load_params()

    # -- what scoring reads (scoring.BatchData) ------------------------------------------------

    def free_tutors(self, pool: Pool) -> list[TutorRecord]:
        return [self.tutors[t] for t in sorted(self.free.get(pool.key, ()))]

    def queued_requests(self, pool: Pool) -> list[RequestRecord]:
        return [self.requests[r] for r in self.queued.get(pool.key, ())]

    def pools(self) -> list[str]:
        return sorted(set(self.free) | set(self.queued))

    def point_stats(self, subject: str, band: str, kp: str) -> Mapping[str, tuple[float, float]]:
        return self._point.get(stat_key(subject, band, kp), {})

    def point_arrays(self, subject: str, band: str, kp: str) -> tuple[IntArray, FloatArray, FloatArray]:
        """``point_stats`` as (tutor slots, sessions, sums) arrays, built once per change."""
        key = stat_key(subject, band, kp)
        if key not in self._point_arrays:
            entries = self._point.get(key, {})
            slots = np.fromiter((self.slot_of(t) for t in entries), dtype=np.int64, count=len(entries))
            ns = np.fromiter((v[0] for v in entries.values()), dtype=np.float64, count=len(entries))
            ss = np.fromiter((v[1] for v in entries.values()), dtype=np.float64, count=len(entries))
            self._point_arrays[key] = (slots, ns, ss)
        return self._point_arrays[key]

    def slot_of(self, tutor_id: str) -> int:
        if tutor_id not in self.slot:
            self.slot[tutor_id] = len(self.slot)
        return self.slot[tutor_id]

    def population(self, subject: str, band: str) -> Stats:
        return self._population.get(f"{subject}|{band}", {})

    def declared_by(self, kp: str) -> frozenset[str]:
        if kp not in self._declared:
            index = self._strength_index()
            found: set[str] = set()
            for key in prefixes(kp):
                found |= index.get(key, set())
            self._declared[kp] = frozenset(found)
        return self._declared[kp]

    def _strength_index(self) -> dict[str, set[str]]:
        """Declared strength (or a point of a declared chapter) -> the tutors who declared it."""
        if self._strengths is None:
            self._strengths = {}
            for t in self.tutors.values():
                for s in t.strengths:
                    for key in (s, *chapter_points(s)):
                        self._strengths.setdefault(key, set()).add(t.tutor_id)
        return self._strengths

    def declared_slots(self, kp_or_subject: str) -> IntArray:
        key = "slots:" + kp_or_subject
        if key not in self._declared_slots:
            who = (self.declaring_subject(kp_or_subject) if "." not in kp_or_subject
                   else self.declared_by(kp_or_subject))
            self._declared_slots[key] = np.fromiter((self.slot_of(t) for t in who), dtype=np.int64, count=len(who))
        return self._declared_slots[key]

    def declaring_subject(self, subject: str) -> frozenset[str]:
        key = "subject:" + subject
        if key not in self._declared:
            self._declared[key] = frozenset(t.tutor_id for t in self.tutors.values() if declares_subject(t, subject))
        return self._declared[key]

    def knowledge(self, student_id: str) -> Mapping[str, KnowledgeState]:
        return self._knowledge.get(student_id, {})

    def bkt_params(self) -> Mapping[str, BktParams]:
        return self._params or {}

    def pairs(self, student_id: str) -> Mapping[str, tuple[float, float]]:
        return self._pairs.get(student_id, {})

    def known_keys(self) -> list[str]:
        """Every key the set caches (tests compare the set with a fresh read)."""
        return [tutor_key(t) for t in self.tutors] + [request_key(r) for r in self.requests]
