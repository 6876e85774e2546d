"""Benchmark of the session server's ink relay against three plain relays.

N one-on-one sessions (default 200): each tutor streams 120 Hz pen points to its student in
batches of at most 16 ms (one ``StrokePoints`` every 16 ms, one or two points each; a new
stroke every 100-200 points). The load comes from generator processes (``bench.generator``)
pinned to one core, the server under test to the other (``taskset``). Per repeat, the session
server and each relay peer get a fresh process, the same rooms and the same load; after a
warm-up the window is measured. Figures are medians over the repeats. The peers each forward
every message unparsed to the other side of its room:

* the baseline, a plain Python ``websockets`` relay on uvloop (``bench.baseline_relay``);
* a Node.js ``ws`` relay (``bench/node_relay``, installed from npm by ``ensure_node_relay`` at
  the first run; left out with a warning where Node.js is missing);
* a plain ``picows`` relay on uvloop (``bench.picows_relay``): the transport's own cost.

The session server does much more per batch: it decodes and validates the point blob,
sequences, logs and acknowledges every batch (recording is off here; ``bench/archive.py``
measures what it adds).

* a delivery is one ink batch arriving at its student (as an ``Event`` from the session server,
  as the forwarded frame from the relay);
* server CPU is the server process's user + system time over the window (/proc/<pid>/stat);
* latency is one-way, from just before the tutor's write to the student's read, both in the
  generator process (one clock), so it includes the generator's own queueing: its CPU is reported
  and a warning printed when it passes 70 %;
* bytes per point is the tutor's ink frames on the wire (WebSocket header with the mask key,
  payload) over the points they carry; ``bytes_per_point_16ms`` and ``bytes_per_point_100ms``
  are the same for the benchmark's strokes cut into 16 ms and into 100 ms batches;
* ``--sweep`` measures the session server alone at growing numbers of sessions and reports the
  largest one whose p99 stays under 20 ms with every batch delivered (and the generators' CPU
  at each step: past about 70 % their queueing, not the server, sets the latency); when even
  the first step does not hold, it halves the sessions (100, 50, 25) until one does.

Run ``python -m bench.ink_relay [--quick]``. Progress and warnings go to stderr; the last line of
stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import generator
from .generator import BASELINE, NODE_WS, PICOWS, TUTORWIRE, Go, Phase, Tally
from .inkscript import BATCH_MS, PEN_HZ, wire_bytes_per_point
from .profile import Sampler, format_top, top_lines
from .servers import (
    CoreTimes,
    ServerProcess,
    baseline_server,
    core_times,
    ensure_node_relay,
    free_port,
    node_server,
    picows_server,
    process_cpu_s,
    tutorwire_server,
)

GENERATOR_CPU_WARN = 70.0
TARGETS = {"ratio_to_baseline": 2.0, "ratio_to_node_ws": 1.0, "p99_ms": 5.0, "bytes_per_point": 4.0}
SWEEP_P99_MS = 20.0
SWEEP_MIN_SESSIONS = 25  # below this a sweep that holds nowhere stops looking
SWEEP_SESSIONS = (200, 400, 600, 800, 1000, 1200, 1500)


@dataclass(frozen=True, slots=True)
class Options:
    sessions: int
    seconds: float  # measured window
    warmup: float
    repeats: int
    generators: int
    server_cpu: int | None
    load_cpu: int | None
    log_dir: Path
    profile: bool = False  # py-spy the servers over each window (the figures of such a run are not reported)
    peers: tuple[str, ...] = (BASELINE, NODE_WS, PICOWS)
    node: str | None = None  # the node executable, once the Node.js relay is installed
    sweep: bool = False


@dataclass(slots=True)
class Window:
    """One measured window of one server."""

    kind: str
    repeat: int
    seconds: float
    server_cpu_s: float
    generator_cpu_s: float
    server_core: CoreTimes  # everything that ran on the server's core, the server included
    load_core: CoreTimes  # the same for the generators' core
    tallies: list[Tally] = field(default_factory=list)
    sessions: int = 0
    latencies: list[float] = field(default_factory=list)  # sorted, seconds

    def total(self, name: str) -> int:
        return sum(int(getattr(t, name)) for t in self.tallies)

    @property
    def deliveries(self) -> int:
        return self.total("deliveries")

    @property
    def deliveries_per_cpu_s(self) -> float:
        return self.deliveries / self.server_cpu_s if self.server_cpu_s else math.inf

    def latency_ms(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        return 1000 * self.latencies[max(0, math.ceil(q * len(self.latencies)) - 1)]

    def summary(self) -> dict[str, Any]:
        lag = sorted(x for t in self.tallies for x in t.tick_lag)
        return {
            "server": self.kind, "repeat": self.repeat, "sessions": self.sessions, "seconds": round(self.seconds, 3),
            "deliveries": self.deliveries, "deliveries_per_s": round(self.deliveries / self.seconds, 1),
            "deliveries_per_cpu_s": round(self.deliveries_per_cpu_s, 1),
            "p50_ms": round(self.latency_ms(0.50), 3), "p99_ms": round(self.latency_ms(0.99), 3),
            "max_ms": round(self.latency_ms(1.0), 3),
            "server_cpu_percent": round(100 * self.server_cpu_s / self.seconds, 1),
            "generator_cpu_percent": round(100 * self.generator_cpu_s / self.seconds, 1),
            "server_core_busy_percent": round(100 * self.server_core.busy_s / self.seconds, 1),
            "server_core_softirq_percent": round(100 * self.server_core.softirq_s / self.seconds, 1),
            "load_core_busy_percent": round(100 * self.load_core.busy_s / self.seconds, 1),
            "load_core_softirq_percent": round(100 * self.load_core.softirq_s / self.seconds, 1),
            "ink_batches_sent": self.total("ink_sent"), "stroke_deliveries": self.total("stroke_deliveries"),
            "frames_sent": self.total("frames_sent"), "undelivered": self.total("undelivered"),
            "unmatched": self.total("unmatched"),
            "pacer_lag_p99_ms": round(1000 * lag[max(0, math.ceil(0.99 * len(lag)) - 1)], 3) if lag else None,
            "errors": [e for t in self.tallies for e in t.errors][:5],
            "server_closes": [c for t in self.tallies for c in t.server_closes][:5],
        }


class Generators:
    """The load generator processes and the pipes that drive them."""

    def __init__(self, count: int, cpu: int | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=generator.main, args=(child, cpu), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            self.expect(conn, "ready", 60)

    @staticmethod
    def expect(conn: Connection, tag: str, timeout_s: float) -> Any:
        if not conn.poll(timeout_s):
            raise RuntimeError(f"load generator sent no {tag!r} within {timeout_s:g} s")
        got, value = conn.recv()
        if got != tag:
            raise RuntimeError(f"load generator: expected {tag!r}, got {got!r}: {value}")
        return value

    def cpu_s(self) -> float:
        return sum(process_cpu_s(p.pid) for p in self.procs)

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(left)


def _start(kind: str, opts: Options, secret: str) -> ServerProcess:
    port = free_port()
    if kind == TUTORWIRE:
        return tutorwire_server(port, secret, opts.log_dir, opts.server_cpu)
    if kind == NODE_WS:
        assert opts.node is not None
        return node_server(port, opts.log_dir, opts.server_cpu, opts.node)
    if kind == PICOWS:
        return picows_server(port, opts.log_dir, opts.server_cpu)
    return baseline_server(port, opts.log_dir, opts.server_cpu)


def measure(kind: str, repeat: int, opts: Options, gens: Generators, secret: str,
            sessions: int | None = None) -> Window:
    """Start ``kind``'s server, connect the rooms, warm up, measure one window, stop it."""
    server = _start(kind, opts, secret)
    sessions = sessions or opts.sessions
    try:
        server.wait_ready()
        count = len(gens.conns)
        for g, conn in enumerate(gens.conns):
            rooms = tuple(range(g, sessions, count))
            conn.send(Phase(kind, server.port, rooms, f"r{repeat}", secret))
        for conn in gens.conns:
            gens.expect(conn, "connected", 120)
        start = time.monotonic() + 0.05
        t0 = start + opts.warmup
        t1 = t0 + opts.seconds
        for conn in gens.conns:
            conn.send(Go(start, t0, t1))
        _sleep_until(t0)
        cpu0, gen0 = server.cpu_s(), gens.cpu_s()
        sc0, lc0 = _core(opts.server_cpu), _core(opts.load_cpu)
        sampler = (Sampler(server.pid, opts.seconds, opts.log_dir / f"profile-{kind}-{repeat}.txt")
                   if opts.profile and kind != NODE_WS else None)
        _sleep_until(t1)
        cpu1, gen1 = server.cpu_s(), gens.cpu_s()
        sc1, lc1 = _core(opts.server_cpu), _core(opts.load_cpu)
        server_core = CoreTimes(sc1.busy_s - sc0.busy_s, sc1.softirq_s - sc0.softirq_s)
        load_core = CoreTimes(lc1.busy_s - lc0.busy_s, lc1.softirq_s - lc0.softirq_s)
        tallies: list[Tally] = [gens.expect(conn, "tally", 60) for conn in gens.conns]
        for conn in gens.conns:
            gens.expect(conn, "closed", 30)
        if sampler is not None:
            print(f"profile of {kind}, repeat {repeat}:\n{format_top(top_lines(sampler.wait()))}",
                  file=sys.stderr, flush=True)
    except RuntimeError:
        print(f"{server.name} log:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
    window = Window(kind, repeat, t1 - t0, cpu1 - cpu0, gen1 - gen0, server_core, load_core, tallies, sessions)
    window.latencies = sorted(x for t in tallies for x in t.latencies)
    for t in tallies:  # the raw samples are merged; do not keep two copies
        t.latencies = array("d")
    return window


def _core(cpu: int | None) -> CoreTimes:
    return core_times(cpu) if cpu is not None else CoreTimes(math.nan, math.nan)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _peer(windows: list[Window], kind: str) -> tuple[float, float]:
    """A server's median deliveries per CPU-second and median p99 (ms) over its windows."""
    mine = [w for w in windows if w.kind == kind]
    return _median([w.deliveries_per_cpu_s for w in mine]), _median([w.latency_ms(0.99) for w in mine])


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b and not math.isnan(a) and not math.isnan(b) else None


def report(opts: Options, windows: list[Window], sweep: list[Window] | None = None) -> dict[str, Any]:
    ours = [w for w in windows if w.kind == TUTORWIRE]
    base = [w for w in windows if w.kind == BASELINE]
    rate = _median([w.deliveries_per_cpu_s for w in ours])
    base_rate = _median([w.deliveries_per_cpu_s for w in base])
    node_rate, node_p99 = _peer(windows, NODE_WS)
    picows_rate, picows_p99 = _peer(windows, PICOWS)
    points = sum(w.total("points_sent") for w in ours)
    result: dict[str, Any] = {
        "sessions": opts.sessions,
        "deliveries_per_cpu_s": round(rate, 1),
        "baseline_deliveries_per_cpu_s": round(base_rate, 1),
        "node_ws_deliveries_per_cpu_s": None if math.isnan(node_rate) else round(node_rate, 1),
        "picows_deliveries_per_cpu_s": None if math.isnan(picows_rate) else round(picows_rate, 1),
        "ratio_to_baseline": _ratio(rate, base_rate),
        "ratio_to_node_ws": _ratio(rate, node_rate),
        "ratio_to_picows": _ratio(rate, picows_rate),
        "p50_ms": round(_median([w.latency_ms(0.50) for w in ours]), 3),
        "p99_ms": round(_median([w.latency_ms(0.99) for w in ours]), 3),
        "bytes_per_point": round(sum(w.total("ink_wire_bytes") for w in ours) / points, 3),
        "payload_bytes_per_point": round(sum(w.total("ink_payload_bytes") for w in ours) / points, 3),
        "bytes_per_point_16ms": round(wire_bytes_per_point(16), 3),
        "bytes_per_point_100ms": round(wire_bytes_per_point(100), 3),
        "blob_bytes_per_point": round(wire_bytes_per_point(16, blob_only=True), 3),
        "baseline_p50_ms": round(_median([w.latency_ms(0.50) for w in base]), 3),
        "baseline_p99_ms": round(_median([w.latency_ms(0.99) for w in base]), 3),
        "node_ws_p99_ms": None if math.isnan(node_p99) else round(node_p99, 3),
        "picows_p99_ms": None if math.isnan(picows_p99) else round(picows_p99, 3),
        "generator_cpu_percent": round(max(100 * w.generator_cpu_s / w.seconds for w in windows), 1),
        "server_cpu_percent": round(_median([100 * w.server_cpu_s / w.seconds for w in ours]), 1),
        "baseline_server_cpu_percent": round(_median([100 * w.server_cpu_s / w.seconds for w in base]), 1),
        "deliveries_per_s": round(_median([w.deliveries / w.seconds for w in ours]), 1),
        "offered_batches_per_s": opts.sessions * 1000 / BATCH_MS,
        "points_per_batch": round(points / max(1, sum(w.total("ink_sent") for w in ours)), 3),
        "pen_hz": PEN_HZ, "batch_ms": BATCH_MS,
        "window_s": opts.seconds, "warmup_s": opts.warmup, "repeats": opts.repeats,
        "generators": opts.generators, "peers": list(opts.peers),
    }
    if sweep is not None:
        held = [w.sessions for w in sweep if _holds(w)]
        result["max_sessions_p99_under_20ms"] = max(held) if held else 0
        result["sweep"] = [{"sessions": w.sessions, "p99_ms": round(w.latency_ms(0.99), 3),
                            "delivered_percent": round(w.deliveries * BATCH_MS / w.seconds / w.sessions / 10, 1),
                            "server_cpu_percent": round(100 * w.server_cpu_s / w.seconds, 1),
                            "generator_cpu_percent": round(100 * w.generator_cpu_s / w.seconds, 1)} for w in sweep]
    met = result["targets_met"] = {
        "ratio_to_baseline>=2": (result["ratio_to_baseline"] or 0) >= TARGETS["ratio_to_baseline"],
        "p99_ms<=5": result["p99_ms"] <= TARGETS["p99_ms"],
        "bytes_per_point<=4": result["bytes_per_point"] <= TARGETS["bytes_per_point"],
    }
    if result["ratio_to_node_ws"] is not None:
        met["ratio_to_node_ws>=1"] = result["ratio_to_node_ws"] >= TARGETS["ratio_to_node_ws"]
    result["windows"] = [w.summary() for w in windows + (sweep or [])]
    return result


def _holds(window: Window) -> bool:
    """Whether the server held ``window``'s load: p99 under 20 ms and every batch delivered."""
    offered = window.sessions * 1000 / BATCH_MS
    return window.latency_ms(0.99) < SWEEP_P99_MS and window.deliveries / window.seconds >= 0.97 * offered


def warn_about(opts: Options, window: Window) -> None:
    s = window.summary()
    name = f"{window.kind} repeat {window.repeat} ({window.sessions} sessions)"
    offered = window.sessions * 1000 / BATCH_MS
    if s["generator_cpu_percent"] > GENERATOR_CPU_WARN:
        _warn(f"{name}: the load generator used {s['generator_cpu_percent']}% of its core; "
              "its queueing shows up as latency and the figures are suspect")
    if s["deliveries_per_s"] < 0.97 * offered:
        _warn(f"{name}: {s['deliveries_per_s']} deliveries/s of {offered:g} offered: the server did not keep up")
    # the kernel's TCP work done in a process's context counts to it, so "other" is what is left
    other = s["server_core_busy_percent"] - s["server_cpu_percent"]
    if other > 10:
        _warn(f"{name}: other processes used about {other:.0f}% of the server's core (the figures are noisy)")
    other = s["load_core_busy_percent"] - s["generator_cpu_percent"]
    if other > 10:
        _warn(f"{name}: other processes used about {other:.0f}% of the generators' core (the figures are noisy)")
    for key in ("errors", "server_closes"):
        if s[key]:
            _warn(f"{name}: {key}: {s[key]}")
    if s["undelivered"] or s["unmatched"]:
        _warn(f"{name}: {s['undelivered']} ink batches undelivered, {s['unmatched']} unmatched")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.ink_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200, help="one-on-one sessions (default 200)")
    parser.add_argument("--quick", action="store_true", help="short windows: under 60 s in all")
    parser.add_argument("--seconds", type=float, help="measured window per repeat (default 10, quick 4)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each window (default 5, quick 2)")
    parser.add_argument("--repeats", type=int, help="windows per server; medians are reported (default 5, quick 3)")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes (default 1)")
    parser.add_argument("--profile", action="store_true", help="py-spy each server over its windows (stderr)")
    parser.add_argument("--peers", default="baseline,node_ws,picows",
                        help="relay peers measured beside the session server (default baseline,node_ws,picows)")
    parser.add_argument("--sweep", action="store_true",
                        help="then the session server alone at 200, 400, ... sessions: the most held at p99 < 20 ms")
    parser.add_argument("--log-dir", type=Path, help="where the servers' logs go (default: a temporary directory)")
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if server_cpu is None:
        _warn("one CPU only: the server and the load share it; the figures are not comparable")
    return Options(
        sessions=args.sessions,
        seconds=args.seconds or (4.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0),
        repeats=args.repeats or (3 if args.quick else 5),
        generators=args.generators,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        log_dir=args.log_dir or Path(tempfile.mkdtemp(prefix="ink-relay-")),
        profile=args.profile,
        peers=tuple(p for p in args.peers.split(",") if p),
        sweep=args.sweep,
    )


