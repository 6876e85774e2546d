"""Overload shedding: when this server's event loop lags or its thread is saturated, new work is
refused with "busy, retry in N s" so that the sessions already live keep their latency.

``LoadGauge`` is the sans-I/O core: it is handed each probe's lateness and the loop thread's CPU
time with ``now``, and says whether the server is busy over the last ``window_s``:

- lag: the median lateness of the probes in the window is above ``lag_ms`` (a median, so that
  one garbage-collection pause does not shed; a saturated loop makes every probe late);
- CPU: the loop's thread used more than ``cpu`` of a core over the window (thread CPU, so load
  from other processes on the machine does not count, only this server's own work).

``Shedder`` is the asyncio shell: a probe timer every ``PROBE_S`` on the loop it runs on, and
``refusal()``, which the join and request paths call: ``None`` (go on) or a ``Busy`` that says
how long the client should wait. What a refused client is told (``docs/operations.md``):

- a session WebSocket: ``Error 2011 SERVER_BUSY`` ("server busy, retry in N s"), close 4014;
- HTTP (``POST /api/requests``): 503 with ``Retry-After: N`` and
  ``{"error": "server busy, retry in N s", "retry_after_s": N}``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from wire import CloseCode, ErrorCode

PROBE_S = 0.05  # how often the loop's lateness is probed
BUSY_ERROR = ErrorCode.SERVER_BUSY  # 2011
BUSY_CLOSE = CloseCode.SERVER_BUSY  # 4014


@dataclass(frozen=True, slots=True)
class OverloadConfig:
    lag_ms: float = 100.0  # median probe lateness over the window past which the server is busy; 0: never
    cpu: float = 0.95  # share of a core the loop's thread used over the window past which it is busy; 0: never
    window_s: float = 1.0
    retry_s: int = 5  # what a refused client is told to wait

    def __post_init__(self) -> None:
        if self.lag_ms < 0 or self.cpu < 0 or self.window_s <= 0 or self.retry_s < 1:
            raise ValueError("overload settings: lag_ms and cpu >= 0, window_s > 0, retry_s >= 1")


@dataclass(slots=True)
class Busy:
    """A refusal: the reason (``"lag"`` or ``"cpu"``), how long the client should wait, and what
    it is told (``hub.Busy``)."""

    reason: str
    retry_s: int
    message: str = ""

    def __post_init__(self) -> None:
        self.message = self.message or f"server busy, retry in {self.retry_s} s"


class LoadGauge:
    """The loop's load over a sliding window, from probes (sans-I/O: time is passed in)."""

    def __init__(self, config: OverloadConfig, now: float, cpu_s: float) -> None:
        self.config = config
        self._samples: deque[tuple[float, float, float]] = deque()  # (now, lag s, thread cpu s)
        self._samples.append((now, 0.0, cpu_s))
        self.lag_s = 0.0  # the latest probe's lateness
        self.lag_median_s = 0.0
        self.cpu_ratio = 0.0
        self.busy: Busy | None = None

    def sample(self, now: float, lag_s: float, cpu_s: float) -> Busy | None:
        """A probe ran ``lag_s`` after it was due; the loop thread has used ``cpu_s`` so far."""
        samples = self._samples
        samples.append((now, lag_s, cpu_s))
        horizon = now - self.config.window_s
        while len(samples) > 2 and samples[1][0] <= horizon:
            samples.popleft()  # keep one sample at or before the horizon: the CPU's baseline
        self.lag_s = lag_s
        self.lag_median_s = statistics.median(s[1] for s in list(samples)[1:])
        first_t, _, first_cpu = samples[0]
        span = now - first_t
        self.cpu_ratio = (cpu_s - first_cpu) / span if span > 0 else 0.0
        c = self.config
        if c.lag_ms > 0 and self.lag_median_s * 1000 > c.lag_ms:
            self.busy = Busy("lag", c.retry_s)
        elif c.cpu > 0 and span >= c.window_s * 0.5 and self.cpu_ratio > c.cpu:
            self.busy = Busy("cpu", c.retry_s)
        else:
            self.busy = None
        return self.busy


class Shedder:
    """Probes the running loop and answers ``refusal()``; ``start`` on the server's loop."""

    def __init__(self, config: OverloadConfig, clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self.config = config
        self.clock = clock
        self.cpu_clock = cpu_clock  # CPU of the calling thread: probes run on the loop's
        self.gauge = LoadGauge(config, clock(), 0.0)
        self.refused: dict[str, int] = {"join": 0, "request": 0}  # refusals by what was refused
        self.on_sample: list[Callable[[float], None]] = []  # each probe's lateness (metrics)
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.forced: Busy | None = None  # set by tests and operators' tools: busy whatever the load

    @property
    def enabled(self) -> bool:
        return self.config.lag_ms > 0 or self.config.cpu > 0

    def start(self) -> None:
        if not self.enabled or self._handle is not None:
            return
        self.gauge = LoadGauge(self.config, self.clock(), self.cpu_clock())
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        self._due = self.clock() + PROBE_S
        self._handle = asyncio.get_running_loop().call_at(self._due, self._probe)

    def _probe(self) -> None:
        now = self.clock()
        lag = max(0.0, now - self._due)
        self.gauge.sample(now, lag, self.cpu_clock())
        for hook in self.on_sample:
            hook(lag)
        self._arm()

    def refusal(self, kind: str = "join") -> Busy | None:
        """``None`` while new work may start; else the refusal to give (and it is counted
        under ``kind``: ``"join"`` or ``"request"``)."""
        busy = self.forced or self.gauge.busy
        if busy is not None:
            self.refused[kind] = self.refused.get(kind, 0) + 1
        return busy


class BusyGuard:
    """ASGI middleware: the HTTP requests that start new work (``guarded``: method and path)
    get 503 + ``Retry-After`` while the shedder says busy; everything else passes untouched."""

    def __init__(self, app: ASGIApp, shedder: Shedder, guarded: frozenset[tuple[str, str]]) -> None:
        self.app, self.shedder, self.guarded = app, shedder, guarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) in self.guarded:
            busy = self.shedder.refusal("request")
            if busy is not None:
                body = json.dumps({"error": busy.message, "retry_after_s": busy.retry_s}).encode()
                await send({"type": "http.response.start", "status": 503, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(busy.retry_s).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
