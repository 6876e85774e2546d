"""The matcher's operations, as the API and the worker call them: read records, apply a pure
transition, commit with compare-and-set, and retry when another worker got there first.

Every method takes ``now`` (wall-clock seconds, shared by every process on one Redis).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import msgpack

from . import transitions as tr
from .errors import Conflict, Forbidden, NotFound, ValidationFailed
from .expertise import ExpertiseModel, Stats, outcome_increments, outcome_score
from .indexes import SESSIONS, TUTORS, Record, expertise_key, pairs_key, student_key
from .lifecycle import TutorState
from .records import USER_ID, Offer, RequestRecord, TutorRecord
from .scoring import PairHistory, Weights
from .settings import MatcherSettings
from .store import MatchEvent, Op, Store, build_commit

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

    async def tutor_ids(self) -> list[str]:
        return sorted(await self.store.smembers(TUTORS))

    async def stats(self, tutor_ids: Sequence[str]) -> dict[str, Stats]:
        raw = await self.store.hgetall_many([expertise_key(t) for t in tutor_ids])
        return {t: _pairs_of(h) for t, h in zip(tutor_ids, raw, strict=True)}

    async def pair_history(self, student_ids: Iterable[str]) -> PairHistory:
        students = sorted(set(student_ids))
        raw = await self.store.hgetall_many([pairs_key(s) for s in students])
        return {(s, t): v for s, h in zip(students, raw, strict=True) for t, v in _pairs_of(h).items()}

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
        )
        if request.favourite is not None:
            (fav,) = await self.store.get_tutors([request.favourite])
            if fav is None:
                raise ValidationFailed("favourite", "no such tutor")
            if request.direct and not fav.teaches_subject(request.subject):
                raise ValidationFailed("favourite", "this tutor does not teach the subject")
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
        back = tr.return_request(r, t.tutor_id)
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
        self, session_id: str, student_id: str, rating: Any, check: Any = None,
    ) -> RequestRecord:
        """The student's rating (1-5) and optional check result (0-1) of a session; the tutor's
        expertise profile and the pair's history learn from it. Once per session."""
        y = outcome_score(rating, check)
        request_id = await self.store.hget(SESSIONS, session_id)
        if request_id is None:
            raise NotFound(f"no session {session_id!r}")

        async def attempt() -> RequestRecord | None:
            r = await self.request(request_id)
            if r.student_id != student_id:
                raise Forbidden("only the session's student reports its outcome")
            assert r.tutor_id is not None
            new = tr.mark_outcome(r)
            ops = [Op("hincr", expertise_key(r.tutor_id), f"{k}#{part}", repr(v))
                   for k, (n, s) in outcome_increments(r.subject, r.band, r.knowledge_points, y).items()
                   for part, v in (("n", n), ("s", s))]
            ops += [Op("hincr", pairs_key(student_id), f"{r.tutor_id}#n", "1.0"),
                    Op("hincr", pairs_key(student_id), f"{r.tutor_id}#s", repr(y))]
            return new if await self._commit([r], [new], ops=ops) else None

        return await self._retry(attempt)

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


def _pairs_of(h: dict[str, str]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for field, value in h.items():
        key, _, part = field.rpartition("#")
        n, s = out.get(key, (0.0, 0.0))
        out[key] = (float(value), s) if part == "n" else (n, float(value))
    return out

