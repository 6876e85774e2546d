"""Prometheus metrics at ``GET /metrics`` (``prometheus_client``; the list with their meaning is in
``docs/operations.md``, the dashboard in ``deploy/grafana/tutorwire.json``).

Two kinds, so that the live path pays next to nothing:

- state read at scrape time, by a collector that walks what the server holds anyway: rooms by
  kind, connected participants by role, send-queue depths, open recordings, the recordings'
  backlog and bytes written, the event loop's lag and CPU;
- counts bumped on the hot paths as plain integers (``COUNTS``, ``ink_in``, ``ink_out``, ...):
  one attribute increment, no lock, no label lookup; the collector turns them into counters
  when scraped. They are per process (a test that runs two servers in one process sees both).

The matcher's figures (queue length, time to match, offers by outcome) come from its event
stream (``MatcherWatch``, one subscription of its own); with Redis every node sees every
event, so they are the cluster's, the same on each node (take one node's, not the sum).

``/metrics`` answers clients in ``TUTORWIRE_METRICS_NETWORKS`` (loopback by default) and any
client that presents ``Authorization: Bearer <TUTORWIRE_METRICS_TOKEN>``; others get 403 (401
for a wrong token).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wire import Role, RoomKind

if TYPE_CHECKING:
    from matcher.store import MatchEvent, Store
    from recordings.archiver import Archiver

    from .hub import Hub
    from .overload import Shedder

log = logging.getLogger("tutorwire.metrics")
PREFIX = "tutorwire_"
OPEN_REQUESTS_MAX = 100_000  # requests MatcherWatch follows at once (oldest forgotten first)
WITHDRAWN = {"declined": "declined", "lease expired": "expired", "request expired": "expired",
             "cancelled": "cancelled"}  # offer_withdrawn reasons -> outcome label; others: "withdrawn"


class Counts:
    """The hot paths' counters: plain ints, bumped in place (``COUNTS.ink_points_in += n``)."""

    __slots__ = ("audio_dropped", "audio_forwarded", "ink_batches_in", "ink_batches_out", "ink_points_in",
                 "ink_points_out", "slow_consumer_closes")

    def __init__(self) -> None:
        self.ink_batches_in = self.ink_points_in = self.ink_batches_out = self.ink_points_out = 0
        self.audio_forwarded = self.audio_dropped = self.slow_consumer_closes = 0


COUNTS = Counts()
ERRORS: Counter[int] = Counter()  # Error frames sent to session clients, by code
CLOSES: Counter[int] = Counter()  # session WebSockets the server closed, by close code
HTTP_ERRORS: Counter[int] = Counter()  # HTTP answers of 400 and above, by status


def ink_in(points: int) -> None:
    """A ``StrokePoints`` batch of ``points`` points the room applied."""
    c = COUNTS
    c.ink_batches_in += 1
    c.ink_points_in += points


def ink_out(points: int, receivers: int) -> None:
    """A batch of ``points`` points fanned out to ``receivers`` connections."""
    c = COUNTS
    c.ink_batches_out += receivers
    c.ink_points_out += points * receivers


def audio_forwarded(listeners: int) -> None:
    """One audio packet handed to ``listeners`` listening legs."""
    COUNTS.audio_forwarded += listeners


def audio_dropped(packets: int = 1) -> None:
    """Audio packets a listener's lane dropped (it fell behind)."""
    COUNTS.audio_dropped += packets


def slow_consumer() -> None:
    """A connection closed with 4010 (its send queue overflowed)."""
    COUNTS.slow_consumer_closes += 1


def error(code: int) -> None:
    ERRORS[code] += 1


def closed(code: int) -> None:
    CLOSES[code] += 1


