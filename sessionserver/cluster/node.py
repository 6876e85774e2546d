"""This process as one node of several on one Redis (docs/cluster.md): it announces itself and its
load, finds or claims the home of each room a client joins, redirects a client whose room lives
on another live node (Error 2010 MOVED, close 4013), takes over and rebuilds the rooms of a node
that died, and writes every room's events to Redis before their Acks go (``journal.py``).

The choices are the sans-I/O parts' (``placement.choose_node``, the directory's Lua claims,
``room/restore.py``); this is the I/O between them, the hub and Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wire import Role

from ..classes.model import ROOM_PREFIX as CLASS_ROOM_PREFIX
from .classfan import ClassFan
from .directory import RoomDirectory
from .journal import Journal
from .placement import NodeLoad, choose_node
from .registry import NodeRegistry
from .rooms import StoredRoom, drop, load, meta, set_live_epoch
from .span import Span

if TYPE_CHECKING:
    from ..hub import Hub
    from ..settings import Settings

log = logging.getLogger("tutorwire.cluster")


@dataclass(frozen=True, slots=True)
class Redirect:
    """The room lives on another live node: join it at ``url``."""

    url: str


@dataclass(frozen=True, slots=True)
class Edge:
    """A class homed on live node ``home``: a viewer joins here, through this node's mirror."""

    home: str


def session_url(node_url: str, path: str) -> str:
    """The WebSocket URL of ``path`` (``/ws/session/{id}``) on the node whose public URL is
    ``node_url`` (``http(s)://`` or ``ws(s)://``, possibly with a query the proxy routes by)."""
    parts = urlsplit(node_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))


