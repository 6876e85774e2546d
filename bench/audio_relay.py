"""Benchmark of live audio forwarding: the session server's passthrough path (WebRTC legs and
WebSocket legs) against aiortc's ``MediaRelay`` (decode once, re-encode per leg), in one run.

Shape. The issue asks for one speaker (Opus, 20 ms) and N listener legs. Rooms are one-on-one
(a tutor and a student participant, one connection each), so for the session server N listener legs are
N rooms: every room's tutor sends the same pre-encoded Opus stream (250 distinct 20 ms packets at
32 kbit/s, looped) over its session WebSocket, paced by one speaker process (rooms spread over 20
send slots of 1 ms), and every room's student listens, over WebSocket (``AudioRelay`` frames) or
over WebRTC (an aiortc peer signalled through ``RtcOffer``/``RtcAnswer``; its speaker still
sends over the WebSocket, the cheaper way in for the server). The server therefore
also takes in N speaker streams (one WebSocket ``Audio`` frame per leg per 20 ms) where the
issue's shape takes in one: the headline figures include that ingest, which only counts against
the session server. The ``*_send_only`` keys estimate the issue's one-speaker shape by measuring
the ingest alone (the same N speakers, no listener joined) in the same run and subtracting it.
The baseline (``bench.audio_baseline``) is the issue's shape exactly: one aiortc speaker peer
sending the same stream as RTP, relayed by ``MediaRelay`` to N aiortc listener peers.

Processes. The server under test runs alone on the first CPU (``taskset``): ``tutorwire serve``
(uvicorn, uvloop) with pings and the matcher worker off, or the baseline. The speaker process and
the listener processes (``bench.audio_speaker``, ``bench.audio_listeners``; rooms dealt
round-robin) run on the second CPU with the orchestrator. Listeners never decode: WebRTC
listeners tap aiortc's receiver before its jitter buffer, as the server's own leg does, and
count packets. Every server gets a fresh process per path and step; the load processes stay.
The session server runs from ``--server-tree`` (default: this working tree) with recording off
unless ``--record``: the live path alone is measured. ``--profile FILE`` runs py-spy on the
server through the first WebRTC step (raw collapsed stacks; ``--profile-native`` adds C frames
but pauses the server at each sample, so that step's figures are then not to be used);
``--profile-ws FILE`` does the same through the first WebSocket step.

Measures, per path and N (a step), over ``windows`` consecutive windows after a warm-up on the
same connections (medians over windows and repeats are reported):

* server CPU: the server process's user + system time over the window (/proc/<pid>/stat);
* delivery: for each listener leg, the share of the packets its speaker sent in the window that
  it received (each received packet is mapped to the packet sent: by ``seq`` over WebSocket, by
  the payload's place in the stream over WebRTC, the RTP numbers being the server's own); a step
  is at full delivery when every leg got at least 99 %. The baseline re-encodes, so its listeners
  count packets received against packets sent, over all the step's windows together (so that the
  packet or two in flight at the edges stays well under 1 %);
* legs per core = N / (server CPU fraction) at the largest step at full delivery (median over its
  windows): a linear extrapolation from that step, not a search for the N that saturates the
  server's core, because aiortc listeners cost the load core about as much as the legs cost the
  server. The server has per-wakeup costs that more legs share, so the figure rises a little
  with N (WebRTC: ~275 at 100 legs, ~330 at 200); compare figures at the same N;
* server-added latency: the speaker's send (stamped just before the write) to the listener's
  receive (one machine clock, CLOCK_MONOTONIC), minus the loopback network time of the two hops
  (speaker to server, server to listener), taken as twice the 10th percentile of the one-way
  times of UDP probes the speaker process sends every 5 ms to each listener process during the
  same window: a loopback hop without queueing. The load processes' own queueing is not taken
  out (the probes' median includes where in a busy listener's batch the probe happens to be
  read, which overshoots: it made the median negative) and counts against the server; the
  probes' p50/p99 are reported to show how much of it there is. ``p50_ms``/``p99_ms`` are the
  worse of the two passthrough paths;
* the load processes' CPU (speaker and listeners), with a warning past 70 % of their core, when
  their queueing shows up as latency and lost packets and the figures say more about the load
  than about the server.

Run ``python -m bench.audio_relay [--quick]`` (``--quick``: one step per path, short windows,
under 60 s). Progress and warnings go to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import multiprocessing
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import audio_listeners, audio_speaker
from .audio_peers import (
    MEDIARELAY,
    STREAM_PACKETS,
    TUTORWIRE_RTC,
    TUTORWIRE_WS,
    Go,
    ListenerReport,
    Phase,
    SpeakerReport,
)
from .servers import CoreTimes, ServerProcess, core_times, free_port, pin_command, process_cpu_s

INGEST = "ingest"  # the session server with speakers only: what the N speaker streams cost it
FULL_DELIVERY = 0.99
LOAD_CPU_WARN = 70.0
TARGETS = {"webrtc_legs_per_core": 460, "ws_legs_per_core": 1500, "p99_ms": 20.0}  # issue 17, item 5
_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Options:
    ws_steps: tuple[int, ...]
    rtc_steps: tuple[int, ...]
    relay_steps: tuple[int, ...]
    seconds: float  # one window
    windows: int  # consecutive windows per step
    warmup: float
    repeats: int
    listener_procs: int
    ingest: bool
    server_cpu: int | None
    load_cpu: int | None
    log_dir: Path
    profile: Path | None  # py-spy the server during the first WebRTC step (its figures are then suspect)
    profile_ws: Path | None  # the same for the first WebSocket step
    profile_native: bool
    server_tree: Path  # where the session server's code is taken from
    record: bool  # the session server records sessions (off: the live path alone is measured)


@dataclass(slots=True)
class Window:
    path: str
    n: int
    repeat: int
    seconds: float
    server_cpu_s: float
    speaker_cpu_s: float
    listener_cpu_s: float
    server_core: CoreTimes
    load_core: CoreTimes
    delivered_min: float = math.nan  # the worst leg's share of its speaker's packets
    delivered_mean: float = math.nan
    latencies: list[float] = field(default_factory=list)  # send to receive, seconds, sorted
    net_s: float = math.nan  # the loopback network time of two hops (from the probes)
    probe_p50_ms: float = math.nan  # the probes' one-way time: loopback plus the listeners' queueing
    probe_p99_ms: float = math.nan
    pacer_lag_p99_ms: float = math.nan
    unknown: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def server_cpu(self) -> float:
        return self.server_cpu_s / self.seconds

    @property
    def legs_per_core(self) -> float:
        return self.n / self.server_cpu if self.server_cpu > 0 else math.inf

    @property
    def full(self) -> bool:
        return self.delivered_min >= FULL_DELIVERY

    def added_ms(self, q: float) -> float:
        """Server-added latency: the send-to-receive quantile less the loopback network time."""
        if not self.latencies:
            return math.nan
        return 1000 * (_quantile(self.latencies, q) - self.net_s)

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path, "n": self.n, "repeat": self.repeat, "seconds": round(self.seconds, 3),
            "server_cpu_percent": round(100 * self.server_cpu, 1),
            "legs_per_core": round(self.legs_per_core, 1),
            "delivered_min": round(self.delivered_min, 4), "delivered_mean": round(self.delivered_mean, 4),
            "p50_ms": round(self.added_ms(0.50), 3), "p99_ms": round(self.added_ms(0.99), 3),
            "max_ms": round(self.added_ms(1.0), 3), "loopback_net_ms": round(1000 * self.net_s, 3),
            "probe_p50_ms": round(self.probe_p50_ms, 3), "probe_p99_ms": round(self.probe_p99_ms, 3),
            "speaker_cpu_percent": round(100 * self.speaker_cpu_s / self.seconds, 1),
            "listener_cpu_percent": round(100 * self.listener_cpu_s / self.seconds, 1),
            "load_cpu_percent": round(100 * (self.speaker_cpu_s + self.listener_cpu_s) / self.seconds, 1),
            "server_core_busy_percent": round(100 * self.server_core.busy_s / self.seconds, 1),
            "server_core_softirq_percent": round(100 * self.server_core.softirq_s / self.seconds, 1),
            "load_core_busy_percent": round(100 * self.load_core.busy_s / self.seconds, 1),
            "load_core_softirq_percent": round(100 * self.load_core.softirq_s / self.seconds, 1),
            "pacer_lag_p99_ms": round(self.pacer_lag_p99_ms, 3),
            "unknown_payloads": self.unknown, "errors": self.errors[:5],
        }


class LoadProcesses:
    """The speaker process and the listener processes, and the pipes that drive them."""

    def __init__(self, listeners: int, cpu: int | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        parent, child = ctx.Pipe()
        self.speaker = parent
        self._start(ctx, audio_speaker.main, child, cpu)
        self.listeners: list[Connection] = []
        for _ in range(listeners):
            parent, child = ctx.Pipe()
            self.listeners.append(parent)
            self._start(ctx, audio_listeners.main, child, cpu)
        self.speaker_pid = expect(self.speaker, "ready", 60)
        ready = [expect(conn, "ready", 60) for conn in self.listeners]
        self.listener_pids = [pid for pid, _ in ready]
        self.probe_ports = tuple(port for _, port in ready)

    def _start(self, ctx: Any, target: Any, child: Connection, cpu: int | None) -> None:
        proc = ctx.Process(target=target, args=(child, cpu), daemon=True)
        proc.start()
        self.procs.append(proc)

    def speaker_cpu_s(self) -> float:
        return process_cpu_s(self.speaker_pid)

    def listener_cpu_s(self) -> float:
        return sum(process_cpu_s(pid) for pid in self.listener_pids)

    def close(self) -> None:
        for conn in (self.speaker, *self.listeners):
            conn.send(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


def expect(conn: Connection, tag: str, timeout_s: float) -> Any:
    if not conn.poll(timeout_s):
        raise RuntimeError(f"a load process sent no {tag!r} within {timeout_s:g} s")
    got, value = conn.recv()
    if got != tag:
        raise RuntimeError(f"a load process: expected {tag!r}, got {got!r}: {value}")
    return value


def start_server(path: str, opts: Options, secret: str) -> ServerProcess:
    port = free_port()
    if path == MEDIARELAY:
        argv = [sys.executable, "-m", "bench.audio_baseline", "--port", str(port)]
        return ServerProcess("MediaRelay baseline", argv, port, opts.log_dir / f"mediarelay-{port}.log",
                             None, opts.server_cpu)
    # as bench.servers.tutorwire_server, with the server's pings and matcher worker off
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env.update(TUTORWIRE_SECRET=secret, TUTORWIRE_LOG_LEVEL="warning", TUTORWIRE_PING_INTERVAL_S="0",
               TUTORWIRE_MATCHER_WORKER="false", TUTORWIRE_RECORD="true" if opts.record else "false",
               TUTORWIRE_RECORDINGS_DIR=str(opts.log_dir / "recordings"))
    # the server's code comes from ``server_tree`` (the working tree by default), ahead of the
    # virtual environment's install, which may not list a package added since it was made
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(opts.server_tree), env.get("PYTHONPATH", "")) if p)
    argv = [str(Path(sys.executable).with_name("tutorwire")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess("tutorwire", argv, port, opts.log_dir / f"tutorwire-{port}.log", env, opts.server_cpu)


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(left)


def _core(cpu: int | None) -> CoreTimes:
    return core_times(cpu) if cpu is not None else CoreTimes(math.nan, math.nan)


def measure(path: str, n: int, repeat: int, opts: Options, load: LoadProcesses, secret: str,
            profile: Path | None = None) -> list[Window]:
    """Start ``path``'s server, connect N legs, warm up, measure ``opts.windows`` windows, stop it."""
    server = start_server(path, opts, secret)
    spy: subprocess.Popen[bytes] | None = None
    try:
        server.wait_ready()
        rooms = tuple(range(n))
        prefix = f"{path}-{n}-r{repeat}"
        load.speaker.send(Phase(path, server.port, rooms, prefix, secret, load.probe_ports))
        expect(load.speaker, "connected", 120)
        listening = [] if path == INGEST else load.listeners
        for i, conn in enumerate(listening):
            conn.send(Phase(path, server.port, rooms[i :: len(listening)], prefix, secret))
        for conn in listening:
            expect(conn, "connected", 180)
        start = time.monotonic() + 0.3
        t0 = start + opts.warmup
        bounds = [t0 + i * opts.seconds for i in range(opts.windows + 1)]
        go = Go(start, t0, bounds[-1], bounds[-1] + 0.1)
        for conn in (load.speaker, *listening):
            conn.send(go)
        if profile is not None:
            spy = _py_spy(server.pid, profile, bounds[-1] - t0, opts.load_cpu, opts.profile_native)
        samples: list[tuple[float, float, float, float, CoreTimes, CoreTimes]] = []
        for t in bounds:
            _sleep_until(t)
            samples.append((time.monotonic(), server.cpu_s(), load.speaker_cpu_s(),
                            sum(process_cpu_s(pid) for pid in load.listener_pids) if listening else 0.0,
                            _core(opts.server_cpu), _core(opts.load_cpu)))
        speaker: SpeakerReport = _report(load.speaker)
        listeners: list[ListenerReport] = [_report(conn) for conn in listening]
        for conn in (load.speaker, *listening):
            expect(conn, "closed", 60)
    except RuntimeError:
        print(f"{server.name} log:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        if spy is not None:
            spy.wait(60)
        server.stop()
    windows = []
    for a, b in itertools.pairwise(samples):
        window = Window(path, n, repeat, b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3],
                        CoreTimes(b[4].busy_s - a[4].busy_s, b[4].softirq_s - a[4].softirq_s),
                        CoreTimes(b[5].busy_s - a[5].busy_s, b[5].softirq_s - a[5].softirq_s))
        window.errors = speaker.errors + [e for r in listeners for e in r.errors]
        window.pacer_lag_p99_ms = speaker.pacer_lag_p99_ms
        if listening:
            analyse(window, a[0], b[0], (samples[0][0], samples[-1][0]), speaker, listeners)
        windows.append(window)
    return windows