class MatcherWatch:
    """The matcher's figures from its event stream: requests queued and offered now, offers by
    outcome, time from a request to its match."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.open: OrderedDict[str, tuple[str, float]] = OrderedDict()  # request id -> (state, created_at)
        self.outcomes: Counter[str] = Counter()
        self.time_to_match = Histogram(
            PREFIX + "matcher_time_to_match_seconds", "From a student's request to a tutor's accept",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600), registry=registry)
        self._task: asyncio.Task[None] | None = None

    def see(self, event: MatchEvent) -> None:
        """One event of the matcher's stream."""
        if event.kind == "offer":
            self.outcomes["offered"] += 1
        elif event.kind == "offer_withdrawn":
            self.outcomes[WITHDRAWN.get(str(event.data.get("reason")), "withdrawn")] += 1
        elif event.kind == "request":
            request = event.data.get("request")
            if not isinstance(request, dict):
                return
            rid, state, created = request.get("request_id"), request.get("state"), request.get("created_at")
            if not isinstance(rid, str) or not isinstance(state, str):
                return
            if state == "accepted" and rid in self.open:
                self.outcomes["accepted"] += 1
                if isinstance(created, int | float):
                    self.time_to_match.observe(max(0.0, self.clock() - created))
            if state in ("queued", "offered"):
                self.open[rid] = (state, float(created) if isinstance(created, int | float) else 0.0)
                self.open.move_to_end(rid)
                while len(self.open) > OPEN_REQUESTS_MAX:
                    self.open.popitem(last=False)
            else:
                self.open.pop(rid, None)

    def start(self, store: Store) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(store))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, store: Store) -> None:
        subscription = await store.subscribe()
        try:
            while True:
                self.see(await subscription.get())
        finally:
            await subscription.close()


class ServerCollector(Collector):
    """Everything read at scrape time: the hub's rooms, the counters, the archiver, the loop."""

    def __init__(self, hub: Hub, archiver: Archiver | None, shedder: Shedder, matcher: MatcherWatch) -> None:
        self.hub, self.archiver, self.shedder, self.matcher = hub, archiver, shedder, matcher

    def collect(self) -> Iterator[Metric]:
        yield from self._rooms()
        yield from self._counts()
        yield from self._matcher()
        yield from self._recordings()
        yield from self._loop()

    def _rooms(self) -> Iterator[Metric]:
        from .connection import Connection

        kinds: Counter[str] = Counter({"one_on_one": 0, "class": 0})
        roles: Counter[str] = Counter(dict.fromkeys((r.label for r in Role), 0))
        connections = frames = queued_bytes = deepest = 0
        for live in list(self.hub.rooms.values()):
            room = live.room
            kinds["class" if room.kind is RoomKind.CLASS else "one_on_one"] += 1
            for pid, devices in list(live.participants.items()):
                state = room.participants.get(pid)
                if state is not None:
                    roles[state.role.label] += 1
                for conn in list(devices.values()):
                    connections += 1
                    if isinstance(conn, Connection):
                        depth = len(conn.queue)
                        frames += depth
                        deepest = max(deepest, depth)
                        queued_bytes += conn.queue.queued_bytes
        yield _gauge("rooms", "Live rooms on this node, by kind", {"kind": kinds})
        yield _gauge("participants", "Participants connected to this node's rooms, by role", {"role": roles})
        yield _gauge("connections", "Session WebSocket connections in rooms", connections)
        yield _gauge("send_queue_frames", "Frames waiting in all connections' send queues", frames)
        yield _gauge("send_queue_bytes", "Bytes waiting in all connections' send queues", queued_bytes)
        yield _gauge("send_queue_deepest_frames", "Frames waiting in the fullest send queue", deepest)

    def _counts(self) -> Iterator[Metric]:
        c = COUNTS
        yield _counter("ink_batches_in", "Ink point batches the rooms applied", c.ink_batches_in)
        yield _counter("ink_points_in", "Ink points the rooms applied", c.ink_points_in)
        yield _counter("ink_batches_out", "Ink point batches sent to receivers (one per receiver)", c.ink_batches_out)
        yield _counter("ink_points_out", "Ink points sent to receivers (one per receiver)", c.ink_points_out)
        yield _counter("audio_packets_forwarded", "Audio packets handed to listeners (one per listener)",
                       c.audio_forwarded)
        yield _counter("audio_packets_dropped", "Audio packets dropped for listeners that fell behind",
                       c.audio_dropped)
        yield _counter("slow_consumer_closes", "Connections closed with 4010 (send queue overflow)",
                       c.slow_consumer_closes)
        yield _counter("errors", "Error frames sent to session clients, by code", {"code": ERRORS})
        yield _counter("closes", "Session WebSockets the server closed, by close code", {"code": CLOSES})
        yield _counter("http_errors", "HTTP answers of status 400 and above, by status", {"status": HTTP_ERRORS})

    def _matcher(self) -> Iterator[Metric]:
        states = Counter(state for state, _ in list(self.matcher.open.values()))
        yield _gauge("matcher_queue_length", "Requests waiting for a tutor (queued, no offer out)", states["queued"])
        yield _gauge("matcher_offers_pending", "Requests offered to a tutor, awaiting an answer", states["offered"])
        yield _counter("matcher_offers", "Offers by outcome (offered, accepted, declined, expired, cancelled, "
                       "withdrawn)", {"outcome": {**dict.fromkeys(
                           ("offered", "accepted", "declined", "expired"), 0), **self.matcher.outcomes}})

    def _recordings(self) -> Iterator[Metric]:
        a = self.archiver
        yield _gauge("recordings_open", "Recordings being written", 0 if a is None else len(a.recorders))
        yield _counter("recording_bytes", "Bytes of events and audio the recordings' writer has taken",
                       0 if a is None else a.written_bytes)
        yield _gauge("recording_backlog_bytes", "Bytes waiting for the recordings' writer thread",
                     0 if a is None else a.backlog_bytes)

    def _loop(self) -> Iterator[Metric]:
        g = self.shedder.gauge
        yield _gauge("event_loop_lag_seconds", "The latest probe's lateness on the event loop", g.lag_s)
        yield _gauge("event_loop_lag_median_seconds", "Median probe lateness over the overload window",
                     g.lag_median_s)
        yield _gauge("event_loop_cpu_ratio", "Share of a core the event loop's thread used over the window",
                     g.cpu_ratio)
        yield _gauge("overloaded", "1 while new joins and requests are refused (overload shedding)",
                     int((self.shedder.forced or g.busy) is not None))
        yield _counter("shed", "New joins and requests refused as busy, by what", {"what": self.shedder.refused})


