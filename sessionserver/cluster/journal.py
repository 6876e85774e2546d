"""Durable acknowledgements: every event a room numbers is in Redis before its author hears the
Ack, so a node's death loses nothing that anybody was told is acknowledged.

Each room has a Redis stream ``{prefix}room-log:{room_id}``; one entry holds the events of one
write: ``s`` the first seq, ``f`` the events' frames (each length-prefixed, ``wire.stream``) and
``c`` the cseqs the write moved on (msgpack ``[[pid, dev, cseq], ...]``: a refused op uses up its
cseq too, so a rebuilt room refuses its resend as the old one would).

Writes are a group commit: the first event after a write arms one, at most every ``interval_s``
(10 ms: the Acks wait ``ack_delay_ms``, 40 ms, to be coalesced anyway); while one is in flight or
waiting, events gather for it. A write is one Lua call for every room it carries,
fenced: a room whose home (``room-node:{id}``) is no longer this node is not written and is
reported lost (another node took it over). Then each written room's ``durable`` callback gets
the last seq written, and the room's connections let the Acks it covers go.

While Redis cannot be reached, rooms go on: a write that fails marks every room in it not
durable (``durable`` gets the room's seq, so its Acks are not held hostage by an outage) and the
journal retries every ``retry_s``; what the rooms numbered meanwhile is written once Redis
answers (from the rooms' op logs, which hold their last ``oplog_max_events`` events; a room whose
log no longer reaches back that far is written from what it holds and says so in the log)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Reversible
from dataclasses import dataclass, field
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wire.stream import frame_bytes

log = logging.getLogger("tutorwire.cluster.journal")
_pack = msgpack.Packer(use_bin_type=True).pack
_pack_lua = msgpack.Packer(use_bin_type=False).pack  # Redis's cmsgpack reads strings, not the bin types
TTL_REFRESH_S = 60.0  # a room's stream TTL is set again at most this often (it is a day)

# ARGV[1] the key prefix; ARGV[2] msgpack [node, ttl, [[room, first seq, frames, cseqs, refresh], ...]]
# (one argument however many rooms: packing is the client's cost). Returns the 1-based indexes of
# the rooms not written because they are no longer this node's. (Keys are built here, not passed:
# this deployment's Redis is one primary, never a Redis Cluster.)
_WRITE = """
local p = cmsgpack.unpack(ARGV[2])
local node, ttl, rooms, prefix = p[1], p[2], p[3], ARGV[1]
local lost = {}
for i, r in ipairs(rooms) do
  if redis.call('GET', prefix .. 'room-node:' .. r[1]) == node then
    local key = prefix .. 'room-log:' .. r[1]
    redis.call('XADD', key, '*', 's', r[2], 'f', r[3], 'c', r[4])
    if r[5] == 1 then redis.call('EXPIRE', key, ttl) end
  else
    lost[#lost + 1] = i
  end
end
return lost
"""


@dataclass(slots=True)
class JournalRoom:
    """What the journal needs of one live room: its op log (``(seq, frame)`` in order), the
    cseqs moved on since the last write, and whom to tell."""

    room_id: str
    log: Callable[[], Reversible[tuple[int, bytes]]]  # newest last; read backwards from the end
    seq: Callable[[], int]
    durable: Callable[[int], None]  # every event up to this seq is in Redis (or Redis is down)
    lost: Callable[[], None]  # another node owns the room now
    take_cseqs: Callable[[], dict[tuple[int, str], int]]  # the cseqs moved on since the last call
    written: int = 0  # the last seq in Redis
    cseqs: dict[tuple[int, str], int] = field(default_factory=dict)  # taken, not yet written
    expires_at: float = 0.0  # loop time after which the stream's TTL is refreshed with the next write


def stream_key(prefix: str, room_id: str) -> str:
    return f"{prefix}room-log:{room_id}"


class Journal:
    def __init__(self, redis: aioredis.Redis, prefix: str, node_id: str, *, ttl_s: int = 86_400,
                 retry_s: float = 0.5, interval_s: float = 0.01) -> None:
        self.redis = redis
        self.prefix = prefix
        self.node_id = node_id
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self._write = redis.register_script(_WRITE)
        self._dirty: dict[str, JournalRoom] = {}
        self._task: asyncio.Task[None] | None = None
        self.interval_s = interval_s  # writes start at most this often (the Acks wait ack_delay_ms anyway)
        self._last = 0.0  # loop time of the last write's start
        self.up = True  # the last write reached Redis
        self.writes = 0  # Lua calls made
        self.failures = 0

    def changed(self, room: JournalRoom) -> None:
        """``room`` numbered an event (or moved a cseq on): write it soon."""
        self._dirty[room.room_id] = room
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def forget(self, room_id: str) -> None:
        self._dirty.pop(room_id, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._dirty:
                wait = self._last + self.interval_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the write cadence: more rooms' events in each write
                self._last = loop.time()
                batch, self._dirty = self._dirty, {}
                try:
                    await self._flush(list(batch.values()))
                    self.up = True
                except (RedisError, OSError) as exc:
                    self.failures += 1
                    if self.up:
                        log.warning("Redis unreachable (%s); rooms go on, not durable, until it answers", exc)
                    self.up = False
                    for room in batch.values():
                        room.durable(room.seq())  # an outage holds no Ack hostage
                        self._dirty.setdefault(room.room_id, room)
                    await asyncio.sleep(self.retry_s)  # a retry cadence, not a synchronisation
        finally:
            self._task = None

    async def _flush(self, rooms: list[JournalRoom]) -> None:
        batch: list[list[Any]] = []
        sent: list[tuple[JournalRoom, int, dict[tuple[int, str], int]]] = []
        now = asyncio.get_running_loop().time()
        for room in rooms:
            frames = _since(room.log(), room.written)
            moved = room.take_cseqs()
            cseqs = {**room.cseqs, **moved} if room.cseqs else moved
            room.cseqs = {}
            if not frames and not cseqs:
                continue
            first = frames[0][0] if frames else room.written + 1
            if frames and first != room.written + 1 and room.written:
                log.warning("room %s: events %d-%d left the op log before Redis took them",
                            room.room_id, room.written + 1, first - 1)
            last = frames[-1][0] if frames else room.written
            refresh = now >= room.expires_at
            if refresh:  # the TTL counts from the last write; refreshed once a minute is enough
                room.expires_at = now + TTL_REFRESH_S
            batch.append([room.room_id, first, b"".join([frame_bytes(f) for _, f in frames]),
                          _pack([[pid, dev, c] for (pid, dev), c in cseqs.items()]) if cseqs else b"\x90",
                          1 if refresh else 0])
            sent.append((room, last, cseqs))
        if not sent:
            return
        try:
            lost = await self._write(keys=[], args=[self.prefix, _pack_lua([self.node_id, self.ttl_s, batch])])
        except BaseException:
            for room, _, cseqs in sent:  # written again with the next try
                room.cseqs = {**cseqs, **room.cseqs}
            raise
        self.writes += 1
        gone = {int(i) - 1 for i in lost}
        for index, (room, last, _) in enumerate(sent):
            if index in gone:
                room.lost()
                continue
            room.written = last
            room.durable(last)


def _since(entries: Reversible[tuple[int, bytes]], written: int) -> list[tuple[int, bytes]]:
    """The entries after seq ``written``, oldest first (reads a deque from its end)."""
    out: list[tuple[int, bytes]] = []
    for seq, frame in reversed(entries):
        if seq <= written:
            break
        out.append((seq, frame))
    out.reverse()
    return out
