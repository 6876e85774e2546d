"""The store contract: records with versions, indexes, and one atomic ``commit``.

A commit checks that every record it touches still has the version the caller read (0: must not
exist yet), writes the new records, applies index and counter operations, and publishes events,
all or nothing. ``MemoryStore`` does it in one synchronous step of the event loop; ``RedisStore``
in one Lua script. Because offering a request to a tutor is such a commit over both records, no
two workers can offer one request twice or one tutor two requests, however they interleave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import msgpack

from .indexes import CHANGES, EVENTS, OFFER_LOG, Entry, Record, entries, record_key
from .records import RequestRecord, TutorRecord

OFFER_LOG_MAX = 100_000
OBSERVATION_LOG_MAX = 1_000_000
CACHED_HASHES = frozenset({"exp", "pop", "ks", "pairs", "bkt"})  # hash kinds working sets cache


@dataclass(frozen=True, slots=True)
class MatchEvent:
    """A push to one user: ``offer``, ``offer_withdrawn``, ``matched``, ``request``."""

    user_id: str
    kind: str
    data: dict[str, Any]

    def pack(self) -> bytes:
        packed: bytes = msgpack.packb([self.user_id, self.kind, self.data])
        return packed

    @classmethod
    def unpack(cls, raw: bytes) -> MatchEvent:
        user_id, kind, data = msgpack.unpackb(raw)
        return cls(str(user_id), str(kind), dict(data))


class Op(NamedTuple):
    """One index, counter or pub/sub operation of a commit (keys relative to the store's prefix,
    except a ``publish`` channel, which the store prefixes the same way). A tuple: a batch builds
    thousands."""

    name: str  # zadd zrem sadd srem hset hdel hincr publish log rpush change
    key: str
    member: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class Commit:
    checks: tuple[tuple[str, int], ...]  # (record key, version it must have now; 0: absent)
    writes: tuple[tuple[str, int, bytes], ...]  # (record key, new version, packed record)
    ops: tuple[Op, ...]


def pack_record(record: Record) -> bytes:
    packed: bytes = msgpack.packb(record.to_wire())
    return packed


def unpack_request(raw: bytes) -> RequestRecord:
    return RequestRecord.from_wire(msgpack.unpackb(raw))


def unpack_tutor(raw: bytes) -> TutorRecord:
    return TutorRecord.from_wire(msgpack.unpackb(raw))


def parse_counts(h: dict[str, str]) -> dict[str, tuple[float, float]]:
    """A hash of ``key#n`` and ``key#s`` fields (sessions and sum of scores) as ``{key: (n, s)}``."""
    out: dict[str, tuple[float, float]] = {}
    for field, value in h.items():
        key, _, part = field.rpartition("#")
        n, s = out.get(key, (0.0, 0.0))
        out[key] = (float(value), s) if part == "n" else (n, float(value))
    return out


def build_commit(
    old: Sequence[Record | None], new: Sequence[Record], *, events: Iterable[MatchEvent] = (),
    ops: Iterable[Op] = (), log: Iterable[bytes] = (),
) -> Commit:
    """The commit that replaces ``old`` (as read; None for a record not yet stored) by ``new``."""
    checks = []
    before: set[Entry] = set()
    after: set[Entry] = set()
    keys = []
    for o, n in zip(old, new, strict=True):
        key = record_key(n)
        if o is not None and record_key(o) != key:
            raise ValueError("old and new records must pair up")
        keys.append(key)
        checks.append((key, 0 if o is None else o.version))
        before |= entries(o)
        after |= entries(n)
    index_ops = [_op(e, remove=True) for e in sorted(before - after)]
    index_ops += [_op(e, remove=False) for e in sorted(after - before)]
    index_ops += ops
    index_ops += [Op("publish", EVENTS, "", e.pack().hex()) for e in events]
    index_ops += [Op("log", OFFER_LOG, "", entry.hex()) for entry in log]
    writes = tuple((key, n.version, pack_record(n)) for key, n in zip(keys, new, strict=True))
    # Every record and hash the commit changes goes on the change log, which keeps workers'
    # working sets current without re-reading what did not change.
    changed = dict.fromkeys(keys + [o.key for o in index_ops if o.name in ("hincr", "hset")
                                    and o.key.partition(":")[0] in CACHED_HASHES])
    index_ops += [Op("change", CHANGES, k) for k in changed]
    return Commit(tuple(checks), writes, tuple(index_ops))