class ClusterNode:
    def __init__(self, settings: Settings, hub: Hub, redis: aioredis.Redis,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.hub = hub
        self.redis = redis
        self.node_id = settings.node_id
        self.url = settings.node_url or f"http://{settings.host}:{settings.port}"
        prefix = settings.redis_prefix
        self.prefix = prefix
        self.registry = NodeRegistry(redis, prefix, settings.node_dead_after_s)
        self.directory = RoomDirectory(redis, prefix)
        self.journal = Journal(redis, prefix, self.node_id, ttl_s=settings.cluster_stream_ttl_s,
                               interval_s=settings.cluster_journal_interval_ms / 1000)
        self.fan = ClassFan(redis, prefix, self._on_fan, self._on_inbox)
        self.span = Span(hub, self.fan, self.node_id, prefix)
        self.wall_clock = wall_clock
        self._task: asyncio.Task[None] | None = None
        self._cpu_at = (time.monotonic(), _cpu_seconds())
        self.cpu = 0.0
        self.lag_ms = 0.0
        self.unclaimed: set[str] = set()  # rooms opened while Redis was down: claimed once it answers
        self.takeovers = 0

    # --- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._cpu_at = (time.monotonic(), _cpu_seconds())  # the start-up's own CPU is not load
        try:
            await self._announce()
        except (RedisError, OSError) as exc:
            log.warning("node %s could not announce itself (%s); retrying", self.node_id, exc)
        try:
            await self.fan.start()
        except (RedisError, OSError) as exc:
            log.warning("node %s: no class fan-out (%s): classes do not span this node", self.node_id, exc)
        self._task = asyncio.get_running_loop().create_task(self._run())
        log.info("node %s at %s in the cluster", self.node_id, self.url)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.fan.stop()
        try:  # the others take this node's rooms over at once, not after the dead-after timeout
            await self.registry.leave(self.node_id)
        except (RedisError, OSError):
            pass

    async def _run(self) -> None:
        interval = self.settings.node_announce_s
        while True:
            started = time.monotonic()
            await asyncio.sleep(interval)  # the announcement cadence
            self.lag_ms = max(0.0, (time.monotonic() - started - interval) * 1000)
            try:
                await self._announce()
                await self._claim_unclaimed()
                await self._take_over_dead()
            except (RedisError, OSError) as exc:
                log.warning("node %s: Redis unreachable (%s); rooms go on here", self.node_id, exc)
            except Exception:
                log.exception("node %s: fault in the cluster loop; it goes on", self.node_id)

    def _load(self, now: float) -> NodeLoad:
        mono, cpu = time.monotonic(), _cpu_seconds()
        then, cpu_then = self._cpu_at
        if mono - then > 0.05:
            self.cpu = max(0.0, (cpu - cpu_then) / (mono - then))
        self._cpu_at = (mono, cpu)
        participants = sum(len(live.participants) for live in self.hub.rooms.values())
        return NodeLoad(self.node_id, self.url, len(self.hub.rooms), participants, self.cpu, self.lag_ms, now)

    async def _announce(self) -> None:
        await self.registry.announce(self._load(await self.registry.now()))

    # --- placement and joins ------------------------------------------------------------------

    async def grant_url(self, room_id: str, role: Role) -> str:
        """The WebSocket URL a join grant names: the room's home (``place``); for a class's viewer,
        the least-loaded live node by participants (it joins there, through that node's mirror
        of the class when that is not the home: a class spans nodes as its viewers come)."""
        path = f"/ws/session/{room_id}"
        if role is Role.VIEWER and room_id.startswith(CLASS_ROOM_PREFIX):
            await self.place(room_id)  # the class has a home first
            now = await self.registry.now()
            live = await self.registry.live(now)
            fit = [n for n in live if n.participants < self.settings.node_max_participants]
            if fit:
                chosen = min(fit, key=lambda n: (n.participants, round(n.cpu, 1), n.node_id))
                return session_url(chosen.url, path)
        return session_url(await self.place(room_id), path)

    async def place(self, room_id: str) -> str:
        """The public URL of the room's home node, chosen now if it has none (a join grant)."""
        now = await self.registry.now()
        live = {n.node_id: n for n in await self.registry.live(now)}
        owner = await self.directory.owner(room_id)
        if owner is not None and owner in live:
            return live[owner].url
        if owner is not None and owner != self.node_id:
            return self.url  # its home died: whoever the client reaches takes it over
        counts = await self.directory.room_counts(list(live))  # current, where announcements lag
        loads = [dataclasses.replace(n, rooms=counts.get(n.node_id, n.rooms)) for n in live.values()]
        chosen = choose_node(loads, now, self.settings.node_dead_after_s,
                             self.settings.node_max_cpu, self.settings.node_max_participants)
        target = chosen.node_id if chosen is not None else self.node_id
        home = await self.directory.claim(room_id, target)
        node = live.get(home)
        return node.url if node is not None else self.url

    def _on_fan(self, room_id: str, items: list[Any]) -> None:
        self.span.on_fan(room_id, items)

    def _on_inbox(self, room_id: str, messages: list[Any]) -> None:
        for message in messages:  # in the order the edge sent them
            self.span.on_inbox(room_id, message)

    async def open(self, room_id: str, path: str, role: Role = Role.TUTOR) -> Redirect | Edge | StoredRoom | None:
        """Where a join for ``room_id`` goes: ``Redirect`` to a live home elsewhere, else the room
        is this node's now (claimed, or taken over from a dead home) with what Redis holds of it
        (a new room: its epoch and start, no events). ``None``: Redis is down, and the room
        opens here, not yet durable."""
        try:
            return await self._open(room_id, path, role)
        except (RedisError, OSError) as exc:
            log.warning("room %s opens on %s without Redis (%s): not durable until it answers",
                        room_id, self.node_id, exc)
            self.unclaimed.add(room_id)
            return None

    async def _open(self, room_id: str, path: str, role: Role) -> Redirect | Edge | StoredRoom:
        owner = await self.directory.claim(room_id, self.node_id)
        if owner != self.node_id:
            now = await self.registry.now()
            home = next((n for n in await self.registry.live(now) if n.node_id == owner), None)
            if home is not None:
                if role is Role.VIEWER and room_id.startswith(CLASS_ROOM_PREFIX):
                    return Edge(owner)  # a class's viewers are served where they are
                return Redirect(session_url(home.url, path))
            if not await self.directory.take_over(room_id, owner, self.node_id):
                return await self._open(room_id, path, role)  # someone else won it: ask again
            self.takeovers += 1
            log.warning("room %s taken over by %s from %s (dead)", room_id, self.node_id, owner)
        stored = await load(self.redis, self.prefix, room_id, self.settings.limits)
        if stored is not None and owner != self.node_id:
            stored = dataclasses.replace(stored, moved_from=owner)
        if stored is None:  # a new room: its epoch and start, kept for whoever rebuilds it
            epoch, started = await meta(self.redis, self.prefix, room_id, secrets.randbelow(2**53 - 1) + 1,
                                        self.wall_clock(), self.settings.cluster_stream_ttl_s)
            stored = StoredRoom(epoch, started, [], [])
        return stored

    async def live_epoch(self, room_id: str, epoch: int) -> None:
        """A room taken over here has a new epoch: the class mirrors on other nodes use it."""
        try:
            await set_live_epoch(self.redis, self.prefix, room_id, epoch)
        except (RedisError, OSError) as exc:
            log.warning("room %s: its new epoch is not in Redis (%s)", room_id, exc)

    async def closed(self, room_id: str, ended: bool) -> None:
        """The room left this node: its claim goes; an ended session's stream goes too."""
        self.journal.forget(room_id)
        await self.fan.unwatch(room_id)
        try:
            await self.directory.release(room_id, self.node_id)
            if ended:
                await drop(self.redis, self.prefix, room_id)
        except (RedisError, OSError) as exc:
            log.warning("room %s: its claim stays in Redis (%s); the stream expires", room_id, exc)

    # --- failure of others --------------------------------------------------------------------

    async def _claim_unclaimed(self) -> None:
        for room_id in list(self.unclaimed):
            owner = await self.directory.claim(room_id, self.node_id)
            self.unclaimed.discard(room_id)
            live = self.hub.rooms.get(room_id)
            if owner != self.node_id:
                log.error("room %s was opened on %s and on %s while Redis was down; %s keeps it",
                          room_id, self.node_id, owner, owner)
            elif live is not None and live.journal is not None:
                self.journal.changed(live.journal)  # everything since the start goes to Redis now

    async def _take_over_dead(self) -> None:
        """Rooms of a dead node are spread by placement: each live node takes those that
        placement gives it (every node computes the same), and a client reaching any node takes
        any that is left."""
        now = await self.registry.now()
        nodes = await self.registry.nodes()
        dead = [n for n in nodes if not n.alive(now, self.settings.node_dead_after_s)]
        if not dead:
            return
        live = [n.node_id for n in nodes if n.alive(now, self.settings.node_dead_after_s)]
        if self.node_id not in live:
            return  # not announced yet (or Redis thinks this node dead): the joins decide
        for node in dead:
            for room_id in await self.directory.rooms_of(node.node_id):
                if live[zlib.crc32(room_id.encode()) % len(live)] != self.node_id or room_id in self.hub.rooms:
                    continue
                if await self.directory.take_over(room_id, node.node_id, self.node_id):
                    self.takeovers += 1
                    stored = await load(self.redis, self.prefix, room_id, self.settings.limits)
                    if stored is not None:
                        self.hub.adopt(room_id, dataclasses.replace(stored, moved_from=node.node_id))
                    log.warning("room %s taken over by %s from %s (dead)", room_id, self.node_id, node.node_id)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


__all__ = ["ClusterNode", "Edge", "Redirect", "cluster_node", "session_url"]


def cluster_node(settings: Settings, hub: Hub) -> ClusterNode | None:
    """This process's node when ``node_id`` is set (it needs Redis), wired into ``hub``; else
    ``None``: one process, rooms in its memory alone."""
    from ..redisconn import redis_client
    from ..settings import SettingsError

    if not settings.node_id:
        return None
    if not (settings.redis_url or settings.redis_sentinels):
        raise SettingsError("TUTORWIRE_NODE_ID needs Redis: set TUTORWIRE_REDIS_URL or TUTORWIRE_REDIS_SENTINELS")
    redis = redis_client(settings.redis_url, settings.redis_sentinels, settings.redis_sentinel_service)
    node = hub.cluster = ClusterNode(settings, hub, redis)
    return node
