"""Classes and attendance in Redis, for several server processes sharing one programme.

Keys (all under the prefix): ``class:{id}`` a hash ``{v: version, d: msgpack record}``;
``classes`` the set of ids; ``class-code:{code}`` the id of the open class holding a code;
``class-visits:{id}`` a list of msgpack visits, trimmed to the bound. Insert, replace and closing
a visit are Lua scripts, so each check-and-write is one atomic step on the Redis server (the
memory store's compare-and-set contract)."""

from __future__ import annotations

from typing import Any

import msgpack
import redis.asyncio as aioredis

from .model import Audience, AudienceKind, ClassRecord, ClassState, Visit

_INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SETNX', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""
_REPLACE = """
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
if ARGV[4] == '0' and redis.call('GET', KEYS[2]) == ARGV[5] then redis.call('DEL', KEYS[2]) end
return 1
"""
_CLOSE_VISIT = """
local n = redis.call('LLEN', KEYS[1])
for i = n - 1, 0, -1 do
  local v = cmsgpack.unpack(redis.call('LINDEX', KEYS[1], i))
  if v[1] == ARGV[1] and v[2] == ARGV[2] and v[4] == nil then
    v[4] = tonumber(ARGV[3])
    redis.call('LSET', KEYS[1], i, cmsgpack.pack({v[1], v[2], v[3], v[4]}))
    return 1
  end
end
return 0
"""


def pack_record(r: ClassRecord) -> bytes:
    a = r.audience
    blob: bytes = msgpack.packb([r.class_id, r.code, r.teacher_id, r.subject, r.grade, r.title, r.starts_unix,
                          r.duration_min, [a.kind.value, sorted(a.students), a.school], r.state.value,
                          r.created_unix, r.updated_unix, r.version])
    return blob


def unpack_record(blob: bytes) -> ClassRecord:
    (class_id, code, teacher, subject, grade, title, starts, duration, (kind, students, school), state,
     created, updated, version) = msgpack.unpackb(blob)
    audience = Audience(AudienceKind(kind), frozenset(students), school)
    return ClassRecord(class_id, code, teacher, subject, grade, title, starts, duration, audience,
                       ClassState(state), created, updated, version)


class RedisClassStore:
    def __init__(self, url: str, prefix: str = "tutorwire:") -> None:
        self.prefix = prefix
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url)
        self._insert = self.redis.register_script(_INSERT)
        self._replace = self.redis.register_script(_REPLACE)
        self._close_visit = self.redis.register_script(_CLOSE_VISIT)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, class_id: str) -> ClassRecord | None:
        blob = await self.redis.hget(self._k(f"class:{class_id}"), "d")  # type: ignore[misc]
        return None if blob is None else unpack_record(blob)

    async def by_code(self, code: str) -> ClassRecord | None:
        class_id = await self.redis.get(self._k(f"class-code:{code}"))
        record = await self.get(class_id.decode()) if class_id is not None else None
        return record if record is not None and record.open else None

    async def insert(self, record: ClassRecord) -> bool:
        keys = [self._k(f"class:{record.class_id}"), self._k(f"class-code:{record.code}"), self._k("classes")]
        return bool(await self._insert(keys=keys, args=[record.class_id, record.version, pack_record(record)]))

    async def replace(self, record: ClassRecord, expected_version: int) -> bool:
        keys = [self._k(f"class:{record.class_id}"), self._k(f"class-code:{record.code}")]
        args: list[Any] = [str(expected_version), record.version, pack_record(record), "1" if record.open else "0",
                           record.class_id]
        return bool(await self._replace(keys=keys, args=args))

    async def all(self) -> list[ClassRecord]:
        ids = sorted(m.decode() for m in await self.redis.smembers(self._k("classes")))  # type: ignore[misc]
        pipe = self.redis.pipeline(transaction=False)
        for class_id in ids:
            pipe.hget(self._k(f"class:{class_id}"), "d")
        return [unpack_record(b) for b in await pipe.execute() if b is not None]

    async def visits(self, class_id: str) -> list[Visit]:
        raw = await self.redis.lrange(self._k(f"class-visits:{class_id}"), 0, -1)  # type: ignore[misc]
        return [Visit(*msgpack.unpackb(b)) for b in raw]

    async def add_visit(self, class_id: str, visit: Visit, bound: int) -> None:
        key = self._k(f"class-visits:{class_id}")
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(key, msgpack.packb([visit.user_id, visit.role, visit.joined_unix, visit.left_unix]))
        pipe.ltrim(key, -bound, -1)
        await pipe.execute()

    async def close_visit(self, class_id: str, user_id: str, role: str, left_unix: float) -> None:
        await self._close_visit(keys=[self._k(f"class-visits:{class_id}")], args=[user_id, role, repr(left_unix)])

    async def delete_all(self) -> None:
        """Every key under the prefix (tests clean up with this)."""
        async for key in self.redis.scan_iter(match=self.prefix + "*", count=1000):
            await self.redis.delete(key)

    async def close(self) -> None:
        await self.redis.aclose()
