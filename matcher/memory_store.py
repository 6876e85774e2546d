"""The embedded store: everything in this process's memory, for one server without Redis.

A commit runs without awaiting anything, so on one event loop it is atomic by construction.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence

from .indexes import request_key, tutor_key
from .records import RequestRecord, TutorRecord
from .store import (
    OBSERVATION_LOG_MAX,
    OFFER_LOG_MAX,
    Commit,
    MatchEvent,
    Poll,
    Subscription,
    unpack_request,
    unpack_tutor,
)

SUBSCRIBER_QUEUE = 1_000


class MemoryStore:
    def __init__(self, changelog_max: int = 200_000) -> None:
        self.changelog_max = changelog_max
        self._seq = 0
        self._floor = 0
        self._changes: dict[str, int] = {}  # key -> its latest change number, oldest first
        self._lists: dict[str, deque[bytes]] = {}
        self._records: dict[str, tuple[int, bytes]] = {}
        self._zsets: dict[str, dict[str, float]] = {}
        self._sets: dict[str, set[str]] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._log: deque[bytes] = deque(maxlen=OFFER_LOG_MAX)
        self._subscribers: set[asyncio.Queue[MatchEvent]] = set()
        self._locks: dict[str, tuple[str, float]] = {}

    async def get_requests(self, ids: Sequence[str]) -> list[RequestRecord | None]:
        return [None if (v := self._records.get(request_key(i))) is None else unpack_request(v[1]) for i in ids]

    async def get_tutors(self, ids: Sequence[str]) -> list[TutorRecord | None]:
        return [None if (v := self._records.get(tutor_key(i))) is None else unpack_tutor(v[1]) for i in ids]

    async def commit(self, commit: Commit) -> bool:
        return self._commit(commit) > 0

    def _commit(self, commit: Commit) -> int:
        for key, version in commit.checks:
            current = self._records.get(key)
            if (0 if current is None else current[0]) != version:
                return 0
        changed = False
        for key, version, blob in commit.writes:
            self._records[key] = (version, blob)
        for op in commit.ops:
            self._apply(op.name, op.key, op.member, op.value)
            changed = changed or op.name == "change"
        if len(self._changes) > self.changelog_max + 1_000:
            for key in list(self._changes)[: len(self._changes) - self.changelog_max]:
                self._floor = max(self._floor, self._changes.pop(key))
        return self._seq if changed else 1

    async def commit_many(self, commits: Sequence[Commit]) -> list[int]:
        return [self._commit(c) for c in commits]

    def _apply(self, name: str, key: str, member: str, value: str) -> None:
        if name == "zadd":
            self._zsets.setdefault(key, {})[member] = float(value)
        elif name == "zrem":
            self._zsets.get(key, {}).pop(member, None)
        elif name == "sadd":
            self._sets.setdefault(key, set()).add(member)
        elif name == "srem":
            self._sets.get(key, set()).discard(member)
        elif name == "hset":
            self._hashes.setdefault(key, {})[member] = value
        elif name == "hdel":
            self._hashes.get(key, {}).pop(member, None)
        elif name == "hincr":
            h = self._hashes.setdefault(key, {})
            h[member] = repr(float(h.get(member, "0")) + float(value))
        elif name == "publish":
            event = MatchEvent.unpack(bytes.fromhex(value))
            for q in self._subscribers:
                if q.full():
                    q.get_nowait()  # a stalled listener loses its oldest push; it re-reads state on reconnect
                q.put_nowait(event)
        elif name == "log":
            self._log.append(bytes.fromhex(value))
        elif name == "rpush":
            self._lists.setdefault(key, deque(maxlen=OBSERVATION_LOG_MAX)).append(bytes.fromhex(value))
        elif name == "change":
            self._seq += 1
            self._changes.pop(member, None)  # re-inserted last: the dict stays in change order
            self._changes[member] = self._seq
        else:
            raise ValueError(f"unknown store operation {name!r}")

    async def zrange(
        self, key: str, max_score: float | None = None, limit: int = 10_000, newest_first: bool = False,
    ) -> list[str]:
        items = sorted(self._zsets.get(key, {}).items(), key=lambda kv: (kv[1], kv[0]), reverse=newest_first)
        return [m for m, s in items if max_score is None or s <= max_score][:limit]

    async def zrange_many(self, queries: Sequence[tuple[str, float | None, int]]) -> list[list[str]]:
        return [await self.zrange(key, max_score, limit) for key, max_score, limit in queries]

    async def try_locks(self, names: Sequence[str], owner: str, ttl_s: float) -> list[bool]:
        return [await self.try_lock(name, owner, ttl_s) for name in names]

    async def smembers(self, key: str) -> set[str]:
        return set(self._sets.get(key, set()))

    async def hget(self, key: str, field: str) -> str | None:
        return self._hashes.get(key, {}).get(field)

    async def hgetall_many(self, keys: Sequence[str]) -> list[dict[str, str]]:
        return [dict(self._hashes.get(k, {})) for k in keys]

    async def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        now = time.monotonic()
        holder = self._locks.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._locks[name] = (owner, now + ttl_s)
        return True

    async def offer_log(self) -> list[bytes]:
        return list(self._log)

    async def lrange(self, key: str) -> list[bytes]:
        return list(self._lists.get(key, ()))

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[str, int]] | None]:
        if seq < self._floor:
            return self._seq, None
        newer: list[tuple[str, int]] = []
        for key in reversed(self._changes):  # newest first; stop at the first already seen
            if self._changes[key] <= seq:
                break
            newer.append((key, self._changes[key]))
        newer.reverse()
        return self._seq, newer

    async def poll(self, seq: int, queries: Sequence[tuple[str, float | None, int]]) -> Poll:
        latest, changes = await self.changes_since(seq)
        return Poll(latest, changes, await self.zrange_many(queries))

    async def subscribe(self) -> Subscription:
        queue: asyncio.Queue[MatchEvent] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return _QueueSubscription(queue, self._subscribers)

    async def close(self) -> None:
        self._subscribers.clear()


class _QueueSubscription:
    def __init__(self, queue: asyncio.Queue[MatchEvent], registry: set[asyncio.Queue[MatchEvent]]) -> None:
        self._queue = queue
        self._registry = registry

    async def get(self) -> MatchEvent:
        return await self._queue.get()

    async def close(self) -> None:
        self._registry.discard(self._queue)
