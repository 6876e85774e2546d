"""The two state machines of the matcher, each with its legal transitions in one table.

A request is ``queued`` until offered; an offer holds it (and one tutor) for a lease; accept ends
it well, cancel (by the student) or expiry (too long unmatched) end it otherwise. A declined or
ignored offer sends it back to ``queued``.

A tutor is ``offline`` until they mark themselves available; an offer makes them ``offered``;
accept puts them ``in_session`` until the session ends. Missing heartbeats send any state to
``offline`` (an offer they held goes back to the queue).
"""

from __future__ import annotations

from enum import StrEnum

from .errors import IllegalTransition


class RequestState(StrEnum):
    QUEUED = "queued"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in _REQUEST_TERMINAL


class TutorState(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    OFFERED = "offered"
    IN_SESSION = "in_session"


_REQUEST_TERMINAL = frozenset({RequestState.ACCEPTED, RequestState.CANCELLED, RequestState.EXPIRED})

REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.QUEUED: frozenset({RequestState.OFFERED, RequestState.CANCELLED, RequestState.EXPIRED}),
    RequestState.OFFERED: frozenset({
        RequestState.QUEUED, RequestState.ACCEPTED, RequestState.CANCELLED, RequestState.EXPIRED,
    }),
    RequestState.ACCEPTED: frozenset(),
    RequestState.CANCELLED: frozenset(),
    RequestState.EXPIRED: frozenset(),
}

TUTOR_TRANSITIONS: dict[TutorState, frozenset[TutorState]] = {
    TutorState.OFFLINE: frozenset({TutorState.AVAILABLE}),
    TutorState.AVAILABLE: frozenset({TutorState.OFFLINE, TutorState.OFFERED}),
    TutorState.OFFERED: frozenset({TutorState.AVAILABLE, TutorState.OFFLINE, TutorState.IN_SESSION}),
    TutorState.IN_SESSION: frozenset({TutorState.AVAILABLE, TutorState.OFFLINE}),
}


def check_request(current: RequestState, target: RequestState) -> RequestState:
    """``target`` if a request may go there from ``current``; else ``IllegalTransition``."""
    if target not in REQUEST_TRANSITIONS[current]:
        raise IllegalTransition("a request", current.value, target.value)
    return target


def check_tutor(current: TutorState, target: TutorState) -> TutorState:
    """``target`` if a tutor may go there from ``current``; else ``IllegalTransition``."""
    if target not in TUTOR_TRANSITIONS[current]:
        raise IllegalTransition("a tutor", current.value, target.value)
    return target
