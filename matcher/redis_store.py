"""The Redis store: the matcher's state shared by every worker and server process.

Every key starts with the configured prefix. A record is a hash ``{v: version, d: msgpack}``;
indexes are sorted sets, sets and hashes (``matcher/indexes.py``); a commit is one Lua script
(``commit.lua``), so checking the versions and writing the records, indexes and events is one
atomic step on the Redis server; a batch's offers go as one script call, each commit in it still
checked and applied on its own. Nothing lives only in a worker's memory: a worker that dies
leaves leases that expire and are re-offered by the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from importlib import resources
from typing import Any

import msgpack
import redis.asyncio as aioredis

from .indexes import CHANGES, CHANGES_FLOOR, CHANGES_SEQ, EVENTS, OFFER_LOG, request_key, tutor_key
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

_SCRIPTS = resources.files(__package__)
READ_CHUNK = 5_000  # keys per read script call (a longer read would hold Redis up for others)


class RedisStore:
    def __init__(self, url: str, prefix: str = "tutorwire:", changelog_max: int = 200_000) -> None:
        self.url = url
        self.prefix = prefix
        self.changelog_max = changelog_max
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url)
        self._commit = self.redis.register_script(_SCRIPTS.joinpath("commit.lua").read_text())
        self._poll = self.redis.register_script(_SCRIPTS.joinpath("poll.lua").read_text())
        self._reads = self.redis.register_script(_SCRIPTS.joinpath("reads.lua").read_text())

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def _read(self, mode: str, keys: Sequence[str]) -> list[Any]:
        """One script call per ``READ_CHUNK`` keys instead of a command each (redis-py's cost is
        per command, and a batch reads thousands)."""
        out: list[Any] = []
        k = self._k
        for at in range(0, len(keys), READ_CHUNK):
            out += await self._reads(keys=[], args=[mode, *(k(key) for key in keys[at:at + READ_CHUNK])])
        return out

    async def _records(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._read("d", keys) if keys else []

    async def get_requests(self, ids: Sequence[str]) -> list[RequestRecord | None]:
        return [None if b is None else unpack_request(b) for b in await self._records([request_key(i) for i in ids])]

    async def get_tutors(self, ids: Sequence[str]) -> list[TutorRecord | None]:
        return [None if b is None else unpack_tutor(b) for b in await self._records([tutor_key(i) for i in ids])]

    async def commit(self, commit: Commit) -> bool:
        (ok,) = await self.commit_many([commit])
        return ok > 0

    async def commit_many(self, commits: Sequence[Commit]) -> list[int]:
        if not commits:
            return []
        k = self._k
        blob = msgpack.packb([
            [[[k(key), v] for key, v in c.checks], [[k(key), v, b] for key, v, b in c.writes],
             [[op.name, k(op.key), op.member,
               bytes.fromhex(op.value) if op.name in ("publish", "log", "rpush") else op.value] for op in c.ops]]
            for c in commits], use_bin_type=False)  # Redis's cmsgpack reads str, not bin
        replies = await self._commit(keys=[], args=[blob, OFFER_LOG_MAX, OBSERVATION_LOG_MAX, self.changelog_max])
        return [int(x) for x in replies]

    async def zrange(
        self, key: str, max_score: float | None = None, limit: int = 10_000, newest_first: bool = False,
    ) -> list[str]:
        if newest_first:
            raw = await self.redis.zrange(self._k(key), 0, limit - 1, desc=True)
        elif max_score is None:
            raw = await self.redis.zrange(self._k(key), 0, limit - 1)
        else:
            raw = await self.redis.zrangebyscore(self._k(key), "-inf", max_score, start=0, num=limit)
        return [m.decode() for m in raw]

    async def zrange_many(self, queries: Sequence[tuple[str, float | None, int]]) -> list[list[str]]:
        pipe = self.redis.pipeline(transaction=False)
        for key, max_score, limit in queries:
            if max_score is None:
                pipe.zrange(self._k(key), 0, limit - 1)
            else:
                pipe.zrangebyscore(self._k(key), "-inf", max_score, start=0, num=limit)
        return [[m.decode() for m in raw] for raw in await pipe.execute()]

    async def try_locks(self, names: Sequence[str], owner: str, ttl_s: float) -> list[bool]:
        if not names:
            return []
        ms = max(int(ttl_s * 1000), 1)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.set(self._k(name), owner, nx=True, px=ms)
            pipe.get(self._k(name))
        raw = await pipe.execute()
        got = [bool(raw[2 * i]) or raw[2 * i + 1] == owner.encode() for i in range(len(names))]
        renew = [n for n, ok, took in zip(names, got, raw[0::2], strict=True) if ok and not took]
        if renew:  # ours already: keep it for another interval
            pipe = self.redis.pipeline(transaction=False)
            for name in renew:
                pipe.pexpire(self._k(name), ms)
            await pipe.execute()
        return got

    async def smembers(self, key: str) -> set[str]:
        return {m.decode() for m in await self.redis.smembers(self._k(key))}  # type: ignore[misc]

    async def hget(self, key: str, field: str) -> str | None:
        v = await self.redis.hget(self._k(key), field)  # type: ignore[misc]
        return None if v is None else bytes(v).decode()

    async def hgetall_many(self, keys: Sequence[str]) -> list[dict[str, str]]:
        if not keys:
            return []
        return [dict(zip(map(bytes.decode, flat[0::2]), map(bytes.decode, flat[1::2]), strict=True))
                for flat in await self._read("all", keys)]

    async def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        key, ms = self._k(name), max(int(ttl_s * 1000), 1)
        if await self.redis.set(key, owner, nx=True, px=ms):
            return True
        if await self.redis.get(key) == owner.encode():
            await self.redis.pexpire(key, ms)
            return True
        return False

    async def offer_log(self) -> list[bytes]:
        return list(await self.redis.lrange(self._k(OFFER_LOG), 0, -1))  # type: ignore[misc]

    async def lrange(self, key: str) -> list[bytes]:
        return list(await self.redis.lrange(self._k(key), 0, -1))  # type: ignore[misc]

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[str, int]] | None]:
        p = await self.poll(seq, [])
        return p.latest, p.changes

    async def poll(self, seq: int, queries: Sequence[tuple[str, float | None, int]]) -> Poll:
        k = self._k
        args: list[Any] = [k(CHANGES), k(CHANGES_SEQ), k(CHANGES_FLOOR), seq]
        for key, max_score, limit in queries:
            args += [k(key), "" if max_score is None else repr(max_score), limit]
        reply = await self._poll(keys=[], args=args)
        flat = reply[1]
        changes = None if flat is None else [(m.decode(), int(n)) for m, n in zip(flat[0::2], flat[1::2], strict=True)]
        return Poll(int(reply[0]), changes, [[m.decode() for m in r] for r in reply[2:]])

    async def subscribe(self) -> Subscription:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self._k(EVENTS))
        return _PubSubSubscription(pubsub)

    async def delete_all(self) -> int:
        """Remove every key under the prefix (tests; it wipes requests and learned estimates too)."""
        removed = 0
        async for key in self.redis.scan_iter(match=self.prefix + "*", count=1000):
            removed += await self.redis.delete(key)
        return removed

    async def close(self) -> None:
        await self.redis.aclose()


class _PubSubSubscription:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def get(self) -> MatchEvent:
        while True:
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if msg is not None and msg["type"] == "message":
                return MatchEvent.unpack(msg["data"])
            if msg is None:
                await asyncio.sleep(0)

    async def close(self) -> None:
        await self._pubsub.aclose()
