"""A room's state in Redis, read and written: its meta hash (``{prefix}room-meta:{id}``: epoch and
wall-clock start, written once by the node that first opens it) and its event stream (the
journal's, ``journal.py``), read back in full when another node takes the room over."""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import redis.asyncio as aioredis

from wire import Limits, ProtocolError, decode_frame
from wire import messages as m
from wire.stream import StreamDecoder

from .journal import stream_key


@dataclass(frozen=True, slots=True)
class StoredRoom:
    epoch: int
    started_unix: float
    events: list[tuple[m.Event, bytes]]
    cseqs: list[tuple[int, str, int]]
    moved_from: str = ""  # the node it was taken over from ("" : it was nobody's, or was evicted)
    # the epoch its clients know now: a takeover gives the room a new one (room/restore.py
    # ``renumber``); ``epoch`` stays the first, which names the recording
    live_epoch: int = 0


def meta_key(prefix: str, room_id: str) -> str:
    return f"{prefix}room-meta:{room_id}"


async def meta(redis: aioredis.Redis, prefix: str, room_id: str, epoch: int, started_unix: float,
               ttl_s: int) -> tuple[int, float]:
    """The room's epoch and start: the ones given if it has none yet (written now), else its own."""
    key = meta_key(prefix, room_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hsetnx(key, "epoch", str(epoch))
    pipe.hsetnx(key, "started", repr(started_unix))
    pipe.expire(key, ttl_s)
    pipe.hmget(key, ["epoch", "started"])
    *_, (raw_epoch, raw_started) = await pipe.execute()
    return int(raw_epoch), float(raw_started)


async def load(redis: aioredis.Redis, prefix: str, room_id: str, limits: Limits) -> StoredRoom | None:
    """Everything Redis holds of the room, oldest event first; ``None`` if it holds nothing."""
    pipe = redis.pipeline(transaction=True)
    pipe.hmget(meta_key(prefix, room_id), ["epoch", "started", "live_epoch"])
    pipe.xrange(stream_key(prefix, room_id))
    (raw_epoch, raw_started, raw_live), entries = await pipe.execute()
    if raw_epoch is None:
        return None
    events: list[tuple[m.Event, bytes]] = []
    cseqs: list[tuple[int, str, int]] = []
    for _, fields in entries:
        decoder = StreamDecoder(1 << 30)
        decoder.feed(fields.get(b"f", b""))
        for frame in decoder.frames():
            try:
                event = decode_frame(frame, limits)
            except ProtocolError:
                continue  # what this node cannot read it cannot replay; the others still count
            if isinstance(event, m.Event):
                events.append((event, frame))
        for pid, dev, cseq in msgpack.unpackb(fields.get(b"c", b"\x90")):
            cseqs.append((int(pid), str(dev), int(cseq)))
    return StoredRoom(int(raw_epoch), float(raw_started), events, cseqs,
                      live_epoch=int(raw_live) if raw_live is not None else 0)


async def drop(redis: aioredis.Redis, prefix: str, room_id: str) -> None:
    """The room ended and its recording holds its events: its stream and meta go."""
    await redis.delete(stream_key(prefix, room_id), meta_key(prefix, room_id))


async def set_live_epoch(redis: aioredis.Redis, prefix: str, room_id: str, epoch: int) -> None:
    await redis.hset(meta_key(prefix, room_id), "live_epoch", str(epoch))  # type: ignore[misc]