def _report(conn: Connection) -> Any:
    if not conn.poll(120):
        raise RuntimeError("a load process sent no report within 120 s")
    tag, value = conn.recv()
    if tag != "report":
        raise RuntimeError(f"a load process failed: {value}")
    return value


def _py_spy(pid: int, out: Path, seconds: float, cpu: int | None, native: bool) -> subprocess.Popen[bytes]:
    """py-spy on the server, on the load core. Python frames only, without pausing the server; or
    with native frames, which needs it paused at every sample (so a low rate; delivery suffers)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--format", "raw",
            "--output", str(out), *(("--native", "--rate", "50") if native else ("--nonblocking", "--rate", "250"))]
    return subprocess.Popen(pin_command(argv, cpu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def analyse(window: Window, t0: float, t1: float, span: tuple[float, float], speaker: SpeakerReport,
            listeners: list[ListenerReport]) -> None:
    """Delivery and latency of the window's packets: those the speaker sent within [t0, t1)."""
    shares: list[float] = []
    latencies: list[float] = []
    for report in listeners:
        window.unknown += report.unknown
        for room, received in report.received.items():
            if window.path == MEDIARELAY:  # counted over the whole span: see the docstring
                sends = speaker.sends[0]
                sent = sum(1 for s in sends if span[0] <= s < span[1])
                got = sum(1 for _, r in received if span[0] <= r < span[1])
                shares.append(min(1.0, got / sent) if sent else math.nan)
                continue
            sends = speaker.sends[room]
            first = bisect.bisect_left(sends, t0)
            end = bisect.bisect_left(sends, t1)
            seen: set[int] = set()
            for key, r in received:
                if window.path == TUTORWIRE_RTC:  # key: the packet's place in the looped stream
                    last = bisect.bisect_right(sends, r) - 1
                    k = last - (last - key) % STREAM_PACKETS
                else:  # key: the speaker's seq
                    k = key
                if first <= k < end and k not in seen:
                    seen.add(k)
                    latencies.append(r - sends[k])
            shares.append(len(seen) / (end - first) if end > first else math.nan)
    window.delivered_min = min(shares) if shares else math.nan
    window.delivered_mean = statistics.fmean(shares) if shares else math.nan
    window.latencies = sorted(latencies)
    probes = sorted(d for report in listeners for r, d in report.probes if t0 <= r < t1)
    if probes:
        window.net_s = 2 * _quantile(probes, 0.10)
        window.probe_p50_ms, window.probe_p99_ms = 1000 * _quantile(probes, 0.50), 1000 * _quantile(probes, 0.99)
    else:
        window.net_s = 0.0


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the report ---------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True, slots=True)
class Step:
    path: str
    n: int
    windows: list[Window]

    @property
    def full(self) -> bool:
        return all(w.full for w in self.windows)

    def median(self, attr: str) -> float:
        return _median([float(getattr(w, attr)) for w in self.windows])

    def added_ms(self, q: float) -> float:
        return _median([w.added_ms(q) for w in self.windows])

    def load_cpu_percent(self) -> float:
        return max(100 * (w.speaker_cpu_s + w.listener_cpu_s) / w.seconds for w in self.windows)

    def listener_cpu_percent(self) -> float:
        return max(100 * w.listener_cpu_s / w.seconds for w in self.windows)


