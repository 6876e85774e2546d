"""The node registry in Redis: each node announces its load every ``node_announce_s``; a node
whose last announcement is older than ``node_dead_after_s`` is dead.

Keys (under the prefix): ``nodes`` a hash ``node_id -> msgpack NodeLoad``. Liveness is judged
from the announcement's time (Redis's own clock, ``TIME``, so that the nodes' clocks need not
agree) against the time passed in; an entry dead for ``forget_after_s`` is removed by whoever
reads it."""

from __future__ import annotations

import msgpack
import redis.asyncio as aioredis

from .placement import NodeLoad

FORGET_AFTER_S = 3600.0


class NodeRegistry:
    def __init__(self, redis: aioredis.Redis, prefix: str, dead_after_s: float) -> None:
        self.redis = redis
        self.key = prefix + "nodes"
        self.dead_after_s = dead_after_s

    async def now(self) -> float:
        """Redis's clock, unix seconds: the one clock every node's liveness is judged by."""
        seconds, micros = await self.redis.time()
        return float(seconds) + float(micros) / 1e6

    async def announce(self, load: NodeLoad) -> None:
        await self.redis.hset(self.key, load.node_id, msgpack.packb(load.to_wire()))  # type: ignore[misc]

    async def leave(self, node_id: str) -> None:
        """A node shutting down cleanly takes itself out at once."""
        await self.redis.hdel(self.key, node_id)  # type: ignore[misc]

    async def nodes(self) -> list[NodeLoad]:
        """Every node Redis knows of, live or dead, by id."""
        raw = await self.redis.hgetall(self.key)  # type: ignore[misc]
        found: list[NodeLoad] = []
        for value in raw.values():
            try:
                found.append(NodeLoad.from_wire(msgpack.unpackb(value)))
            except (ValueError, TypeError, msgpack.UnpackException):
                continue  # a damaged entry is skipped, never fatal
        return sorted(found, key=lambda n: n.node_id)

    async def live(self, now: float) -> list[NodeLoad]:
        every = await self.nodes()
        stale = [n.node_id for n in every if now - n.announced_unix > FORGET_AFTER_S]
        if stale:
            await self.redis.hdel(self.key, *stale)  # type: ignore[misc]
        return [n for n in every if n.alive(now, self.dead_after_s)]

    async def dead(self, now: float) -> list[NodeLoad]:
        return [n for n in await self.nodes() if not n.alive(now, self.dead_after_s)]
