"""What a class is: its record, its lifecycle, and who may join it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .errors import IllegalTransition

ROOM_PREFIX = "class-"  # a class's room id is this and its class id


class ClassState(Enum):
    """A class's lifecycle. SCHEDULED -> LIVE (its teacher joined) -> ENDED; SCHEDULED ->
    CANCELLED. A LIVE class may also be ended by the teacher or by the end of its join window."""

    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


TRANSITIONS: dict[ClassState, frozenset[ClassState]] = {
    ClassState.SCHEDULED: frozenset({ClassState.LIVE, ClassState.CANCELLED, ClassState.ENDED}),
    ClassState.LIVE: frozenset({ClassState.ENDED}),
    ClassState.ENDED: frozenset(),
    ClassState.CANCELLED: frozenset(),
}


class AudienceKind(Enum):
    """Who may take a viewer seat: anyone signed in with the link or code, the students on a
    list, or the students of one school (the ``school`` claim of their API token)."""

    LINK = "link"
    STUDENTS = "students"
    SCHOOL = "school"


@dataclass(frozen=True, slots=True)
class Audience:
    kind: AudienceKind = AudienceKind.LINK
    students: frozenset[str] = frozenset()  # for STUDENTS
    school: str = ""  # for SCHOOL

    def admits(self, user_id: str, school: str | None) -> bool:
        if self.kind is AudienceKind.LINK:
            return True
        if self.kind is AudienceKind.STUDENTS:
            return user_id in self.students
        return school is not None and school == self.school

    def public(self) -> dict[str, Any]:
        if self.kind is AudienceKind.STUDENTS:
            return {"kind": self.kind.value, "students": sorted(self.students)}
        if self.kind is AudienceKind.SCHOOL:
            return {"kind": self.kind.value, "school": self.school}
        return {"kind": self.kind.value}


@dataclass(frozen=True, slots=True)
class ClassRecord:
    class_id: str
    code: str  # the short code students type
    teacher_id: str
    subject: str
    grade: int
    title: str
    starts_unix: int
    duration_min: int
    audience: Audience = field(default_factory=Audience)
    state: ClassState = ClassState.SCHEDULED
    created_unix: int = 0
    updated_unix: int = 0
    version: int = 1  # bumped by every change (a store's compare-and-set)

    @property
    def room_id(self) -> str:
        """The id of the class's room on the session server (``/ws/session/{room_id}``)."""
        return ROOM_PREFIX + self.class_id

    @property
    def ends_unix(self) -> int:
        return self.starts_unix + 60 * self.duration_min

    @property
    def open(self) -> bool:
        """Still to come or under way."""
        return self.state in (ClassState.SCHEDULED, ClassState.LIVE)

    def moved(self, target: ClassState, now: float, **changes: Any) -> ClassRecord:
        """This record in ``target`` state (``IllegalTransition`` if the lifecycle forbids it)."""
        if target is not self.state and target not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.state.value, target.value)
        return replace(self, state=target, updated_unix=int(now), version=self.version + 1, **changes)

    def public(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id, "code": self.code, "teacher_id": self.teacher_id, "subject": self.subject,
            "grade": self.grade, "title": self.title, "starts_unix": self.starts_unix,
            "duration_min": self.duration_min, "ends_unix": self.ends_unix, "audience": self.audience.public(),
            "state": self.state.value, "created_unix": self.created_unix, "updated_unix": self.updated_unix,
            "room_id": self.room_id, "join_path": f"/class/{self.class_id}",
        }


@dataclass(frozen=True, slots=True)
class Visit:
    """One stay of a participant in a class's room: joined, and left (None while there)."""

    user_id: str
    role: str  # presenter or viewer
    joined_unix: float
    left_unix: float | None = None