def _log_window(began: float, window: Window) -> None:
    s = window.summary()
    print(f"[{time.monotonic() - began:5.1f} s] {window.kind:9} repeat {window.repeat} ({window.sessions} sessions): "
          f"{s['deliveries_per_cpu_s']:8.0f} deliveries/CPU-s, {s['deliveries_per_s']:7.0f}/s, "
          f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, server CPU {s['server_cpu_percent']}%, "
          f"generator CPU {s['generator_cpu_percent']}%", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    if NODE_WS in opts.peers:
        node = ensure_node_relay()
        peers = opts.peers if node is not None else tuple(p for p in opts.peers if p != NODE_WS)
        opts = dataclasses.replace(opts, node=node, peers=peers)
    if opts.load_cpu is not None:
        os.sched_setaffinity(0, {opts.load_cpu})  # the generators inherit it
    opts.log_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    began = time.monotonic()
    gens = Generators(opts.generators, opts.load_cpu)
    windows: list[Window] = []
    sweep: list[Window] | None = None
    kinds = [TUTORWIRE, *opts.peers]
    try:
        for repeat in range(opts.repeats):
            # rotate which server goes first, so that drift in the machine's load evens out
            shift = repeat % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                window = measure(kind, repeat, opts, gens, secret)
                windows.append(window)
                _log_window(began, window)
                warn_about(opts, window)
        if opts.sweep:
            sweep = []
            for sessions in SWEEP_SESSIONS:
                window = measure(TUTORWIRE, 0, opts, gens, secret, sessions)
                sweep.append(window)
                _log_window(began, window)
                warn_about(opts, window)
                if not _holds(window):
                    break
            if not any(_holds(w) for w in sweep):  # not even the first step: halve down to find what holds
                sessions = SWEEP_SESSIONS[0] // 2
                while sessions >= SWEEP_MIN_SESSIONS:
                    window = measure(TUTORWIRE, 0, opts, gens, secret, sessions)
                    sweep.append(window)
                    _log_window(began, window)
                    warn_about(opts, window)
                    if _holds(window):
                        break
                    sessions //= 2
    finally:
        gens.close()
    result = report(opts, windows, sweep)
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
