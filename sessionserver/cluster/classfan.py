"""Classes that span nodes: the home node publishes a class's events once to Redis, and every node
with viewers of it (an *edge*) fans them out to its own viewers (docs/cluster.md).

Two Redis pub/sub channels a class:

- ``{prefix}room-fan:{id}``, home to edges, in order: each message is a msgpack list of items
  ``[EVENT, frame]`` (an ``Event`` as the home encoded it), ``[AUDIO, pid, frame]`` (an
  ``AudioRelay`` of speaker ``pid``), ``[ADMITTED, nonce, pid]``, ``[REFUSED, nonce, code, text,
  close]``, ``[APPLIED, pid, dev, cseq, seq]``, ``[OP_REFUSED, pid, dev, cseq, code, text, last]``;
- ``{prefix}room-in:{id}``, edges to home, a msgpack list of messages ``[JOIN, nonce, node, user,
  role, dev]``, ``[LEAVE, pid, dev]``, ``[OP, pid, dev, frame]`` (an op frame as the viewer sent it).

An edge subscribes to the fan channel before it reads the class's stream (the journal's), so
every event is in one or the other; it keeps a mirror of the room (``room/restore.py``) for its
late joiners' Welcome and catch-up. The home answers an edge viewer's join, ops and leave as it
would a local one's; Acks to edge viewers come as ``APPLIED`` after the op's event.

Published items are batched: the first of a loop turn arms one write for the next turn, one
``PUBLISH`` per class (the hop between nodes is a loop turn plus a Redis round trip).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("tutorwire.cluster.classfan")

# home -> edges
EVENT, AUDIO, ADMITTED, REFUSED, APPLIED, OP_REFUSED = range(6)
# edges -> home
JOIN, LEAVE, OP = range(3)

READ_WAIT_S = 1.0  # one wait for a pub/sub message, below the Redis client's socket timeout
Handler = Callable[[str, list[Any]], None]  # room id, the decoded items / message


def fan_channel(prefix: str, room_id: str) -> str:
    return f"{prefix}room-fan:{room_id}"


def in_channel(prefix: str, room_id: str) -> str:
    return f"{prefix}room-in:{room_id}"


class ClassFan:
    """This node's side of every spanning class: what it publishes as a home, what it sends as an
    edge, and one pub/sub connection for what it receives (``on_fan`` for classes it is an edge
    of, ``on_inbox`` for classes it is home to)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, on_fan: Handler, on_inbox: Handler) -> None:
        self.redis = redis
        self.prefix = prefix
        self.on_fan = on_fan
        self.on_inbox = on_inbox
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._reader: asyncio.Task[None] | None = None
        self._out: dict[str, list[Any]] = {}  # channel -> items waiting for the next write
        self._writer: asyncio.Task[None] | None = None
        self._fan_prefix = len(fan_channel(prefix, ""))
        self._in_prefix = len(in_channel(prefix, ""))
        self.published = 0

    async def start(self) -> None:
        await self._pubsub.psubscribe(in_channel(self.prefix, "*"))
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        for task in (self._reader, self._writer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        try:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        except (RedisError, OSError):
            pass

    async def watch(self, room_id: str) -> None:
        """Become an edge of ``room_id``: its home's items come to ``on_fan`` from now on."""
        await self._pubsub.subscribe(fan_channel(self.prefix, room_id))

    async def unwatch(self, room_id: str) -> None:
        try:
            await self._pubsub.unsubscribe(fan_channel(self.prefix, room_id))
        except (RedisError, OSError):
            pass

    # --- writing ------------------------------------------------------------------------------

    def to_edges(self, room_id: str, item: list[Any]) -> None:
        """An item for every edge of ``room_id`` (this node is its home)."""
        self._queue(fan_channel(self.prefix, room_id), item)

    def to_home(self, room_id: str, message: list[Any]) -> None:
        """A message for the home of ``room_id`` (this node is an edge)."""
        self._queue(in_channel(self.prefix, room_id), message)

    def _queue(self, channel: str, item: list[Any]) -> None:
        items = self._out.get(channel)
        if items is None:
            items = self._out[channel] = []
        items.append(item)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._out:
                batch, self._out = self._out, {}
                pipe = self.redis.pipeline(transaction=False)
                for channel, items in batch.items():
                    pipe.publish(channel, msgpack.packb(items, use_bin_type=True))
                try:
                    await pipe.execute()
                    self.published += len(batch)
                except (RedisError, OSError) as exc:  # the edges resume from the stream when it is back
                    log.warning("class fan-out to Redis failed (%s); %d channels' items dropped", exc, len(batch))
        finally:
            self._writer = None

    # --- reading ------------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            try:  # within the connection's socket timeout: an idle channel is not a lost one
                message = await self._pubsub.get_message(timeout=READ_WAIT_S)
            except (RedisError, OSError) as exc:
                log.warning("class fan-out: Redis pub/sub lost (%s); retrying", exc)
                await asyncio.sleep(0.5)  # a retry cadence, not a synchronisation
                continue
            if message is None:
                continue
            try:
                channel = message["channel"].decode()
                items = msgpack.unpackb(message["data"], raw=False)
                if message["type"] == "pmessage":
                    self.on_inbox(channel[self._in_prefix:], items)
                else:
                    self.on_fan(channel[self._fan_prefix:], items)
            except Exception:  # a bad message is one class's problem, never the node's
                log.exception("class fan-out: a message on %r could not be handled", message.get("channel"))
