"""Every change the matcher makes to its records, as pure functions: records and ``now`` in,
new records out (each with its version bumped). The lifecycle tables decide what is legal; the
store then writes the results with a compare-and-set on the old versions, so two workers that
raced on the same records cannot both win.
"""

from __future__ import annotations

from dataclasses import replace

from .catalogue import catalogue
from .errors import Conflict, Forbidden, ValidationFailed
from .lifecycle import RequestState, TutorState, check_request, check_tutor
from .records import IDENT, USER_ID, Offer, RequestRecord, TutorRecord, grade_band
from .settings import MatcherSettings


def _bump_r(r: RequestRecord, **changes: object) -> RequestRecord:
    return replace(r, version=r.version + 1, **changes)  # type: ignore[arg-type]


def _bump_t(t: TutorRecord, now: float, settings: MatcherSettings, **changes: object) -> TutorRecord:
    declines: tuple[float, ...] = changes.pop("declines", t.declines)  # type: ignore[assignment]
    sessions: tuple[float, ...] = changes.pop("sessions", t.sessions)  # type: ignore[assignment]
    return replace(t, version=t.version + 1, declines=tuple(x for x in declines if now - x < settings.decline_memory_s),
                   sessions=tuple(x for x in sessions if now - x < settings.load_window_s), **changes)  # type: ignore[arg-type]


def new_request(
    request_id: str, student_id: str, subject: object, grade: object, knowledge_points: object, text: object,
    favourite: object, direct: object, now: float, settings: MatcherSettings, only: object = False,
) -> RequestRecord:
    """A queued request, with every field checked (they come from the network) and its knowledge
    points checked against the catalogue."""
    if not isinstance(subject, str) or not IDENT.fullmatch(subject):
        raise ValidationFailed("subject", "must be a subject id: lowercase letters, digits, . _ - (1-64)")
    if isinstance(grade, bool) or not isinstance(grade, int):
        raise ValidationFailed("grade", "must be a school grade from 1 to 12")
    grade_band(grade)
    if not isinstance(knowledge_points, list) or not all(isinstance(k, str) and IDENT.fullmatch(k)
                                                         for k in knowledge_points):
        raise ValidationFailed("knowledge_points", "must be a list of knowledge point ids")
    if len(knowledge_points) > settings.max_knowledge_points:
        raise ValidationFailed("knowledge_points", f"at most {settings.max_knowledge_points} may be named")
    if not isinstance(text, str) or len(text) > settings.max_text_chars:
        raise ValidationFailed("text", f"must be a string of at most {settings.max_text_chars} characters")
    if favourite is not None and (not isinstance(favourite, str) or not USER_ID.fullmatch(favourite)):
        raise ValidationFailed("favourite", "must be a tutor id or null")
    if not isinstance(direct, bool):
        raise ValidationFailed("direct", "must be true or false")
    if direct and favourite is None:
        raise ValidationFailed("direct", "a direct request must name the tutor in favourite")
    if not isinstance(only, bool):
        raise ValidationFailed("only", "must be true or false")
    if only and not direct:
        raise ValidationFailed("only", "only a direct request can be for this tutor alone")
    if subject not in catalogue() or catalogue().nodes[subject].kind != "subject":
        names = ", ".join(n.id for n in catalogue().subjects())
        raise ValidationFailed("subject", f"must be one of the catalogue's subjects: {names}")
    catalogue().check_request_points(subject, knowledge_points)
    return RequestRecord(
        request_id, student_id, subject, grade, tuple(dict.fromkeys(knowledge_points)), text, favourite, direct,
        created_at=now, version=1, only=only,
    )


def set_available(tutor: TutorRecord, now: float, settings: MatcherSettings) -> TutorRecord:
    """The tutor is ready for offers (also how a tutor ends a session)."""
    if tutor.state is TutorState.AVAILABLE:
        return _bump_t(tutor, now, settings, last_seen=now)
    if tutor.state is TutorState.OFFERED:
        raise Conflict("answer the offer you hold first")
    if not tutor.teaches:
        raise Conflict("this tutor has no subjects on file")
    check_tutor(tutor.state, TutorState.AVAILABLE)
    return _bump_t(tutor, now, settings, state=TutorState.AVAILABLE, last_seen=now, available_since=now,
                   session_id=None)


def set_offline(tutor: TutorRecord, now: float, settings: MatcherSettings) -> TutorRecord:
    """The tutor leaves (or went silent); an offer they held must be returned by the caller."""
    if tutor.state is TutorState.OFFLINE:
        return tutor
    check_tutor(tutor.state, TutorState.OFFLINE)
    return _bump_t(tutor, now, settings, state=TutorState.OFFLINE, offer=None)


def heartbeat(tutor: TutorRecord, now: float, settings: MatcherSettings) -> TutorRecord:
    if tutor.state is TutorState.OFFLINE:
        raise Conflict("the tutor is offline: set availability first")
    return _bump_t(tutor, now, settings, last_seen=now)