def chosen(steps: list[Step], path: str) -> Step | None:
    """The largest N of ``path`` at full delivery (else its smallest, flagged by ``full``)."""
    mine = [s for s in steps if s.path == path]
    full = [s for s in mine if s.full]
    if full:
        return max(full, key=lambda s: s.n)
    return min(mine, key=lambda s: s.n) if mine else None


def report(opts: Options, steps: list[Step]) -> dict[str, Any]:
    ws, rtc, relay = (chosen(steps, p) for p in (TUTORWIRE_WS, TUTORWIRE_RTC, MEDIARELAY))
    ingest = {s.n: s for s in steps if s.path == INGEST}
    result: dict[str, Any] = {}

    def per_core(step: Step | None) -> float:
        return round(step.median("legs_per_core"), 1) if step is not None else math.nan

    result["webrtc_legs_per_core"] = per_core(rtc)
    result["ws_legs_per_core"] = per_core(ws)
    result["mediarelay_legs_per_core"] = per_core(relay)
    result["ratio_to_mediarelay"] = round(result["webrtc_legs_per_core"] / result["mediarelay_legs_per_core"], 2)
    result["ws_ratio_to_mediarelay"] = round(result["ws_legs_per_core"] / result["mediarelay_legs_per_core"], 2)
    ours = [s for s in (rtc, ws) if s is not None]
    result["p50_ms"] = round(max(s.added_ms(0.50) for s in ours), 3) if ours else math.nan
    result["p99_ms"] = round(max(s.added_ms(0.99) for s in ours), 3) if ours else math.nan
    for name, step in (("webrtc", rtc), ("ws", ws), ("mediarelay", relay)):
        if step is None:
            continue
        result[f"{name}_n"] = step.n
        result[f"{name}_full_delivery"] = step.full
        result[f"{name}_delivered_min"] = round(min(w.delivered_min for w in step.windows), 4)
        result[f"{name}_server_cpu_percent"] = round(100 * step.median("server_cpu"), 1)
        result[f"{name}_server_core_softirq_percent"] = round(
            _median([100 * w.server_core.softirq_s / w.seconds for w in step.windows]), 1)
        result[f"{name}_listener_cpu_percent"] = round(step.listener_cpu_percent(), 1)
        result[f"{name}_load_cpu_percent"] = round(step.load_cpu_percent(), 1)
        if name != "mediarelay":
            result[f"{name}_p50_ms"] = round(step.added_ms(0.50), 3)
            result[f"{name}_p99_ms"] = round(step.added_ms(0.99), 3)
            result[f"{name}_loopback_net_ms"] = round(1000 * step.median("net_s"), 3)
            result[f"{name}_probe_p50_ms"] = round(step.median("probe_p50_ms"), 3)
            result[f"{name}_probe_p99_ms"] = round(step.median("probe_p99_ms"), 3)
        source = ingest.get(step.n)
        if name != "mediarelay" and source is not None:
            cpu = step.median("server_cpu") - source.median("server_cpu")
            result[f"ingest_cpu_percent_at_{step.n}"] = round(100 * source.median("server_cpu"), 1)
            result[f"{name}_legs_per_core_send_only"] = round(step.n / cpu, 1) if cpu > 0 else math.nan
    send_only = result.get("webrtc_legs_per_core_send_only", math.nan)
    result["ratio_to_mediarelay_send_only"] = round(send_only / result["mediarelay_legs_per_core"], 2)
    result["targets_met"] = {
        f"webrtc_legs_per_core>={TARGETS['webrtc_legs_per_core']:g}":
            result["webrtc_legs_per_core"] >= TARGETS["webrtc_legs_per_core"],
        f"ws_legs_per_core>={TARGETS['ws_legs_per_core']:g}": result["ws_legs_per_core"] >= TARGETS["ws_legs_per_core"],
        f"p99_ms<={TARGETS['p99_ms']:g}": result["p99_ms"] <= TARGETS["p99_ms"],
    }
    result["window_s"], result["windows"], result["warmup_s"] = opts.seconds, opts.windows, opts.warmup
    result["repeats"], result["listener_procs"] = opts.repeats, opts.listener_procs
    result["steps"] = [
        {"path": s.path, "n": s.n, "full_delivery": s.full if s.path != INGEST else None,
         "legs_per_core": round(s.median("legs_per_core"), 1),
         "server_cpu_percent": round(100 * s.median("server_cpu"), 1),
         "p50_ms": round(s.added_ms(0.50), 3), "p99_ms": round(s.added_ms(0.99), 3),
         "delivered_min": round(min(w.delivered_min for w in s.windows), 4),
         "load_cpu_percent": round(s.load_cpu_percent(), 1)}
        for s in steps
    ]
    return result


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null, so that the line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def warn_about(window: Window) -> None:
    s = window.summary()
    name = f"{window.path} N={window.n} repeat {window.repeat}"
    if s["load_cpu_percent"] > LOAD_CPU_WARN:
        _warn(f"{name}: the speaker and listeners used {s['load_cpu_percent']}% of their core: the load is the "
              "bottleneck; its queueing shows up as latency and loss")
    if window.path != INGEST and not window.full:
        _warn(f"{name}: not full delivery: the worst leg got {100 * window.delivered_min:.1f}% of its packets")
    # softirq is mostly the loopback network work of whoever sends on that core, not counted to a
    # process; what is left besides the processes measured is someone else's
    other = s["server_core_busy_percent"] - s["server_core_softirq_percent"] - s["server_cpu_percent"]
    if other > 10:
        _warn(f"{name}: other processes used about {other:.0f}% of the server's core (the figures are noisy)")
    other = s["load_core_busy_percent"] - s["load_core_softirq_percent"] - s["load_cpu_percent"]
    if other > 10:
        _warn(f"{name}: other processes used about {other:.0f}% of the load core (the figures are noisy)")
    if s["errors"]:
        _warn(f"{name}: errors: {s['errors']}")
    if s["unknown_payloads"]:
        _warn(f"{name}: {s['unknown_payloads']} packets whose payload is not in the stream")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _steps(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.audio_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one step per path, short windows: under 60 s")
    parser.add_argument("--ws", type=_steps, help="WebSocket legs per step (default 150,250,350; quick 200)")
    parser.add_argument("--webrtc", type=_steps, help="WebRTC legs per step (default 100,150,200; quick 100)")
    parser.add_argument("--mediarelay", type=_steps, help="MediaRelay legs per step (default 4,8,12; quick 8)")
    parser.add_argument("--seconds", type=float, help="one measured window (default 4, quick 2.5)")
    parser.add_argument("--windows", type=int, help="windows per step (default 3, quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds of audio before the first window (default 2)")
    parser.add_argument("--repeats", type=int, help="fresh servers per step, alternating the order (default 1)")
    parser.add_argument("--listener-procs", type=int, default=2, help="listener processes (default 2)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the speakers-only steps (*_send_only)")
    parser.add_argument("--profile", type=Path,
                        help="py-spy the server through the first WebRTC step into this file (raw stacks)")
    parser.add_argument("--profile-ws", type=Path,
                        help="py-spy the server through the first WebSocket step into this file (raw stacks)")
    parser.add_argument("--profile-native", action="store_true",
                        help="with --profile: native frames too (pauses the server at every sample, 50 Hz)")
    parser.add_argument("--log-dir", type=Path, help="where the servers' logs go (default: a temporary directory)")
    parser.add_argument("--server-tree", type=Path, default=_REPO,
                        help="run the session server from this source tree (default: this working tree), "
                             "e.g. a `git archive HEAD` extracted elsewhere")
    parser.add_argument("--record", action="store_true",
                        help="let the session server record sessions (default: off, the live path alone)")
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if server_cpu is None:
        _warn("one CPU only: the server and the load share it; the figures are not comparable")
    quick = args.quick
    return Options(
        ws_steps=args.ws or ((200,) if quick else (150, 250, 350)),
        rtc_steps=args.webrtc or ((100,) if quick else (100, 150, 200)),
        relay_steps=args.mediarelay or ((8,) if quick else (4, 8, 12)),
        seconds=args.seconds or (2.5 if quick else 4.0),
        windows=args.windows or (2 if quick else 3),
        warmup=args.warmup if args.warmup is not None else 2.0,
        repeats=args.repeats or 1,
        listener_procs=args.listener_procs,
        ingest=not args.no_ingest,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        log_dir=args.log_dir or Path(tempfile.mkdtemp(prefix="audio-relay-")),
        profile=args.profile,
        profile_ws=args.profile_ws,
        profile_native=args.profile_native,
        server_tree=args.server_tree.resolve(),
        record=args.record,
    )


def plan(opts: Options) -> list[tuple[str, int]]:
    """The steps of one repeat: each path's Ns in turn, the baseline between ours."""
    order: list[tuple[str, int]] = [(TUTORWIRE_RTC, n) for n in opts.rtc_steps]
    order += [(MEDIARELAY, n) for n in opts.relay_steps]
    order += [(TUTORWIRE_WS, n) for n in opts.ws_steps]
    if opts.ingest:
        largest = {max(opts.rtc_steps, default=0), max(opts.ws_steps, default=0)} - {0}
        order += [(INGEST, n) for n in sorted(largest)]
    return order


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    if opts.load_cpu is not None:
        os.sched_setaffinity(0, {opts.load_cpu})  # the load processes inherit it
    opts.log_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    began = time.monotonic()
    load = LoadProcesses(opts.listener_procs, opts.load_cpu)
    found: dict[tuple[str, int], list[Window]] = {}
    profiled: set[str] = set()
    profiles = {TUTORWIRE_RTC: opts.profile, TUTORWIRE_WS: opts.profile_ws}
    try:
        for repeat in range(opts.repeats):
            order = plan(opts)
            for path, n in order if repeat % 2 == 0 else reversed(order):
                profile = profiles.get(path) if path not in profiled else None
                if profile is not None:
                    profiled.add(path)
                windows = measure(path, n, repeat, opts, load, secret, profile)
                found.setdefault((path, n), []).extend(windows)
                for w in windows:
                    s = w.summary()
                    print(f"[{time.monotonic() - began:5.1f} s] {path:10} N={n:<4} r{repeat}: "
                          f"server CPU {s['server_cpu_percent']:5.1f}% -> {s['legs_per_core']:7.1f} legs/core, "
                          f"delivered min {100 * w.delivered_min:5.1f}%, p50 {s['p50_ms']:.2f} ms, "
                          f"p99 {s['p99_ms']:.2f} ms, speaker {s['speaker_cpu_percent']}%, "
                          f"listeners {s['listener_cpu_percent']}%", file=sys.stderr, flush=True)
                    warn_about(w)
    finally:
        load.close()
    steps = [Step(path, n, windows) for (path, n), windows in found.items()]
    result = report(opts, steps)
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(_finite(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
