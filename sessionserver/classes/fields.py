"""A class's fields as a client sends them (JSON), checked one by one. Every error names its
field; all of a body's errors are reported together; a field this API does not know is an error
(a misspelt ``titel`` must not be dropped silently)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ValidationFailed
from .model import Audience, AudienceKind
from .settings import ClassSettings

USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
SCHOOL_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SUBJECT = re.compile(r"[a-z][a-z0-9_-]{0,31}")
GRADES = range(1, 13)
MAX_AHEAD_S = 366 * 86400  # a class is scheduled at most a year ahead
PAST_SLACK_S = 300  # a start this much in the past is still accepted (a teacher starting now)
FIELDS = ("title", "subject", "grade", "starts_unix", "duration_min", "audience")


class FieldErrors(ValidationFailed):
    """Several fields failed at once: ``errors`` maps each to its sentence; the message (and
    ``field``) is the first."""

    def __init__(self, errors: dict[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(first, errors[first])
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ClassFields:
    title: str | None = None
    subject: str | None = None
    grade: int | None = None
    starts_unix: int | None = None
    duration_min: int | None = None
    audience: Audience | None = None

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}


def parse(body: dict[str, Any], settings: ClassSettings, now: float, *, complete: bool) -> ClassFields:
    """The fields of ``body``; with ``complete`` (a new class) every field but ``audience`` is
    required. ``FieldErrors`` lists every unusable field."""
    errors: dict[str, str] = {}
    for name in body:
        if name not in FIELDS:
            errors[str(name)[:64]] = f"is not a field of a class (the fields are {', '.join(FIELDS)})"
    checks: dict[str, Callable[[Any], Any]] = {
        "title": lambda v: _title(v, settings.title_max_chars),
        "subject": _subject,
        "grade": _grade,
        "starts_unix": lambda v: _starts(v, now),
        "duration_min": lambda v: _duration(v, settings.max_duration_min),
        "audience": lambda v: _audience(v, settings.max_invited),
    }
    values: dict[str, Any] = {}
    for name, check in checks.items():
        if name not in body:
            if complete and name != "audience":
                errors[name] = "is required"
            continue
        try:
            values[name] = check(body[name])
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise FieldErrors(errors)
    if complete and "audience" not in values:
        values["audience"] = Audience()
    return ClassFields(**values)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


def _title(value: Any, max_chars: int) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > max_chars:
        raise ValueError(f"must be at most {max_chars} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in text):
        raise ValueError("must not hold control characters")
    return text


def _subject(value: Any) -> str:
    if not isinstance(value, str) or not SUBJECT.fullmatch(value):
        raise ValueError("must be a subject id such as maths or physics")
    return value


def _grade(value: Any) -> int:
    grade = _int(value)
    if grade not in GRADES:
        raise ValueError("must be a school grade from 1 to 12")
    return grade


def _starts(value: Any, now: float) -> int:
    starts = _int(value)
    if starts < now - PAST_SLACK_S:
        raise ValueError("must not be in the past")
    if starts > now + MAX_AHEAD_S:
        raise ValueError("must be within a year from now")
    return starts


def _duration(value: Any, max_min: int) -> int:
    minutes = _int(value)
    if not 5 <= minutes <= max_min:
        raise ValueError(f"must be 5 to {max_min} minutes")
    return minutes


def _audience(value: Any, max_invited: int) -> Audience:
    if not isinstance(value, dict):
        raise ValueError('must be an object such as {"kind": "link"}')
    kind_name = value.get("kind")
    kinds = {k.value: k for k in AudienceKind}
    if kind_name not in kinds:
        raise ValueError("kind must be link, students or school")
    kind = kinds[kind_name]
    allowed = {"kind", "students"} if kind is AudienceKind.STUDENTS else {"kind", "school"} if (
        kind is AudienceKind.SCHOOL) else {"kind"}
    unknown = [str(k)[:64] for k in value if k not in allowed]
    if unknown:
        raise ValueError(f"{kind.value} audience has no field {unknown[0]!r}")
    if kind is AudienceKind.STUDENTS:
        students = value.get("students")
        if not isinstance(students, list) or not students:
            raise ValueError("students must be a non-empty list of user ids")
        if len(students) > max_invited:
            raise ValueError(f"students must be at most {max_invited}")
        bad = next((s for s in students if not isinstance(s, str) or not USER_ID.fullmatch(s)), None)
        if bad is not None:
            raise ValueError("students must be user ids of 1-64 of A-Z a-z 0-9 _ . @ -")
        return Audience(kind, students=frozenset(students))
    if kind is AudienceKind.SCHOOL:
        school = value.get("school")
        if not isinstance(school, str) or not SCHOOL_ID.fullmatch(school):
            raise ValueError("school must be a school id of 1-64 of A-Z a-z 0-9 _ . -")
        return Audience(kind, school=school)
    return Audience(kind)
