"""The records the store keeps: one per request and one per tutor, each with a version that
every write bumps (the store's compare-and-set checks it). Pools and grade bands live here too.

Records are frozen; a change makes a new record with ``dataclasses.replace``. ``to_wire`` and
``from_wire`` turn them into msgpack-friendly lists and back, checking every field.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ValidationFailed
from .lifecycle import RequestState, TutorState

GRADE_BANDS: tuple[str, ...] = ("primary-lower", "primary-upper", "junior", "senior")
_BAND_OF_GRADE = {g: GRADE_BANDS[(g - 1) // 3] for g in range(1, 13)}
IDENT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # subjects and knowledge points
USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# What a request's ``notice`` tells its student (docs/matcher.md, "Direct requests"):
NOTICES: dict[str, str] = {
    "favourite_offline": "the tutor you asked for is not online; we wait for them",
    "widened": "the tutor you asked for did not come online in time; any suitable tutor may now take it",
    "favourite_declined": "the tutor you asked for could not take it; any suitable tutor may now take it",
    "favourite_declined_only": "the tutor you asked for could not take it, and you asked for only them",
}


def grade_band(grade: int) -> str:
    """The grade band of a school grade 1-12 (primary 1-3 and 4-6, junior 7-9, senior 10-12)."""
    if grade not in _BAND_OF_GRADE:
        raise ValidationFailed("grade", "must be a school grade from 1 to 12")
    return _BAND_OF_GRADE[grade]


def band_distance(a: str, b: str) -> int:
    return abs(GRADE_BANDS.index(a) - GRADE_BANDS.index(b))


@dataclass(frozen=True, slots=True, order=True)
class Pool:
    """Requests and tutors are matched within a pool: a subject and a grade band."""

    subject: str
    band: str
    key: str = field(init=False, compare=False, repr=False)  # "subject/band"

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.subject}/{self.band}")

    @classmethod
    def parse(cls, key: str) -> Pool:
        subject, _, band = key.partition("/")
        return pool_of(subject, band)


@functools.cache
def pool_of(subject: str, band: str) -> Pool:
    """The one ``Pool`` of a subject and band (records read by the thousand share them)."""
    return Pool(subject, band)


@dataclass(frozen=True, slots=True)
class Offer:
    request_id: str
    tutor_id: str
    offered_at: float
    expires_at: float

    def to_wire(self) -> list[Any]:
        return [self.request_id, self.tutor_id, self.offered_at, self.expires_at]

    @classmethod
    def from_wire(cls, v: Any) -> Offer | None:
        if v is None:
            return None
        return cls(str(v[0]), str(v[1]), float(v[2]), float(v[3]))


@dataclass(frozen=True, slots=True)
class TutorRecord:
    tutor_id: str
    name: str = ""
    teaches: tuple[Pool, ...] = ()
    strengths: tuple[str, ...] = ()  # declared best knowledge points or areas (dotted prefixes)
    state: TutorState = TutorState.OFFLINE
    last_seen: float = 0.0
    available_since: float = 0.0
    offer: Offer | None = None
    session_id: str | None = None
    cooldown_until: float = 0.0
    declines: tuple[float, ...] = ()  # times of recent declines and ignored offers
    sessions: tuple[float, ...] = ()  # start times of sessions within the load window
    version: int = 0

    def teaches_subject(self, subject: str) -> bool:
        return any(p.subject == subject for p in self.teaches)

    def to_wire(self) -> list[Any]:
        return [
            self.tutor_id, self.name, [[p.subject, p.band] for p in self.teaches], list(self.strengths),
            self.state.value, self.last_seen, self.available_since,
            None if self.offer is None else self.offer.to_wire(), self.session_id, self.cooldown_until,
            list(self.declines), list(self.sessions), self.version,
        ]

    @classmethod
    def from_wire(cls, v: Any) -> TutorRecord:
        return cls(
            str(v[0]), str(v[1]), tuple(pool_of(str(s), str(b)) for s, b in v[2]), tuple(str(s) for s in v[3]),
            TutorState(v[4]), float(v[5]), float(v[6]), Offer.from_wire(v[7]),
            None if v[8] is None else str(v[8]), float(v[9]),
            tuple(float(t) for t in v[10]), tuple(float(t) for t in v[11]), int(v[12]),
        )


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    student_id: str
    subject: str
    grade: int
    knowledge_points: tuple[str, ...] = ()
    text: str = ""
    favourite: str | None = None  # a tutor the student would like; a bonus in scoring
    direct: bool = False  # only the favourite may be offered it (until they decline or ignore it, or it widens)
    created_at: float = 0.0
    state: RequestState = RequestState.QUEUED
    excluded: tuple[str, ...] = ()  # tutors who declined or ignored it
    offer: Offer | None = None
    tutor_id: str | None = None  # who accepted it
    session_id: str | None = None
    ended_at: float | None = None
    outcome_reported: bool = False
    version: int = 0
    only: bool = False  # "only this tutor": a direct request that never widens to everyone by itself
    notice: str = ""  # what the student was last told about it: one of NOTICES, or ""

    @property
    def band(self) -> str:
        return grade_band(self.grade)

    @property
    def pool(self) -> Pool:
        return pool_of(self.subject, self.band)

    def to_wire(self) -> list[Any]:
        return [
            self.request_id, self.student_id, self.subject, self.grade, list(self.knowledge_points), self.text,
            self.favourite, self.direct, self.created_at, self.state.value, list(self.excluded),
            None if self.offer is None else self.offer.to_wire(), self.tutor_id, self.session_id,
            self.ended_at, self.outcome_reported, self.version, self.only, self.notice,
        ]

    @classmethod
    def from_wire(cls, v: Any) -> RequestRecord:
        return cls(
            str(v[0]), str(v[1]), str(v[2]), int(v[3]), tuple(str(k) for k in v[4]), str(v[5]),
            None if v[6] is None else str(v[6]), bool(v[7]), float(v[8]), RequestState(v[9]),
            tuple(str(t) for t in v[10]), Offer.from_wire(v[11]), None if v[12] is None else str(v[12]),
            None if v[13] is None else str(v[13]), None if v[14] is None else float(v[14]), bool(v[15]), int(v[16]),
            bool(v[17]) if len(v) > 17 else False, str(v[18]) if len(v) > 18 else "",  # records from before 'only'
        )

    def public(self) -> dict[str, Any]:
        """What the student (and the offered tutor) may see of it, for the API."""
        return {
            "request_id": self.request_id, "student_id": self.student_id, "subject": self.subject,
            "grade": self.grade, "knowledge_points": list(self.knowledge_points), "text": self.text,
            "favourite": self.favourite, "direct": self.direct, "only": self.only, "notice": self.notice,
            "notice_text": NOTICES.get(self.notice, ""), "created_at": self.created_at,
            "state": self.state.value, "tutor_id": self.tutor_id, "session_id": self.session_id,
            "offer_expires_at": None if self.offer is None else self.offer.expires_at,
        }
