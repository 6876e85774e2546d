"""The class catalogue: scheduling, changing, cancelling and ending classes, who may join them
and in which role, and who attended. Sans-I/O in time (``now`` passed in, unix seconds); the
store is awaited. Teachers (API role ``tutor``) manage their own classes, admins anyone's;
students join classes whose audience admits them, within the join window."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from wire import Role

from .errors import Conflict, Forbidden, NotFound, ValidationFailed
from .fields import parse
from .model import AudienceKind, ClassRecord, ClassState, Visit
from .settings import ClassSettings
from .store import ClassStore

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed on phones
CODE_TRIES = 20


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: an API user's id, API role and (students) school."""

    user_id: str
    role: str  # student, tutor, researcher or admin
    school: str | None = None


@dataclass(frozen=True, slots=True)
class JoinSeat:
    """A seat in a class's room for one user: what the join token will name."""

    record: ClassRecord
    user_id: str
    role: Role  # PRESENTER for the class's teacher, VIEWER for a student
    expires_unix: int


def normal_code(code: str) -> str:
    """A code as typed (any case, spaces or dashes between) in its stored form."""
    return "".join(c for c in code.upper() if c not in " -")


class ClassCatalogue:
    def __init__(self, store: ClassStore, settings: ClassSettings) -> None:
        self.store = store
        self.settings = settings

    # -- teachers ----------------------------------------------------------------------------

    async def create(self, caller: Caller, body: dict[str, Any], now: float) -> ClassRecord:
        if caller.role not in ("tutor", "admin"):
            raise Forbidden("only teachers schedule classes")
        fields = parse(body, self.settings, now, complete=True)
        mine = [c for c in await self.store.all() if c.teacher_id == caller.user_id and c.open]
        if len(mine) >= self.settings.max_classes_per_teacher:
            raise Conflict(f"a teacher may hold at most {self.settings.max_classes_per_teacher} classes "
                           "that have not happened yet; cancel or end one first")
        for _ in range(CODE_TRIES):
            record = ClassRecord(class_id=secrets.token_hex(6), code=self._new_code(),
                                 teacher_id=caller.user_id, created_unix=int(now), updated_unix=int(now),
                                 **fields.changes())
            if await self.store.insert(record):
                return record
        raise Conflict("no free class code could be found; try again")  # never at realistic scale

    async def update(self, caller: Caller, class_id: str, body: dict[str, Any], now: float) -> ClassRecord:
        record = await self._owned(caller, class_id)
        if record.state is not ClassState.SCHEDULED:
            raise Conflict(f"a {record.state.value} class cannot be changed")
        changes = parse(body, self.settings, now, complete=False).changes()
        if not changes:
            raise ValidationFailed("body", "names no field to change")
        updated = replace(record, **changes, updated_unix=int(now), version=record.version + 1)
        return await self._swap(record, updated)

    async def cancel(self, caller: Caller, class_id: str, now: float) -> ClassRecord:
        record = await self._owned(caller, class_id)
        if record.state is not ClassState.SCHEDULED:
            raise Conflict(f"a {record.state.value} class cannot be cancelled" +
                           ("; end it instead" if record.state is ClassState.LIVE else ""))
        return await self._swap(record, record.moved(ClassState.CANCELLED, now))

    async def end(self, caller: Caller, class_id: str, now: float) -> ClassRecord:
        """The teacher (or an admin) ends the class: nobody can join it after this."""
        record = await self._owned(caller, class_id)
        if record.state is ClassState.ENDED:
            return record
        if record.state is ClassState.CANCELLED:
            raise Conflict("a cancelled class cannot be ended")
        return await self._swap(record, record.moved(ClassState.ENDED, now))

    # -- everyone ----------------------------------------------------------------------------

    async def get(self, caller: Caller, class_id: str) -> ClassRecord:
        record = await self.store.get(class_id)
        if record is None:
            raise NotFound("no such class")
        if caller.role in ("admin", "researcher") or record.teacher_id == caller.user_id:
            return record
        if caller.role == "student" and record.audience.admits(caller.user_id, caller.school):
            return record
        raise Forbidden("this class is for its invited students only")

    async def by_code(self, caller: Caller, code: str) -> ClassRecord:
        typed = normal_code(code)
        if not 4 <= len(typed) <= 12 or any(c not in CODE_ALPHABET for c in typed):
            raise ValidationFailed("code", f"must be the {self.settings.code_length} letters and digits "
                                           "the teacher gave")
        record = await self.store.by_code(typed)
        if record is None:
            raise NotFound("no class has this code; check it with your teacher")
        return await self.get(caller, record.class_id)

    async def listing(self, caller: Caller, now: float) -> list[ClassRecord]:
        """Teachers: their own classes; admins and researchers: all; students: the open classes
        that name them or their school (a link-only class is not listed: it has its link)."""
        every = await self.store.all()
        if caller.role in ("admin", "researcher"):
            chosen = every
        elif caller.role == "tutor":
            chosen = [c for c in every if c.teacher_id == caller.user_id]
        else:
            chosen = [c for c in every if c.open and c.audience.kind is not AudienceKind.LINK
                      and c.audience.admits(caller.user_id, caller.school) and now <= self._closes(c)]
        return sorted(chosen, key=lambda c: (c.starts_unix, c.class_id))

    async def join(self, caller: Caller, class_id: str, now: float) -> JoinSeat:
        """A seat for ``caller``: the teacher presents, an admitted student views. The teacher may
        join from ``join_early_s`` before the start (which makes the class live); students too,
        until the class ends or ``join_late_s`` past its planned end."""
        record = await self.get(caller, class_id)
        if record.state is ClassState.CANCELLED:
            raise Conflict("this class was cancelled")
        if record.state is ClassState.ENDED or now > self._closes(record):
            raise Conflict("this class has ended")
        if now < record.starts_unix - self.settings.join_early_s:
            minutes = self.settings.join_early_s // 60
            raise Conflict(f"this class opens {minutes} minutes before it starts")
        if record.teacher_id == caller.user_id:
            role = Role.PRESENTER
            if record.state is ClassState.SCHEDULED:
                record = await self._swap(record, record.moved(ClassState.LIVE, now))
        elif caller.role == "student":
            role = Role.VIEWER
        else:
            raise Forbidden("only the class's teacher and its students can join it")
        expires = min(int(now) + self.settings.join_token_ttl_s, self._closes(record))
        return JoinSeat(record, caller.user_id, role, expires)

    # -- attendance --------------------------------------------------------------------------

    async def joined(self, class_id: str, user_id: str, role: Role, now: float) -> None:
        await self.store.add_visit(class_id, Visit(user_id, role.label, now), self.settings.attendance_max)

    async def left(self, class_id: str, user_id: str, role: Role, now: float) -> None:
        await self.store.close_visit(class_id, user_id, role.label, now)

    async def attendance(self, caller: Caller, class_id: str) -> tuple[ClassRecord, list[Visit]]:
        record = await self._owned(caller, class_id, readers=("admin", "researcher"))
        return record, await self.store.visits(class_id)

    # -- inside ------------------------------------------------------------------------------

    def _closes(self, record: ClassRecord) -> int:
        return record.ends_unix + self.settings.join_late_s

    async def _owned(self, caller: Caller, class_id: str, readers: tuple[str, ...] = ("admin",)) -> ClassRecord:
        record = await self.store.get(class_id)
        if record is None:
            raise NotFound("no such class")
        if record.teacher_id != caller.user_id and caller.role not in readers:
            raise Forbidden("only the class's teacher (or an admin) can do this")
        return record

    async def _swap(self, old: ClassRecord, new: ClassRecord) -> ClassRecord:
        if not await self.store.replace(new, old.version):
            raise Conflict("the class was changed meanwhile; reload it and try again")
        return new

    def _new_code(self) -> str:
        return "".join(secrets.choice(CODE_ALPHABET) for _ in range(self.settings.code_length))
