"""Where classes and their attendance are kept. ``ClassStore`` is the interface; the memory store
is the embedded default (one process). Every change is a compare-and-set on the record's
``version``, so two writers can never both win (the Redis store of the multi-node work keeps the
same contract)."""

from __future__ import annotations

from collections import deque
from typing import Protocol

from .model import ClassRecord, Visit


class ClassStore(Protocol):
    async def get(self, class_id: str) -> ClassRecord | None: ...

    async def by_code(self, code: str) -> ClassRecord | None:
        """The open class holding ``code``."""

    async def insert(self, record: ClassRecord) -> bool:
        """Store a new class; False if its id or (open) code is taken."""

    async def replace(self, record: ClassRecord, expected_version: int) -> bool:
        """Store ``record`` if the stored one has ``expected_version``; False otherwise."""

    async def all(self) -> list[ClassRecord]: ...

    async def visits(self, class_id: str) -> list[Visit]: ...

    async def add_visit(self, class_id: str, visit: Visit, bound: int) -> None:
        """Append a visit, keeping at most ``bound`` (oldest dropped first)."""

    async def close_visit(self, class_id: str, user_id: str, role: str, left_unix: float) -> None:
        """The latest open visit of ``user_id`` in ``role`` has ended."""


class MemoryClassStore:
    def __init__(self) -> None:
        self._classes: dict[str, ClassRecord] = {}
        self._codes: dict[str, str] = {}  # code -> class id, open classes only
        self._visits: dict[str, deque[Visit]] = {}

    async def get(self, class_id: str) -> ClassRecord | None:
        return self._classes.get(class_id)

    async def by_code(self, code: str) -> ClassRecord | None:
        class_id = self._codes.get(code)
        record = self._classes.get(class_id) if class_id is not None else None
        return record if record is not None and record.open else None

    async def insert(self, record: ClassRecord) -> bool:
        held = self._codes.get(record.code)
        if record.class_id in self._classes or (held is not None and self._classes[held].open):
            return False
        self._classes[record.class_id] = record
        self._codes[record.code] = record.class_id
        return True

    async def replace(self, record: ClassRecord, expected_version: int) -> bool:
        current = self._classes.get(record.class_id)
        if current is None or current.version != expected_version:
            return False
        self._classes[record.class_id] = record
        if not record.open and self._codes.get(record.code) == record.class_id:
            del self._codes[record.code]  # the code is free for a new class
        return True

    async def all(self) -> list[ClassRecord]:
        return list(self._classes.values())

    async def visits(self, class_id: str) -> list[Visit]:
        return list(self._visits.get(class_id, ()))

    async def add_visit(self, class_id: str, visit: Visit, bound: int) -> None:
        kept = self._visits.setdefault(class_id, deque())
        kept.append(visit)
        while len(kept) > bound:
            kept.popleft()

    async def close_visit(self, class_id: str, user_id: str, role: str, left_unix: float) -> None:
        kept = self._visits.get(class_id, deque())
        for i in range(len(kept) - 1, -1, -1):
            v = kept[i]
            if v.user_id == user_id and v.role == role and v.left_unix is None:
                kept[i] = Visit(v.user_id, v.role, v.joined_unix, left_unix)
                return
