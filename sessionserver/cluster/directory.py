"""Which node a room lives on: ``room-node:{room_id} -> node_id`` in Redis, claimed atomically so
that two nodes can never both own a room, with ``node-rooms:{node_id}`` (a set) to find a dead
node's rooms. Claim, takeover and release are Lua scripts: each check-and-write is one step on
the Redis server."""

from __future__ import annotations

import redis.asyncio as aioredis

_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return ARGV[1]
"""
_TAKEOVER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""


class RoomDirectory:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._claim = redis.register_script(_CLAIM)
        self._takeover = redis.register_script(_TAKEOVER)
        self._release = redis.register_script(_RELEASE)

    def _room(self, room_id: str) -> str:
        return f"{self.prefix}room-node:{room_id}"

    def _rooms(self, node_id: str) -> str:
        return f"{self.prefix}node-rooms:{node_id}"

    async def claim(self, room_id: str, node_id: str) -> str:
        """Make ``node_id`` the room's home unless it has one; the home node either way."""
        owner = await self._claim(keys=[self._room(room_id), self._rooms(node_id)], args=[node_id, room_id])
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    async def owner(self, room_id: str) -> str | None:
        raw = await self.redis.get(self._room(room_id))
        return None if raw is None else raw.decode()

    async def take_over(self, room_id: str, dead_node: str, new_node: str) -> bool:
        """Move the room from ``dead_node`` to ``new_node``; False if it is no longer
        ``dead_node``'s (another node took it first, or it was released)."""
        keys = [self._room(room_id), self._rooms(dead_node), self._rooms(new_node)]
        return bool(await self._takeover(keys=keys, args=[dead_node, new_node, room_id]))

    async def release(self, room_id: str, node_id: str) -> bool:
        """The room is gone from ``node_id`` (evicted or ended): its claim is dropped if it is
        still ``node_id``'s."""
        return bool(await self._release(keys=[self._room(room_id), self._rooms(node_id)], args=[node_id, room_id]))

    async def rooms_of(self, node_id: str) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(self._rooms(node_id)))  # type: ignore[misc]

    async def room_counts(self, node_ids: list[str]) -> dict[str, int]:
        """How many rooms each node is home to now."""
        pipe = self.redis.pipeline(transaction=False)
        for node_id in node_ids:
            pipe.scard(self._rooms(node_id))
        return {node_id: int(n) for node_id, n in zip(node_ids, await pipe.execute(), strict=True)}
