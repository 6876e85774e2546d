"""The class catalogue with time passed in, on both stores (memory and a real Redis): scheduling
and its field checks, codes, who may see and join a class and when, the lifecycle, attendance and
its CSV, and every limit at a small value."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sessionserver.classes import (
    ClassCatalogue,
    ClassSettings,
    ClassState,
    Conflict,
    Forbidden,
    MemoryClassStore,
    NotFound,
    ValidationFailed,
)
from sessionserver.classes.attendance import attendance_csv
from sessionserver.classes.catalogue import CODE_ALPHABET, Caller, normal_code
from sessionserver.classes.fields import FieldErrors
from sessionserver.classes.redis_store import RedisClassStore
from sessionserver.classes.store import ClassStore
from tests.matcherkit import REDIS_URL
from wire import Role

NOW = 1_800_000_000.0
TEACHER = Caller("t.wang", "tutor")
OTHER_TEACHER = Caller("t.li", "tutor")
ADMIN = Caller("admin-1", "admin")
STUDENT = Caller("s.zhang", "student", school="school-7")
Make = Callable[..., ClassCatalogue]  # a catalogue on the test's store, with settings


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"title": "一元一次方程", "subject": "maths", "grade": 7, "starts_unix": int(NOW) + 3600,
                            "duration_min": 45}
    base.update(changes)
    return base


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ClassStore]:
    if request.param == "memory":
        yield MemoryClassStore()
        return
    redis_store = RedisClassStore(REDIS_URL, prefix=f"tw-classes-{secrets.token_hex(6)}:")
    try:
        yield redis_store
    finally:
        await redis_store.delete_all()
        await redis_store.close()


@pytest.fixture
def catalogue(store: ClassStore) -> Make:
    def make(**settings: Any) -> ClassCatalogue:
        return ClassCatalogue(store, ClassSettings(**settings))

    return make


async def test_a_teacher_schedules_a_class_with_a_code_and_a_room(catalogue: Make) -> None:
    book = catalogue()
    c = await book.create(TEACHER, body(), NOW)
    assert (c.teacher_id, c.state, c.title, c.grade, c.duration_min) == ("t.wang", ClassState.SCHEDULED,
                                                                          "一元一次方程", 7, 45)
    assert len(c.code) == 6 and set(c.code) <= set(CODE_ALPHABET)
    assert c.room_id == f"class-{c.class_id}" and c.public()["join_path"] == f"/class/{c.class_id}"
    assert await book.by_code(STUDENT, c.code.lower()[:3] + " - " + c.code[3:]) == c  # as typed on a phone
    assert normal_code(" ab-c d ") == "ABCD"


async def test_every_bad_field_is_reported_at_once_and_unknown_fields_are_refused(catalogue: Make) -> None:
    book = catalogue()
    with pytest.raises(FieldErrors) as err:
        await book.create(TEACHER, {"title": " ", "grade": True, "starts_unix": int(NOW) - 3600, "titel": "x",
                                    "duration_min": 2, "audience": {"kind": "everyone"}}, NOW)
    assert err.value.errors == {
        "titel": "is not a field of a class (the fields are title, subject, grade, starts_unix, duration_min, "
                 "audience)",
        "title": "must not be empty", "subject": "is required", "grade": "must be a whole number",
        "starts_unix": "must not be in the past", "duration_min": "must be 5 to 240 minutes",
        "audience": "kind must be link, students or school",
    }
    with pytest.raises(ValidationFailed, match="control characters"):
        await book.create(TEACHER, body(title="a\u202eb"), NOW)
    with pytest.raises(ValidationFailed, match="no field 'student'"):
        await book.create(TEACHER, body(audience={"kind": "students", "student": ["s.zhang"]}), NOW)
    with pytest.raises(ValidationFailed, match="user ids"):
        await book.create(TEACHER, body(audience={"kind": "students", "students": ["=cmd|x"]}), NOW)
    with pytest.raises(Forbidden):
        await book.create(STUDENT, body(), NOW)


@pytest.mark.parametrize(("setting", "value", "change", "message"), [
    ("title_max_chars", 3, {"title": "四个汉字"}, "title: must be at most 3 characters"),
    ("max_duration_min", 30, {"duration_min": 31}, "duration_min: must be 5 to 30 minutes"),
    ("max_invited", 2, {"audience": {"kind": "students", "students": ["a", "b", "c"]}},
     "audience: students must be at most 2"),
])
async def test_field_limits_at_small_values(catalogue: Make, setting: str, value: int,
                                            change: dict[str, Any], message: str) -> None:
    book = catalogue(**{setting: value})
    with pytest.raises(ValidationFailed) as err:
        await book.create(TEACHER, body(**change), NOW)
    assert str(err.value) == message


async def test_a_teacher_holds_at_most_the_named_number_of_open_classes(catalogue: Make) -> None:
    book = catalogue(max_classes_per_teacher=2)
    first = await book.create(TEACHER, body(), NOW)
    await book.create(TEACHER, body(), NOW)
    with pytest.raises(Conflict, match="at most 2 classes"):
        await book.create(TEACHER, body(), NOW)
    await book.cancel(TEACHER, first.class_id, NOW)
    await book.create(TEACHER, body(), NOW)  # a cancelled one no longer counts
    await book.create(OTHER_TEACHER, body(), NOW)  # nor do another teacher's


async def test_only_its_teacher_or_an_admin_changes_a_scheduled_class(catalogue: Make) -> None:
    book = catalogue()
    c = await book.create(TEACHER, body(), NOW)
    with pytest.raises(Forbidden):
        await book.update(OTHER_TEACHER, c.class_id, {"title": "mine now"}, NOW)
    moved = await book.update(ADMIN, c.class_id, {"starts_unix": int(NOW) + 7200}, NOW + 1)
    assert (moved.starts_unix, moved.title, moved.version, moved.updated_unix) == (
        int(NOW) + 7200, c.title, c.version + 1, int(NOW) + 1)
    with pytest.raises(ValidationFailed, match="names no field"):
        await book.update(TEACHER, c.class_id, {}, NOW)
    with pytest.raises(NotFound):
        await book.update(TEACHER, "0" * 12, {"title": "x"}, NOW)


async def test_the_lifecycle_scheduled_live_ended_and_cancelled(catalogue: Make) -> None:
    book = catalogue()
    c = await book.create(TEACHER, body(), NOW)
    seat = await book.join(TEACHER, c.class_id, c.starts_unix - 60)  # the teacher opens it: live
    assert seat.role is Role.PRESENTER and seat.record.state is ClassState.LIVE
    with pytest.raises(Conflict, match="cannot be changed"):
        await book.update(TEACHER, c.class_id, {"title": "late change"}, NOW)
    with pytest.raises(Conflict, match="end it instead"):
        await book.cancel(TEACHER, c.class_id, NOW)
    ended = await book.end(TEACHER, c.class_id, c.starts_unix + 600)
    assert ended.state is ClassState.ENDED and (await book.end(TEACHER, c.class_id, NOW)).state is ClassState.ENDED
    with pytest.raises(Conflict, match="has ended"):
        await book.join(STUDENT, c.class_id, c.starts_unix + 700)
    with pytest.raises(NotFound, match="no class has this code"):
        await book.by_code(STUDENT, c.code)  # an ended class frees its code
    other = await book.create(TEACHER, body(), NOW)
    await book.cancel(TEACHER, other.class_id, NOW)
    with pytest.raises(Conflict, match="cancelled"):
        await book.join(STUDENT, other.class_id, other.starts_unix)
    with pytest.raises(Conflict, match="cancelled class cannot be ended"):
        await book.end(TEACHER, other.class_id, NOW)


async def test_the_join_window_and_token_expiry(catalogue: Make) -> None:
    book = catalogue(join_early_s=600, join_late_s=300, join_token_ttl_s=3600)
    c = await book.create(TEACHER, body(duration_min=45), NOW)
    with pytest.raises(Conflict, match="opens 10 minutes before"):
        await book.join(STUDENT, c.class_id, c.starts_unix - 601)
    seat = await book.join(STUDENT, c.class_id, c.starts_unix - 600)
    assert seat.role is Role.VIEWER and seat.expires_unix == c.starts_unix - 600 + 3600
    late = await book.join(STUDENT, c.class_id, c.ends_unix + 200)
    assert late.expires_unix == c.ends_unix + 300  # never past the window
    with pytest.raises(Conflict, match="has ended"):
        await book.join(STUDENT, c.class_id, c.ends_unix + 301)
    with pytest.raises(Forbidden, match="invited students only"):
        await book.join(OTHER_TEACHER, c.class_id, c.starts_unix)


async def test_the_audience_decides_who_sees_lists_and_joins(catalogue: Make) -> None:
    book = catalogue()
    listed = await book.create(TEACHER, body(audience={"kind": "students", "students": ["s.zhang", "s.liu"]}), NOW)
    school = await book.create(TEACHER, body(audience={"kind": "school", "school": "school-7"}), NOW)
    link = await book.create(TEACHER, body(), NOW)
    elsewhere = await book.create(TEACHER, body(audience={"kind": "school", "school": "school-9"}), NOW)
    mine = [c.class_id for c in await book.listing(STUDENT, NOW)]
    assert sorted(mine) == sorted([listed.class_id, school.class_id])  # a link-only class is not listed
    assert (await book.join(STUDENT, link.class_id, link.starts_unix)).role is Role.VIEWER
    with pytest.raises(Forbidden, match="invited students only"):
        await book.join(Caller("s.wu", "student", "school-7"), listed.class_id, NOW)
    with pytest.raises(Forbidden):
        await book.get(STUDENT, elsewhere.class_id)
    assert len(await book.listing(TEACHER, NOW)) == 4 and await book.listing(OTHER_TEACHER, NOW) == []
    assert len(await book.listing(ADMIN, NOW)) == 4


async def test_attendance_and_its_csv_are_safe_to_open_in_a_spreadsheet(catalogue: Make) -> None:
    book = catalogue(attendance_max=3)
    c = await book.create(TEACHER, body(title="=HYPERLINK(\"http://x\")"), NOW)
    await book.joined(c.class_id, "t.wang", Role.PRESENTER, NOW)
    await book.joined(c.class_id, "-2-3", Role.VIEWER, NOW + 60)
    await book.left(c.class_id, "-2-3", Role.VIEWER, NOW + 180)
    await book.joined(c.class_id, "@s.zhang", Role.VIEWER, NOW + 200)
    record, visits = await book.attendance(TEACHER, c.class_id)
    rows = list(csv.reader(io.StringIO(attendance_csv(record, visits, NOW + 260).removeprefix("\ufeff"))))
    assert rows[0] == ["class_id", "title", "user_id", "role", "joined_utc", "left_utc", "minutes"]
    assert [(r[1], r[2], r[3], r[6]) for r in rows[1:]] == [
        ("'=HYPERLINK(\"http://x\")", "t.wang", "presenter", "4.3"),
        ("'=HYPERLINK(\"http://x\")", "'-2-3", "viewer", "2.0"),
        ("'=HYPERLINK(\"http://x\")", "'@s.zhang", "viewer", "1.0"),
    ]
    assert rows[2][4:6] == ["2027-01-15T08:01:00Z", "2027-01-15T08:03:00Z"] and rows[3][5] == ""
    await book.joined(c.class_id, "s.late", Role.VIEWER, NOW + 300)
    assert [v.user_id for v in (await book.attendance(TEACHER, c.class_id))[1]] == ["-2-3", "@s.zhang", "s.late"]
    with pytest.raises(Forbidden):
        await book.attendance(STUDENT, c.class_id)


async def test_a_change_that_lost_a_race_is_a_conflict(store: ClassStore) -> None:
    book = ClassCatalogue(store, ClassSettings())
    c = await book.create(TEACHER, body(), NOW)
    await book.update(TEACHER, c.class_id, {"title": "first"}, NOW)
    assert not await store.replace(c, c.version)  # a writer holding the old version loses
    with pytest.raises(ValueError, match="code_length"):
        ClassSettings(code_length=2)
