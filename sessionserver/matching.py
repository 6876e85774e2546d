"""The matcher inside the session server: opens the store the settings name, loads a roster,
runs a matcher worker, and fans the store's events out to this process's push channels.

One subscription to the store per process; each push connection registers under its user id
and gets a bounded queue. ``on_session_ended`` callbacks hear every ``session_ended`` event (the
hub ends the session's room with them). A listener that falls behind is disconnected (it reconnects and reads
the current state again), so a stalled phone never holds memory on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from matcher.memory_store import MemoryStore
from matcher.redis_store import RedisStore
from matcher.service import Matcher
from matcher.store import MatchEvent, Store, Subscription
from matcher.worker import MatchWorker

from .settings import Settings

log = logging.getLogger("tutorwire.matching")
PUSH_QUEUE_MAX = 256


@dataclass(eq=False)
class PushListener:
    user_id: str
    queue: asyncio.Queue[MatchEvent] = field(default_factory=lambda: asyncio.Queue(PUSH_QUEUE_MAX))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: MatchEvent) -> None:
        if self.queue.full():
            self.overflowed.set()
        else:
            self.queue.put_nowait(event)


class Matching:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        changelog = settings.matcher.changelog_max
        self.store: Store = (RedisStore(settings.redis_url, settings.redis_prefix, changelog) if settings.redis_url
                             else MemoryStore(changelog))
        self.matcher = Matcher(self.store, settings.matcher)
        self.listeners: dict[str, set[PushListener]] = {}
        self.on_session_ended: list[Callable[[str], None]] = []  # called with the session id
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def start(self) -> None:
        await self._seed()
        subscription = await self.store.subscribe()
        self._tasks.append(asyncio.create_task(self._dispatch(subscription)))
        if self.settings.matcher_worker:
            worker = MatchWorker(self.matcher)
            self._tasks.append(asyncio.create_task(worker.run(self._stop, time.time)))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.close()

    async def _seed(self) -> None:
        from matcher.roster import RosterError, decode_roster, demo_roster, import_roster, parse_roster, roster_format

        if self.settings.roster_file:
            path = Path(self.settings.roster_file)
            data = await asyncio.to_thread(path.read_bytes)
            try:
                tutors = parse_roster(decode_roster(data), roster_format(path.name) or "json")
            except RosterError as exc:
                for problem in exc.problems:
                    log.error("%s: %s", path, problem)
                raise
            log.info("loaded %d tutors from %s", await import_roster(self.matcher, tutors), self.settings.roster_file)
        elif self.settings.dev_mode and not await self.matcher.tutor_ids():
            log.info("dev mode: seeded %d demo tutors", await import_roster(self.matcher, demo_roster()))

    async def _dispatch(self, subscription: Subscription) -> None:
        try:
            while True:
                event = await subscription.get()
                session_id = event.data.get("session_id")
                if event.kind == "session_ended" and isinstance(session_id, str):
                    for callback in self.on_session_ended:
                        try:
                            callback(session_id)
                        except Exception:  # one broken callback must not stop the push channel
                            log.exception("session_ended callback failed for %s", session_id)
                for listener in list(self.listeners.get(event.user_id, ())):
                    listener.offer(event)
        finally:
            await subscription.close()

    @contextlib.asynccontextmanager
    async def listen(self, user_id: str) -> AsyncIterator[PushListener]:
        """Register a push listener for ``user_id`` for the duration of the block."""
        listener = PushListener(user_id)
        self.listeners.setdefault(user_id, set()).add(listener)
        try:
            yield listener
        finally:
            group = self.listeners.get(user_id)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self.listeners[user_id]
