"""The matcher's operations, as the API and the worker call them: read records, apply a pure
transition, commit with compare-and-set, and retry when another worker got there first.

Every method takes ``now`` (wall-clock seconds, shared by every process on one Redis).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import msgpack

from . import knowledge as kn
from . import transitions as tr
from .catalogue import catalogue
from .errors import Conflict, Forbidden, NotFound, ValidationFailed
from .expertise import ExpertiseModel, Stats, lift_increments, outcome_increments, outcome_score
from .indexes import (
    BKT_PARAMS,
    CHANGES,
    KNOWLEDGE_STUDENTS,
    OBSERVATIONS,
    SESSIONS,
    TUTORS,
    Record,
    expertise_key,
    knowledge_key,
    pairs_key,
    population_key,
    student_key,
)
from .lifecycle import TutorState
from .records import USER_ID, Offer, RequestRecord, TutorRecord
from .scoring import PairHistory, Weights
from .settings import MatcherSettings
from .store import Commit, MatchEvent, Op, Store, build_commit, parse_counts

T = TypeVar("T")
RETRIES = 50


@dataclass(frozen=True, slots=True)
class Match:
    session_id: str
    request: RequestRecord
    tutor: TutorRecord


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(12)


def offer_events(request: RequestRecord, offer: Offer) -> list[MatchEvent]:
    return [
        MatchEvent(offer.tutor_id, "offer", {"request": request.public(), "expires_at": offer.expires_at}),
        MatchEvent(request.student_id, "request", {"request": request.public()}),
    ]


def withdrawn(tutor_id: str, request: RequestRecord, reason: str) -> list[MatchEvent]:
    return [
        MatchEvent(tutor_id, "offer_withdrawn", {"request_id": request.request_id, "reason": reason}),
        MatchEvent(request.student_id, "request", {"request": request.public()}),
    ]


class Matcher:
    def __init__(
        self, store: Store, settings: MatcherSettings | None = None, model: ExpertiseModel | None = None,
        weights: Weights | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or MatcherSettings()
        self.model = model or ExpertiseModel()
        self.weights = weights or Weights()

    # -- reads ---------------------------------------------------------------------------------

    async def request(self, request_id: str) -> RequestRecord:
        (r,) = await self.store.get_requests([request_id])
        if r is None:
            raise NotFound(f"no request {request_id!r}")
        return r

    async def tutor(self, tutor_id: str) -> TutorRecord:
        (t,) = await self.store.get_tutors([tutor_id])
        if t is None:
            raise NotFound(f"no tutor {tutor_id!r}")
        return t

    async def request_for(self, request_id: str, user_id: str) -> RequestRecord:
        """The request, if ``user_id`` is its student, the tutor offered it, or the tutor who took it."""
        r = await self.request(request_id)
        allowed = {r.student_id, r.tutor_id, None if r.offer is None else r.offer.tutor_id}
        if user_id not in allowed:
            raise Forbidden("this request is not yours")
        return r

    async def recent_requests(self, student_id: str, limit: int = 5) -> list[RequestRecord]:
        """The student's latest requests, newest first."""
        ids = await self.store.zrange(student_key(student_id), newest_first=True, limit=limit)
        return [r for r in await self.store.get_requests(ids) if r is not None]

    async def tutor_requests(self, t: TutorRecord) -> list[RequestRecord]:
        """The request a tutor holds an offer of and the one of the session they are in (or were
        in last)."""
        ids = [t.offer.request_id] if t.offer is not None else []
        if t.session_id is not None and (rid := await self.store.hget(SESSIONS, t.session_id)) is not None:
            ids.append(rid)
        return [r for r in await self.store.get_requests(ids) if r is not None]

    async def tutor_ids(self) -> list[str]:
        return sorted(await self.store.smembers(TUTORS))

    async def stats(self, tutor_ids: Sequence[str]) -> dict[str, Stats]:
        raw = await self.store.hgetall_many([expertise_key(t) for t in tutor_ids])
        return {t: parse_counts(h) for t, h in zip(tutor_ids, raw, strict=True)}

    async def pair_history(self, student_ids: Iterable[str]) -> PairHistory:
        students = sorted(set(student_ids))
        raw = await self.store.hgetall_many([pairs_key(s) for s in students])
        return {(s, t): v for s, h in zip(students, raw, strict=True) for t, v in parse_counts(h).items()}

    # -- writes --------------------------------------------------------------------------------

    async def _retry(self, attempt: Callable[[], Awaitable[T | None]]) -> T:
        for _ in range(RETRIES):
            result = await attempt()
            if result is not None:
                return result
        raise Conflict("the matcher is busy with this record; try again")

    async def _commit(self, old: Sequence[Record | None], new: Sequence[Record], **kw: Any) -> bool:
        return await self.store.commit(build_commit(old, new, **kw))

    async def upsert_tutor(self, profile: TutorRecord) -> TutorRecord:
        """Create a tutor or replace their profile (name, subjects, strengths), keeping presence."""
        if not USER_ID.fullmatch(profile.tutor_id):
            raise ValidationFailed("tutor_id", "must be 1-64 of A-Z a-z 0-9 _ . @ -")

        async def attempt() -> TutorRecord | None:
            (old,) = await self.store.get_tutors([profile.tutor_id])
            if old is None:
                new = replace(profile, state=TutorState.OFFLINE, offer=None, version=1)
            else:
                new = replace(old, name=profile.name, teaches=profile.teaches, strengths=profile.strengths,
                              version=old.version + 1)
            return new if await self._commit([old], [new]) else None

        return await self._retry(attempt)

    async def create_request(self, student_id: str, body: dict[str, Any], now: float) -> RequestRecord:
        request = tr.new_request(
            new_id("rq_"), student_id, body.get("subject"), body.get("grade"), body.get("knowledge_points", []),
            body.get("text", ""), body.get("favourite"), body.get("direct", False), now, self.settings,
            body.get("only", False),
        )
        if request.favourite is not None:
            (fav,) = await self.store.get_tutors([request.favourite])
            if fav is None:
                raise ValidationFailed("favourite", "no such tutor")
            if request.direct and not fav.teaches_subject(request.subject):
                raise ValidationFailed("favourite", "this tutor does not teach the subject")
            if request.direct and fav.state is TutorState.OFFLINE:
                request = replace(request, notice="favourite_offline")  # told at once, in the reply and a push
        if any(not r.state.terminal for r in await self.recent_requests(student_id)):
            raise Conflict("you already have an open request; cancel it first")
        event = MatchEvent(student_id, "request", {"request": request.public()})
        if not await self._commit([None], [request], events=[event]):
            raise Conflict("request id collision; try again")
        return request

    async def cancel_request(self, request_id: str, student_id: str, now: float) -> RequestRecord:
        async def attempt() -> RequestRecord | None:
            r = await self.request(request_id)
            new = tr.cancel(r, student_id, now)
            if r.offer is None:
                event = MatchEvent(student_id, "request", {"request": new.public()})
                ok = await self._commit([r], [new], events=[event])
                return new if ok else None
            t = await self.tutor(r.offer.tutor_id)
            released = tr.release_tutor(t, now, self.settings) if t.offer == r.offer else None
            old_t = [t] if released else []
            ok = await self._commit([r, *old_t], [new, *([released] if released else [])],
                                    events=withdrawn(t.tutor_id, new, "cancelled"))
            return new if ok else None

        return await self._retry(attempt)

    async def set_availability(self, tutor_id: str, available: bool, now: float) -> TutorRecord:
        async def attempt() -> TutorRecord | None:
            t = await self.tutor(tutor_id)
            ended = await self._session_ended(t)
            if available:
                new = tr.set_available(t, now, self.settings)
                return new if await self._commit([t], [new], events=ended) else None
            return await self.take_offline(t, now, "tutor went offline", ended)

        return await self._retry(attempt)

    async def _session_ended(self, t: TutorRecord) -> list[MatchEvent]:
        """When a tutor in a session becomes available or leaves, the session is over: tell
        both sides (the student's page moves on to rating it)."""
        if t.state is not TutorState.IN_SESSION or t.session_id is None:
            return []
        request_id = await self.store.hget(SESSIONS, t.session_id)
        (r,) = await self.store.get_requests([request_id]) if request_id else (None,)
        data = {"session_id": t.session_id, "request_id": request_id, "tutor_id": t.tutor_id}
        users = [t.tutor_id] + ([r.student_id] if r is not None else [])
        return [MatchEvent(user, "session_ended", data) for user in users]

    async def take_offline(
        self, t: TutorRecord, now: float, reason: str, events: Sequence[MatchEvent] = (),
    ) -> TutorRecord | None:
        new = tr.set_offline(t, now, self.settings)
        if new is t:
            return t
        if t.offer is None:
            return new if await self._commit([t], [new], events=events) else None
        r = await self.request(t.offer.request_id)
        if r.offer != t.offer:  # the request moved on; the tutor's copy is stale
            return new if await self._commit([t], [new]) else None
        back = tr.return_request(r, t.tutor_id, now, refused=False)
        ok = await self._commit([t, r], [new, back], events=withdrawn(t.tutor_id, back, reason))
        return new if ok else None

    async def heartbeat(self, tutor_id: str, now: float) -> TutorRecord:
        async def attempt() -> TutorRecord | None:
            t = await self.tutor(tutor_id)
            new = tr.heartbeat(t, now, self.settings)
            return new if await self._commit([t], [new]) else None

        return await self._retry(attempt)

    async def accept(self, tutor_id: str, request_id: str, now: float) -> Match:
        session_id = new_id("s_")

        async def attempt() -> Match | None:
            r, t = await self.request(request_id), await self.tutor(tutor_id)
            new_r, new_t = tr.accept(r, t, session_id, now, self.settings)
            data = {"request_id": r.request_id, "session_id": session_id, "tutor_id": t.tutor_id,
                    "student_id": r.student_id}
            events = [MatchEvent(r.student_id, "matched", data), MatchEvent(t.tutor_id, "matched", data),
                      MatchEvent(r.student_id, "request", {"request": new_r.public()})]
            ok = await self._commit([r, t], [new_r, new_t], events=events)
            return Match(session_id, new_r, new_t) if ok else None

        return await self._retry(attempt)

    async def decline(self, tutor_id: str, request_id: str, now: float, *, ignored: bool = False) -> RequestRecord:
        async def attempt() -> RequestRecord | None:
            r, t = await self.request(request_id), await self.tutor(tutor_id)
            new_r, new_t = tr.decline(r, t, now, self.settings, ignored=ignored)
            reason = "lease expired" if ignored else "declined"
            ok = await self._commit([r, t], [new_r, new_t], events=withdrawn(t.tutor_id, new_r, reason))
            return new_r if ok else None

        return await self._retry(attempt)

    async def report_outcome(
        self, session_id: str, student_id: str, rating: Any, check: Any = None, now: float | None = None,
    ) -> RequestRecord:
        """The student's rating (1-5) and optional check result (0-1) of a session; the tutor's
        expertise, the population's, the pair's history and the student's knowledge state on each
        of the request's points learn from it, in the same commit. Once per session."""
        y = outcome_score(rating, check)
        when = time.time() if now is None else now
        request_id = await self.store.hget(SESSIONS, session_id)
        if request_id is None:
            raise NotFound(f"no session {session_id!r}")

        async def attempt() -> RequestRecord | None:
            r = await self.request(request_id)
            if r.student_id != student_id:
                raise Forbidden("only the session's student reports its outcome")
            assert r.tutor_id is not None
            new = tr.mark_outcome(r)
            increments = outcome_increments(r.subject, r.band, r.knowledge_points, y)
            ops = [Op("hincr", key, f"{k}#{part}", repr(v))
                   for key in (expertise_key(r.tutor_id), population_key(r.subject, r.band))
                   for k, (n, s) in increments.items()
                   for part, v in (("n", n), ("s", s))]
            (t,) = await self.store.get_tutors([r.tutor_id])
            ops += [Op("hincr", population_key(r.subject, r.band), f"{k}#{part}", repr(v))
                    for k, (n, s) in lift_increments(t, r.subject, r.band, r.knowledge_points, y).items()
                    for part, v in (("n", n), ("s", s))]
            ops += [Op("hincr", pairs_key(student_id), f"{r.tutor_id}#n", "1.0"),
                    Op("hincr", pairs_key(student_id), f"{r.tutor_id}#s", repr(y))]
            ops += await self._knowledge_ops(r, None if check is None else float(check), when)
            return new if await self._commit([r], [new], ops=ops) else None

        return await self._retry(attempt)

    async def _knowledge_ops(self, r: RequestRecord, check: float | None, now: float) -> list[Op]:
        """The student's knowledge state after a session on each of the request's points."""
        if not r.knowledge_points:
            return []
        states, params = await self.knowledge_state(r.student_id), await self.bkt_params()
        ops = [Op("sadd", KNOWLEDGE_STUDENTS, r.student_id)]
        for kp in r.knowledge_points:
            state = kn.update(states.get(kp), check, params.get(kp, kn.DEFAULT), now)
            ops.append(Op("hset", knowledge_key(r.student_id), kp, state.pack()))
            if check is not None:
                entry = msgpack.packb([r.student_id, kp, now, check, r.request_id])
                ops.append(Op("rpush", OBSERVATIONS, value=entry.hex()))
        return ops

    async def knowledge_state(self, student_id: str) -> dict[str, kn.KnowledgeState]:
        (h,) = await self.store.hgetall_many([knowledge_key(student_id)])
        return {kp: kn.KnowledgeState.unpack(v) for kp, v in h.items()}

    async def bkt_params(self) -> dict[str, kn.BktParams]:
        (h,) = await self.store.hgetall_many([BKT_PARAMS])
        return {kp: kn.BktParams.unpack(v) for kp, v in h.items()}

    async def knowledge_view(self, student_id: str, lang: str = "en", *, for_tutor: bool = False) -> dict[str, Any]:
        """The student's knowledge state in words: weakest points first, with the catalogue's name
        in ``lang`` (zh or en) and a sentence for the student (or, ``for_tutor``, about them)."""
        states = await self.knowledge_state(student_id)
        cat = catalogue()
        points = []
        for kp, st in sorted(states.items(), key=lambda kv: (kv[1].p_known, kv[0])):
            node = cat.get(kp)
            points.append({"id": kp, "name": node.name(lang) if node else kp, "p_known": round(st.p_known, 3),
                           "level": st.level, "checks": st.observations, "sessions": st.sessions,
                           "says": kn.describe(st, lang=lang, for_tutor=for_tutor)})
        weak = [str(p["name"]) for p in points if p["level"] == "weak"]
        zh = lang.lower().startswith("zh")
        if not points:
            summary = "还没有学习记录" if zh else "no sessions on record yet"
        elif weak:
            summary = ("薄弱点：" + "、".join(weak)) if zh else "weak points: " + ", ".join(weak)  # noqa: RUF001
        else:
            summary = "没有明显的薄弱点" if zh else "no weak points on record"
        return {"student_id": student_id, "summary": summary, "points": points}

    async def knowledge_rows(self) -> list[dict[str, Any]]:
        """Every student's state per point, for researchers (``knowledge_csv``)."""
        students = sorted(await self.store.smembers(KNOWLEDGE_STUDENTS))
        rows = []
        for sid, h in zip(students, await self.store.hgetall_many([knowledge_key(s) for s in students]), strict=True):
            for kp, v in sorted(h.items()):
                st = kn.KnowledgeState.unpack(v)
                node = catalogue().get(kp)
                rows.append({"student_id": sid, "subject": node.subject if node else kp.split(".")[0],
                             "knowledge_point": kp, "p_known": round(st.p_known, 6), "level": st.level,
                             "checks": st.observations, "sessions": st.sessions, "updated_at": st.updated_at})
        return rows

    async def fit_knowledge(self, min_observations: int | None = None) -> dict[str, kn.BktParams]:
        """Refit each point's BKT parameters from every observation so far (points with at least
        ``bkt_min_observations``), store them, and return them."""
        need = self.settings.bkt_min_observations if min_observations is None else min_observations
        sequences: dict[str, dict[str, list[float]]] = {}
        for raw in await self.store.lrange(OBSERVATIONS):
            student, kp, _, check, _ = msgpack.unpackb(raw)
            sequences.setdefault(str(kp), {}).setdefault(str(student), []).append(float(check))
        fitted = await asyncio.to_thread(_fit_points, sequences, need)
        if fitted:
            ops = [Op("hset", BKT_PARAMS, kp, p.pack()) for kp, p in fitted.items()]
            await self.store.commit(Commit((), (), (*ops, Op("change", CHANGES, member=BKT_PARAMS))))
        return fitted

    async def offers_made(self) -> list[Offer]:
        """Every offer made, oldest first (bounded; for audits and tests)."""
        return [Offer(*msgpack.unpackb(raw)) for raw in await self.store.offer_log()]

    async def profile(self, tutor_id: str) -> dict[str, Any]:
        """A tutor's profile with learned estimates, as ``tutors export`` writes it."""
        t = await self.tutor(tutor_id)
        stats = (await self.stats([tutor_id]))[tutor_id]
        estimates = []
        for pool in t.teaches:
            band = self.model.band(t, stats, pool.subject, pool.band)
            points = sorted({k.split("|", 2)[2] for k in stats if k.startswith(f"{pool.subject}|{pool.band}|")} - {""})
            estimates.append({
                "subject": pool.subject, "band": pool.band, "mean": round(band.mean, 4), "sessions": band.sessions,
                "knowledge_points": {kp: {"mean": round(e.mean, 4), "sessions": e.sessions}
                                     for kp in points
                                     for e in [self.model.point(t, stats, pool.subject, pool.band, kp)]},
            })
        return {"tutor_id": t.tutor_id, "name": t.name,
                "teaches": [{"subject": p.subject, "band": p.band} for p in t.teaches],
                "strengths": list(t.strengths), "estimates": estimates}



def _fit_points(sequences: dict[str, dict[str, list[float]]], need: int) -> dict[str, kn.BktParams]:
    """BKT parameters for each point with at least ``need`` observations (runs in a thread)."""
    return {kp: kn.fit(list(by_student.values())) for kp, by_student in sorted(sequences.items())
            if sum(len(v) for v in by_student.values()) >= need}