def change_numbers(commit: Commit, last: int) -> dict[str, int]:
    """The change number of each key a commit changed, given the number ``commit_many`` returned
    for it (its last change's; each ``change`` op takes the next number, in order)."""
    members = [op.member for op in commit.ops if op.name == "change"]
    return {m: last - (len(members) - 1 - i) for i, m in enumerate(members)}


_OP_NAMES = {"z": ("zrem", "zadd"), "s": ("srem", "sadd"), "h": ("hdel", "hset")}


def _op(e: Entry, *, remove: bool) -> Op:
    names = _OP_NAMES[e.kind]
    return Op(names[0] if remove else names[1], e.key, e.member, "" if remove else e.value)


@dataclass(frozen=True, slots=True)
class Poll:
    latest: int
    changes: list[tuple[str, int]] | None  # (key, number of its latest change); None: reload everything
    ranges: list[list[str]]


class Subscription(Protocol):
    async def get(self) -> MatchEvent: ...
    async def close(self) -> None: ...


class Store(Protocol):
    """What the matcher needs of its storage. Both implementations pass one contract test suite."""

    async def get_requests(self, ids: Sequence[str]) -> list[RequestRecord | None]: ...
    async def get_tutors(self, ids: Sequence[str]) -> list[TutorRecord | None]: ...
    async def commit(self, commit: Commit) -> bool:
        """Apply ``commit`` if every check holds (True), else change nothing (False)."""
        ...
    async def commit_many(self, commits: Sequence[Commit]) -> list[int]:
        """``commit`` each, in order, in one round trip; each is atomic on its own (a batch's
        offers touch distinct records, so none depends on another). Per commit: 0 if it failed,
        else the change number of its last ``change`` op (``changes_since``; 1 if it had none),
        so a worker can tell its own writes from later ones in the change log."""
        ...
    async def zrange(
        self, key: str, max_score: float | None = None, limit: int = 10_000, newest_first: bool = False,
    ) -> list[str]:
        """Members of a sorted set by ascending score up to ``max_score`` (or the highest
        scores first, with ``newest_first``)."""
        ...
    async def zrange_many(self, queries: Sequence[tuple[str, float | None, int]]) -> list[list[str]]:
        """Several ``zrange(key, max_score, limit)`` in one round trip."""
        ...
    async def try_locks(self, names: Sequence[str], owner: str, ttl_s: float) -> list[bool]:
        """``try_lock`` for several names in one round trip (or two)."""
        ...
    async def smembers(self, key: str) -> set[str]: ...
    async def hget(self, key: str, field: str) -> str | None: ...
    async def hgetall_many(self, keys: Sequence[str]) -> list[dict[str, str]]: ...
    async def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take a short lock that expires by itself (for sharing work, never for correctness)."""
        ...
    async def offer_log(self) -> list[bytes]: ...
    async def lrange(self, key: str) -> list[bytes]:
        """Every entry of a list written with ``rpush`` ops, oldest first."""
        ...
    async def changes_since(self, seq: int) -> tuple[int, list[tuple[str, int]] | None]:
        """The latest change number and the keys changed after ``seq`` with the number of each
        one's latest change, oldest first; None instead when the log no longer reaches back to
        ``seq`` (reload everything)."""
        ...
    async def poll(self, seq: int, queries: Sequence[tuple[str, float | None, int]]) -> Poll:
        """``changes_since(seq)`` and ``zrange_many(queries)`` as one snapshot, in one round trip
        (a worker's step starts with it)."""
        ...
    async def subscribe(self) -> Subscription:
        """Every event published from the moment this returns, until it is closed."""
        ...
    async def close(self) -> None: ...