def make_offer(
    request: RequestRecord, tutor: TutorRecord, now: float, settings: MatcherSettings,
) -> tuple[RequestRecord, TutorRecord]:
    if request.state is not RequestState.QUEUED or tutor.state is not TutorState.AVAILABLE:
        raise Conflict("the request or the tutor is no longer free")
    offer = Offer(request.request_id, tutor.tutor_id, now, now + settings.offer_lease_s)
    r = _bump_r(request, state=check_request(request.state, RequestState.OFFERED), offer=offer)
    t = _bump_t(tutor, now, settings, state=check_tutor(tutor.state, TutorState.OFFERED), offer=offer)
    return r, t


def _held(request: RequestRecord, tutor: TutorRecord) -> Offer:
    offer = request.offer
    if offer is None or offer.tutor_id != tutor.tutor_id or tutor.offer != offer:
        raise Conflict("this tutor holds no offer of this request")
    return offer


def accept(
    request: RequestRecord, tutor: TutorRecord, session_id: str, now: float, settings: MatcherSettings,
) -> tuple[RequestRecord, TutorRecord]:
    offer = _held(request, tutor)
    if now >= offer.expires_at:
        raise Conflict("the offer has expired")
    r = _bump_r(request, state=check_request(request.state, RequestState.ACCEPTED), offer=None,
                tutor_id=tutor.tutor_id, session_id=session_id, ended_at=now)
    t = _bump_t(tutor, now, settings, state=check_tutor(tutor.state, TutorState.IN_SESSION), offer=None,
                session_id=session_id, last_seen=now, sessions=(*tutor.sessions, now))
    return r, t


def return_request(request: RequestRecord, tutor_id: str, now: float, *, refused: bool = True) -> RequestRecord:
    """An offered request back in the queue without ``tutor_id``. A direct request that its tutor
    turned down or let pass (``refused``) becomes an open one, with that tutor kept as the
    favourite; an "only this tutor" one ends (expired, and the student is told why). One whose
    tutor merely went offline keeps waiting for them (only) or opens (otherwise)."""
    excluded = request.excluded if tutor_id in request.excluded else (*request.excluded, tutor_id)
    theirs = request.direct and request.favourite == tutor_id
    if theirs and request.only:
        if refused:
            return _bump_r(request, state=check_request(request.state, RequestState.EXPIRED), offer=None,
                           ended_at=now, notice="favourite_declined_only")
        return _bump_r(request, state=check_request(request.state, RequestState.QUEUED), offer=None,
                       notice="favourite_offline")
    return _bump_r(request, state=check_request(request.state, RequestState.QUEUED), offer=None,
                   excluded=excluded, direct=False,
                   notice=("favourite_declined" if refused else "widened") if theirs else request.notice)


def widen(request: RequestRecord) -> RequestRecord:
    """A direct request whose tutor has not taken it in time opens to every suitable tutor."""
    if not request.direct or request.only or request.state is not RequestState.QUEUED:
        raise Conflict("only a waiting direct request that is not for one tutor alone widens")
    return _bump_r(request, direct=False, notice="widened")


def decline(
    request: RequestRecord, tutor: TutorRecord, now: float, settings: MatcherSettings, *, ignored: bool = False,
) -> tuple[RequestRecord, TutorRecord]:
    """The tutor said no (or let the lease run out: ``ignored``, which also starts a cool-down)."""
    _held(request, tutor)
    r = return_request(request, tutor.tutor_id, now)
    t = _bump_t(
        tutor, now, settings, state=check_tutor(tutor.state, TutorState.AVAILABLE), offer=None,
        declines=(*tutor.declines, now), available_since=now,
        cooldown_until=now + settings.ignore_cooldown_s if ignored else tutor.cooldown_until,
    )
    return r, t


def release_tutor(tutor: TutorRecord, now: float, settings: MatcherSettings) -> TutorRecord:
    """The tutor's offer ended without their doing (the request was cancelled or expired)."""
    return _bump_t(tutor, now, settings, state=check_tutor(tutor.state, TutorState.AVAILABLE), offer=None,
                   available_since=now)


def cancel(request: RequestRecord, student_id: str, now: float) -> RequestRecord:
    if request.student_id != student_id:
        raise Forbidden("only the student who asked may cancel a request")
    if request.state.terminal:
        raise Conflict(f"the request is already {request.state.value}")
    return _bump_r(request, state=check_request(request.state, RequestState.CANCELLED), offer=None, ended_at=now)


def expire(request: RequestRecord, now: float) -> RequestRecord:
    return _bump_r(request, state=check_request(request.state, RequestState.EXPIRED), offer=None, ended_at=now)


def mark_outcome(request: RequestRecord) -> RequestRecord:
    if request.outcome_reported:
        raise Conflict("this session's outcome has already been reported")
    return _bump_r(request, outcome_reported=True)