class HttpErrorCounter:
    """ASGI middleware: counts HTTP answers of 400 and above by status (``HTTP_ERRORS``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                HTTP_ERRORS[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counted)


def _gauge(name: str, doc: str, value: float | dict[str, Counter[str]]) -> GaugeMetricFamily:
    return _family(GaugeMetricFamily, name, doc, value)  # type: ignore[return-value]


def _counter(name: str, doc: str, value: float | dict[str, Counter[int]] | dict[str, Counter[str]]
             | dict[str, dict[str, int]]) -> CounterMetricFamily:
    return _family(CounterMetricFamily, name, doc, value)  # type: ignore[return-value]


def _family(kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, doc: str,
            value: object) -> Metric:
    if not isinstance(value, dict):
        return kind(PREFIX + name, doc, value=value)  # type: ignore[arg-type]
    [(label, by)] = value.items()
    family = kind(PREFIX + name, doc, labels=[label])
    for key, count in sorted(by.items(), key=lambda kv: str(kv[0])):
        family.add_metric([str(key)], count)
    return family


def _networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


class Metrics:
    """The registry of one server, its ``/metrics`` endpoint and its matcher watch."""

    def __init__(self, hub: Hub, archiver: Archiver | None, shedder: Shedder, token: str = "",
                 networks: str = "127.0.0.0/8,::1/128") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.token = token
        try:
            self.networks = _networks(networks)
        except ValueError as exc:
            from .settings import SettingsError

            raise SettingsError(f"TUTORWIRE_METRICS_NETWORKS={networks!r}: {exc}") from None
        self.matcher = MatcherWatch(self.registry)
        self.flush_seconds = Histogram(
            PREFIX + "recording_flush_seconds", "How long a write-out and fsync of the open recordings took",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=self.registry)
        self.loop_lag = Histogram(
            PREFIX + "event_loop_lag_probe_seconds", "Lateness of the event loop's probes",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1), registry=self.registry)
        self.registry.register(ServerCollector(hub, archiver, shedder, self.matcher))
        shedder.on_sample.append(self.loop_lag.observe)
        if archiver is not None:
            archiver.on_flush = self.flush_seconds.observe

    def allowed(self, request: Request) -> Response | None:
        """``None`` when ``request`` may read the metrics, else the refusal."""
        auth = request.headers.get("authorization", "")
        if auth:
            scheme, _, given = auth.partition(" ")
            if self.token and scheme.lower() == "bearer" and secrets.compare_digest(given.strip(), self.token):
                return None
            return JSONResponse({"error": "wrong metrics token"}, 401)
        host = request.client.host if request.client else ""
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host)
            if any(address in net for net in self.networks):
                return None
        return JSONResponse({"error": "metrics are open to TUTORWIRE_METRICS_NETWORKS, or with "
                             "Authorization: Bearer TUTORWIRE_METRICS_TOKEN"}, 403)

    async def endpoint(self, request: Request) -> Response:
        refused = self.allowed(request)
        if refused is not None:
            return refused
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def names(self) -> Iterable[str]:
        """Every metric family this registry exposes (for the dashboard's test)."""
        return [metric.name for metric in self.registry.collect()]
