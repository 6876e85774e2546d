"""What recording costs: server CPU per active session, disk bytes per session-minute, and how
long recovery takes for a large recording a crash left open.

CPU. Two ``tutorwire serve`` processes, one recording (``TUTORWIRE_RECORD=true``, recordings in
a temporary folder) and one not, both pinned to the first CPU (``taskset``), run the same
realistic load (``bench.archive_load``: per session the tutor writing 120 Hz ink about half the
time, the tutor talking ~60 % and the student ~30 % of the time in 20 ms Opus packets over the
WebSocket, both answering Pings) from one generator process pinned to the second CPU. Each
repeat measures a window on each server, in alternating order, each phase on new sessions; a
server's CPU is utime + stime of all its threads from ``/proc``. The cost of recording is the
difference, on minus off, of the same repeat, divided by the sessions; the median over repeats
is reported with the spread. The thread split (event loop vs the rest, where the archiver's
writer thread does every write and fsync) and py-spy (``--profile-seconds``) say where the
difference goes.

Writer. In this process, without a server: ``--writer-sessions`` rooms (default 200) fed the
same load in real time every 4 ms from one event loop pinned to one core, for ``--writer-seconds``,
through the archiver (its writer thread taking the queue every 20, 100 or 500 ms) and, for
comparison, through the same file code called on the loop as before the writer thread existed
(fsyncs in ``asyncio.to_thread``): the loop's CPU per call, the other threads' CPU, and how late
the 4 ms ticks fire (what every other task on the loop waits). ``--writer-only`` runs just this.

Disk. Bytes per session-minute from the recording folders' growth over the measured window
(steady state: the slope through sizes sampled 10 times a second, since they grow in steps at each
0.5 s flush) and from the finished folders (whole recordings, idle start, headers and manifests
included), split into the event log (by record kind) and the Ogg audio; and the bytes the server's
writes sent to the block layer (``/proc/<pid>/io``), which counts every 4 KiB page an fsync
rewrites. Windows where the server fell behind the load (another process took its core) are
dropped with their pair and more pairs run, up to ``--max-repeats``.

Recovery. A large recording (``--recovery-minutes`` of one two-speaker session, default 60)
written through the archiver's own ``RecordingFiles``, its files cut mid-record and mid-page as
by SIGKILL during a write, manifest still ``recording``; ``recordings.recovery.recover`` timed
on it with its files in the page cache (a server restarted after a crash) and after evicting them
(``posix_fadvise DONTNEED``: closer to a reboot, though the VM's host may still cache them).

The last line of output is one JSON object (``cpu_percent_per_session``,
``bytes_per_session_minute``, ``recovery_s``, ``writer`` and the details).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recordings.archiver import Archiver
from recordings.eventlog import MAGIC, LogRecord, encode_record, read_log
from recordings.layout import LOG_NAME
from recordings.manifest import MANIFEST_NAME
from recordings.ogg import read_ogg_opus
from recordings.recording import RecordingFiles
from recordings.recovery import RecoveryReport, recover
from wire import Role, encode
from wire import messages as m
from wire.audio import AudioPacket

from . import archive_load
from .archive_load import AUDIO_MS, STUDENT_PAUSE_S, STUDENT_TALK_S, TUTOR_PAUSE_S, TUTOR_TALK_S, Go, Phase, Tally
from .audio_peers import opus_stream
from .inkscript import BATCH_MS, library
from .servers import ServerProcess, core_times, free_port, process_cpu_s

_REPO = Path(__file__).resolve().parent.parent
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
ON, OFF = "on", "off"
PROFILE_HZ = 400
KIND_NAMES = {1: "event", 2: "audio_index", 3: "clock", 4: "note"}


@dataclass(frozen=True, slots=True)
class Options:
    sessions: int
    window_s: float
    warmup_s: float
    repeats: int
    profile_s: float
    max_pairs: int
    quick: bool
    recovery_minutes: float
    base_dir: Path
    writer_sessions: int = 200
    writer_seconds: float = 10.0
    writer_only: bool = False
    server_cpu: int = 0
    load_cpu: int = 1


# --- the servers and the load -----------------------------------------------------------------


def start_server(record: bool, opts: Options, secret: str, recordings_dir: Path) -> ServerProcess:
    """``tutorwire serve`` as deployed but for: warnings only, no matcher worker, rooms evicted
    (and their recordings closed) 1 s after the load leaves, so phases do not pile up."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env.update(TUTORWIRE_SECRET=secret, TUTORWIRE_LOG_LEVEL="warning", TUTORWIRE_MATCHER_WORKER="false",
               TUTORWIRE_ROOM_IDLE_TTL_S="1", TUTORWIRE_RECORD="true" if record else "false",
               TUTORWIRE_RECORDINGS_DIR=str(recordings_dir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    argv = [str(Path(sys.executable).with_name("tutorwire")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    name = f"tutorwire-record-{'on' if record else 'off'}"
    server = ServerProcess(name, argv, port, opts.base_dir / f"{name}.log", env, opts.server_cpu)
    server.wait_ready()
    return server


class Generator:
    def __init__(self, cpu: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=archive_load.main, args=(child, cpu), daemon=True)
        self.proc.start()
        self.expect("ready", 60)

    def expect(self, tag: str, timeout_s: float) -> Any:
        if not self.conn.poll(timeout_s):
            raise RuntimeError(f"the load generator sent no {tag!r} within {timeout_s:g} s")
        got, value = self.conn.recv()
        if got != tag:
            raise RuntimeError(f"the load generator: expected {tag!r}, got {got!r}: {value}")
        return value

    def cpu_s(self) -> float:
        assert self.proc.pid is not None
        return process_cpu_s(self.proc.pid)

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds of ``pid``'s main thread (the event loop) and of all its other threads."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # a thread that just ended
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) * _TICK_S
        if task.name == str(pid):
            main += cpu
        else:
            other += cpu
    return main, other


def proc_io(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = int(value)
    return out


def folder_bytes(root: Path, prefix: str) -> dict[str, int]:
    """Bytes in this phase's recording folders by file kind: ``log``, ``audio``, ``other``."""
    sizes = {"log": 0, "audio": 0, "other": 0}
    if not root.is_dir():
        return sizes
    for folder in root.iterdir():
        if not folder.name.startswith(prefix + "-"):
            continue
        for entry in os.scandir(folder):
            if not entry.is_file():
                continue
            kind = "log" if entry.name == LOG_NAME else "audio" if entry.name.endswith(".opus") else "other"
            sizes[kind] += entry.stat().st_size
    return sizes


@dataclass
class Snapshot:
    at: float
    server_s: float
    main_s: float
    other_s: float
    core_busy_s: float
    core_softirq_s: float
    load_s: float
    io: dict[str, int]
    files: dict[str, int]


def snapshot(server: ServerProcess, gen: Generator, opts: Options, root: Path | None, prefix: str) -> Snapshot:
    main, other = thread_cpu_s(server.pid)
    core = core_times(opts.server_cpu)
    return Snapshot(time.monotonic(), server.cpu_s(), main, other, core.busy_s, core.softirq_s, gen.cpu_s(),
                    proc_io(server.pid), folder_bytes(root, prefix) if root is not None else {})


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(left)


def run_window(mode: str, server: ServerProcess, gen: Generator, opts: Options, secret: str, tag: str,
               root: Path | None, profile_to: Path | None = None) -> dict[str, Any]:
    """One phase: connect new sessions, run the load, measure the window, wait for the recordings
    to be finished (when recording), and summarize."""
    prefix = f"{tag}-{secrets.token_hex(3)}"
    gen.conn.send(Phase(server.port, opts.sessions, prefix, secret))
    gen.expect("connected", 120)
    start = time.monotonic() + 0.2
    t0 = start + opts.warmup_s
    t1 = t0 + opts.window_s
    gen.conn.send(Go(start, t0, t1, t1))
    _sleep_until(t0)
    spy = None
    if profile_to is not None:
        spy = subprocess.Popen(
            ["taskset", "-c", str(opts.load_cpu), str(Path(sys.executable).with_name("py-spy")), "record",
             "-p", str(server.pid), "-d", str(max(1, round(opts.window_s))), "-r", str(PROFILE_HZ), "-f", "raw",
             "--threads", "--nonblocking", "-o", str(profile_to)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    a = snapshot(server, gen, opts, root, prefix)
    samples: list[tuple[float, dict[str, int]]] = [(a.at, a.files)]
    while root is not None and time.monotonic() < t1 - 0.1:  # the folders' growth, 10 times a second
        time.sleep(0.1)
        samples.append((time.monotonic(), folder_bytes(root, prefix)))
    _sleep_until(t1)
    b = snapshot(server, gen, opts, root, prefix)
    samples.append((b.at, b.files))
    tally: Tally = gen.expect("tally", 60)
    gen.expect("closed", 30)
    if spy is not None:
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
    span = b.at - a.at
    result: dict[str, Any] = {
        "mode": mode,
        "window_s": round(span, 3),
        "server_cpu_pct": 100 * (b.server_s - a.server_s) / span,
        "server_loop_thread_pct": 100 * (b.main_s - a.main_s) / span,
        "server_other_threads_pct": 100 * (b.other_s - a.other_s) / span,
        "core_busy_pct": 100 * (b.core_busy_s - a.core_busy_s) / span,
        "core_softirq_pct": 100 * (b.core_softirq_s - a.core_softirq_s) / span,
        "core_other_pct": 100 * ((b.core_busy_s - a.core_busy_s) - (b.server_s - a.server_s)) / span,
        "load_cpu_pct": 100 * (b.load_s - a.load_s) / span,
        "server_write_bytes_per_s": (b.io.get("write_bytes", 0) - a.io.get("write_bytes", 0)) / span,
        "server_write_calls_per_s": (b.io.get("syscw", 0) - a.io.get("syscw", 0)) / span,
        "tally": tally_summary(tally, span, opts.sessions),
    }
    if root is not None:
        # the slope of a least-squares line through the samples: the folders grow in steps at each
        # flush (every 0.5 s), which the end points alone would catch at a random phase
        per_s = {k: _slope([(t, f[k]) for t, f in samples]) for k in b.files}
        per_s["total"] = _slope([(t, sum(f.values())) for t, f in samples])
        result["window_bytes_per_session_minute"] = {k: 60 * v / opts.sessions for k, v in per_s.items()}
        result["finished"] = finished_recordings(root, prefix, opts.sessions, t1 - start)
    return result


def _slope(points: list[tuple[float, int]]) -> float:
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


def tally_summary(tally: Tally, span: float, sessions: int) -> dict[str, Any]:
    per_s = 1 / (span * sessions)
    return {
        "frames_sent_per_session_s": tally.frames_sent * per_s,
        # what the server relayed of what was sent in the window (1.0: it kept up)
        "ops_relayed_fraction": tally.received.get(int(m.MsgType.EVENT), 0) / max(1, tally.ops_sent),
        "audio_relayed_fraction": tally.received.get(int(m.MsgType.AUDIO_RELAY), 0) / max(1, sum(tally.audio_packets)),
        "ink_batches_per_session_s": tally.ink_batches * per_s,
        "ink_points_per_session_s": tally.ink_points * per_s,
        "tutor_talk_fraction": tally.audio_packets[0] * per_s * AUDIO_MS / 1000,
        "student_talk_fraction": tally.audio_packets[1] * per_s * AUDIO_MS / 1000,
        "frames_received_per_session_s": sum(tally.received.values()) * per_s,
        "events_received_per_session_s": tally.received.get(int(m.MsgType.EVENT), 0) * per_s,
        "audio_relays_received_per_session_s": tally.received.get(int(m.MsgType.AUDIO_RELAY), 0) * per_s,
        "pongs": tally.pongs,
        "tick_lag_p99_ms": round(tally.tick_lag_p99_ms, 2),
        "tick_lag_max_ms": round(tally.tick_lag_max_ms, 2),
        "errors": tally.errors[:3],
        "server_closes": tally.server_closes[:5],
    }


def finished_recordings(root: Path, prefix: str, sessions: int, active_s: float) -> dict[str, Any]:
    """Wait for the phase's recordings to be closed (the rooms are evicted 1 s after the load
    leaves), then size them, split the event logs by record kind, and delete them."""
    deadline = time.monotonic() + 60
    folders: list[Path] = []
    while time.monotonic() < deadline:
        folders = [f for f in root.iterdir() if f.name.startswith(prefix + "-")]
        done = [f for f in folders if _status(f) == "complete"]
        if len(folders) == sessions and len(done) == sessions:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"{prefix}: recordings not all complete after 60 s")
    files: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    duration_ms = 0
    for folder in folders:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        duration_ms += manifest["duration_ms"]
        for entry in os.scandir(folder):
            name = "audio" if entry.name.endswith(".opus") else entry.name
            files[name] += entry.stat().st_size
        read = read_log((folder / LOG_NAME).read_bytes())
        kinds["header"] += len(MAGIC)
        for record in read.records:
            kinds[KIND_NAMES[int(record.kind)]] += _record_bytes(record)
    shutil.rmtree(root)  # this phase's recordings only: the root is the phase's own folder
    root.mkdir()
    total = sum(files.values())
    active_minutes = sessions * active_s / 60
    return {
        "recordings": len(folders),
        "recorded_minutes": duration_ms / 60_000,
        "active_load_minutes": active_minutes,
        "bytes_per_recorded_minute": total / (duration_ms / 60_000),
        "bytes_per_recorded_minute_by_file": {k: v / (duration_ms / 60_000) for k, v in sorted(files.items())},
        "log_bytes_per_recorded_minute_by_kind": {k: v / (duration_ms / 60_000) for k, v in sorted(kinds.items())},
    }


def _record_bytes(record: LogRecord) -> int:
    return len(encode_record(record))


def _status(folder: Path) -> str | None:
    try:
        status: str = json.loads((folder / MANIFEST_NAME).read_text())["status"]
        return status
    except (OSError, ValueError, KeyError):
        return None


# --- py-spy -------------------------------------------------------------------------------------


def summarize_profile(path: Path, seconds: float, rate_hz: int, server_cpu_pct: float) -> dict[str, Any]:
    """From py-spy's raw (collapsed) stacks, per thread: the event loop's busy samples in the
    ``recordings`` package (by entry point and by innermost frame), and how much of the wall time
    the archiver's writer thread spends in ``fsync`` (py-spy counts a thread blocked in the disk as
    active, so that share is waiting, not CPU: compare ``server_other_threads_pct``)."""
    if not path.exists():
        return {"error": "no profile"}
    loop_total = loop_recording = fsync = other_threads = 0
    by_entry: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if not frames[0].endswith("MainThread"):
            if any("fsync" in f for f in frames):
                fsync += count
            else:
                other_threads += count
            continue
        loop_total += count
        rec = [f for f in frames if "recordings/" in f.partition(" (")[2]]
        if not rec:
            continue
        loop_recording += count
        by_entry[_func(rec[0])] += count
        by_leaf[_func(rec[-1])] += count
    if not loop_total:
        return {"error": "empty profile"}
    possible = seconds * rate_hz

    def share(counter: Counter[str], n: int) -> dict[str, float]:
        return {k: round(100 * v / loop_total, 2) for k, v in counter.most_common(n)}

    return {
        "loop_samples": loop_total,
        "loop_busy_pct_of_wall": round(100 * loop_total / possible, 1),
        "recording_pct_of_loop_samples": round(100 * loop_recording / loop_total, 2),
        "recording_loop_cpu_pct_of_core": round(100 * loop_recording / possible, 2),
        "recording_by_entry_pct_of_loop_samples": share(by_entry, 10),
        "recording_by_innermost_pct_of_loop_samples": share(by_leaf, 12),
        "fsync_thread_in_fsync_pct_of_wall": round(100 * fsync / possible, 1),
        "other_threads_pct_of_wall": round(100 * other_threads / possible, 1),
        "server_cpu_pct_measured": round(server_cpu_pct, 2),
    }


def _func(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``file.py:name``."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{file}:{name}" if file else name


# --- recovery of a large recording ------------------------------------------------------------


Op = tuple[Any, ...]  # ("event", Event, frame) | ("audio", AudioPacket) | ("clock", pid, ms, offset, rtt)
TICK_MS = 4  # divides both the 16 ms ink and the 20 ms audio period
TUTOR, STUDENT = 1, 2  # the pids of a one-on-one room joined tutor first


def session_ops(minutes: float, seed: int = 7, pongs_every_ms: int = 5_000) -> list[list[Op]]:
    """What a room tells its recorder in one two-speaker session of ``minutes`` (the load model of
    ``archive_load``: audio with network jitter and a device clock offset, a clock offset every
    ``pongs_every_ms``), as a list per ``TICK_MS`` tick, frames encoded in advance."""
    rng = random.Random(seed)
    scripts = library(64, seed=2024)
    stream = opus_stream()
    device_offset = {TUTOR: 1_234_567.0, STUDENT: -42_000.0}  # device clock minus session clock
    seq = 0
    total_ms = int(minutes * 60_000)
    ticks: list[list[Op]] = [[] for _ in range(0, total_ms, TICK_MS)]

    def event(t: int, pid: int, body: m.EventBody) -> None:
        nonlocal seq
        seq += 1
        ev = m.Event(seq, t, pid, getattr(body, "cseq", 0), body)
        ticks[t // TICK_MS].append(("event", ev, encode(ev)))

    event(0, TUTOR, m.Presence("user-tutor", True, Role.TUTOR))
    event(0, STUDENT, m.Presence("user-student", True, Role.STUDENT))
    talk = [(TUTOR_TALK_S, TUTOR_PAUSE_S), (STUDENT_TALK_S, STUDENT_PAUSE_S)]
    talking = [rng.random() < t / (t + p) for t, p in talk]
    audio_seq = [0, 0]
    cseq = stroke = batch = start_point = 0
    script = None
    pause = 0
    for t in range(0, total_ms, TICK_MS):
        if t % BATCH_MS == 0:
            if pause > 0:
                pause -= 1
            else:
                if script is None:
                    script = scripts[rng.randrange(len(scripts))]
                    stroke += 1
                    cseq += 1
                    batch = start_point = 0
                    event(t, TUTOR, m.StrokeBegin(cseq, stroke, 0, m.Tool.PEN, 0x202020FF, 40, script.flags,
                                                  int(t + device_offset[TUTOR])))
                count, blob = script.batches[batch]
                batch += 1
                cseq += 1
                event(t, TUTOR, m.StrokePoints(cseq, stroke, start_point, count, blob))
                start_point += count
                if batch == len(script.batches):
                    cseq += 1
                    event(t, TUTOR, m.StrokeEnd(cseq, stroke))
                    script = None
                    pause = rng.randrange(10, 150)
        if t % AUDIO_MS == 0:
            for i, pid in enumerate((TUTOR, STUDENT)):
                on_s, off_s = talk[i]
                if talking[i]:
                    talking[i] = rng.random() >= AUDIO_MS / 1000 / on_s
                else:
                    talking[i] = rng.random() < AUDIO_MS / 1000 / off_s
                if talking[i] or total_ms - t <= 1_000:  # both talk in the last second: full last pages
                    audio_seq[i] += 1
                    arrival = t + rng.randrange(2, 40)  # the network's jitter
                    packet = AudioPacket(pid, audio_seq[i], int(t + device_offset[pid]), arrival, 960,
                                         stream[audio_seq[i] % len(stream)])
                    ticks[t // TICK_MS].append(("audio", packet))
        if t % pongs_every_ms == 0:
            for pid in (TUTOR, STUDENT):
                ticks[t // TICK_MS].append(("clock", pid, t, device_offset[pid] + rng.uniform(-1, 1),
                                            rng.uniform(1, 5)))
    return ticks


def build_crashed_recording(root: Path, minutes: float, seed: int = 7) -> tuple[Path, dict[str, Any]]:
    """One two-speaker session of ``minutes`` (``session_ops``) written through the archiver's own
    ``RecordingFiles`` as its writer thread would (a flush every 0.5 s), then left as SIGKILL
    would: no finish, the log cut mid-record and each Ogg file mid-page, the manifest still
    ``recording``. Also times each call: the writer thread's work per item."""
    t_build, c_build = time.perf_counter(), time.process_time()
    ticks = session_ops(minutes, seed)
    files = RecordingFiles.create(root, "large", 1, time.time())
    spent: defaultdict[str, float] = defaultdict(float)  # seconds inside the calls, by call
    calls = Counter[str]()
    clock = time.perf_counter
    events = audio = 0
    for k, ops in enumerate(ticks):
        for op in ops:
            t = clock()
            if op[0] == "event":
                files.event(op[1], op[2])
                events += 1
            elif op[0] == "audio":
                files.audio_packet(op[1])
                audio += 1
            else:
                files.clock(*op[1:])
            spent[op[0]] += clock() - t
            calls[op[0]] += 1
        if (k * TICK_MS) % 500 == 0:
            t = clock()
            files.flush(fsync=False)
            spent["flush"] += clock() - t
            calls["flush"] += 1
    files.flush(fsync=True)
    files.abandon()  # no finish(): no EOS pages, no final NOTE, manifest left at "recording"
    folder = files.folder
    cuts: dict[str, int] = {}
    log_path = folder / LOG_NAME
    cuts[LOG_NAME] = 7  # every record is longer (8-byte prefix + payload): mid-record
    os.truncate(log_path, log_path.stat().st_size - 7)
    for path in sorted(folder.glob("audio-*.opus")):
        data = path.read_bytes()
        last_page = data.rindex(b"OggS")
        keep = last_page + (len(data) - last_page) // 2  # mid-page
        cuts[path.name] = len(data) - keep
        os.truncate(path, keep)
    sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
    return folder, {
        "minutes": minutes,
        "build_s": round(time.perf_counter() - t_build, 2),
        "build_cpu_s": round(time.process_time() - c_build, 2),
        "bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "events": events,
        "audio_packets": audio,
        "truncated_bytes": cuts,
        # the writer thread's work per item, in this process (no server, no fsync): a
        # deterministic cross-check of the server measurement
        "writer_us_per_call": {k: round(1e6 * spent[k] / calls[k], 2) for k in sorted(calls)},
        "writer_cpu_pct_per_session": round(100 * sum(spent.values()) / (minutes * 60), 4),
    }


# --- the writer thread against the loop, in this process --------------------------------------


def _thread_cpu_s(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


async def _feed(sessions: int, seconds: float, mode: str, root: Path, drain_s: float) -> dict[str, Any]:
    """``sessions`` rooms fed ``session_ops`` in real time, every ``TICK_MS``, from one event loop:
    through the ``Archiver`` (``mode`` "writer": its writer thread does the files) or, as before
    the writer thread, through ``RecordingFiles`` called on the loop with each flush's fsyncs in
    ``asyncio.to_thread`` ("inline"). Measures the loop's CPU, the other threads' CPU, and how late
    the ticks fire (what every other task on the loop would wait)."""
    ticks = session_ops(seconds / 60, pongs_every_ms=2_000)
    archiver: Archiver | None = None
    recorders: list[Any] = []
    if mode == "writer":
        archiver = Archiver(root, 0.5, drain_s=drain_s)
        await archiver.start()
        recorders = [archiver.open(f"s{i}", 1) for i in range(sessions)]
    else:
        recorders = [RecordingFiles.create(root, f"s{i}", 1, time.time()) for i in range(sessions)]
    if archiver is not None:
        # warm-up, not measured: the writer creates the folders and, at its first flush, writes
        # each manifest again with the participants (the presences are in the first tick)
        for rec in recorders:
            for op in ticks[0]:
                if op[0] == "event":
                    rec.on_event(op[1], op[2])
        ticks[0] = [op for op in ticks[0] if op[0] != "event"]
        await asyncio.sleep(1.0 + archiver.flush_s)
    calls = 0
    late: list[float] = []
    main = threading.main_thread()
    cpu_main0 = _thread_cpu_s(main)
    cpu_all0 = time.process_time()
    start = time.monotonic() + 0.1
    fsyncs: list[asyncio.Future[Any]] = []
    for k, ops in enumerate(ticks):
        due = start + k * TICK_MS / 1000
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the session's pace
        late.append(max(0.0, time.monotonic() - due) * 1000)
        for rec in recorders:
            for op in ops:
                if mode == "writer":
                    if op[0] == "event":
                        rec.on_event(op[1], op[2])
                    elif op[0] == "audio":
                        rec.on_audio(op[1])
                    else:
                        rec.on_clock(*op[1:])
                elif op[0] == "event":
                    rec.event(op[1], op[2])
                elif op[0] == "audio":
                    rec.audio_packet(op[1])
                else:
                    rec.clock(*op[1:])
                calls += 1
        if mode == "inline" and (k * TICK_MS) % 500 == 0:
            fds: list[int] = []
            for rec in recorders:  # the old flush: writes on the loop, fsyncs off it
                rec.manifest_due = False  # the old archiver wrote no manifest while recording
                rec.flush(fsync=False)
                fds += [rec.log.fileno(), *(w.fileno() for w in rec.audio.values())]
            fsyncs.append(asyncio.ensure_future(asyncio.to_thread(_fsync_all, fds)))
    span = time.monotonic() - start
    cpu_main = _thread_cpu_s(main) - cpu_main0
    cpu_all = time.process_time() - cpu_all0
    if archiver is not None:
        await asyncio.gather(*(archiver.close(r, "done") for r in recorders))
        await archiver.stop()
    else:
        await asyncio.gather(*fsyncs)
        for rec in recorders:
            rec.finish("done")
    late.sort()
    return {
        "mode": mode if mode == "inline" else f"writer drain {drain_s * 1000:g} ms",
        "sessions": sessions,
        "calls_per_s": round(calls / span),
        "loop_cpu_pct": round(100 * cpu_main / span, 1),
        "other_threads_cpu_pct": round(100 * (cpu_all - cpu_main) / span, 1),
        "loop_us_per_call": round(1e6 * cpu_main / calls, 2),
        "tick_late_p50_ms": round(late[len(late) // 2], 2),
        "tick_late_p99_ms": round(late[int(0.99 * (len(late) - 1))], 2),
        "tick_late_max_ms": round(late[-1], 2),
    }


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        os.fsync(fd)


def measure_writer(base: Path, sessions: int, seconds: float, cpu: int | None) -> list[dict[str, Any]]:
    """``_feed`` in each mode, inline first, on one core (``cpu``) so that the writer thread and
    the loop share it as they would in a server pinned to a core."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    out = []
    try:
        for mode, drain_s in (("inline", 0.0), ("writer", 0.02), ("writer", 0.1), ("writer", 0.5)):
            root = base / f"writer-{mode}-{drain_s}"
            root.mkdir()
            out.append(asyncio.run(_feed(sessions, seconds, mode, root, drain_s)))
            shutil.rmtree(root)
            print(f"recording {sessions} sessions, {out[-1]['mode']}: {out[-1]}", file=sys.stderr)
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return out


def _evict_from_cache(folder: Path) -> None:
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def measure_recovery(base: Path, minutes: float, detailed: bool) -> dict[str, Any]:
    """Recovery of a crashed large recording, with its files evicted from the page cache; with
    ``detailed``, also with them cached and the parts (log, Ogg, hashing) timed alone."""
    root = base / "large"
    root.mkdir()
    folder, built = build_crashed_recording(root, minutes)
    cold = base / "large-cold"
    shutil.copytree(root, cold)
    cold_folder = cold / folder.name
    parts: dict[str, float] = {}
    warm_s = warm_cpu_s = float("nan")
    report = None
    if detailed:
        warm_s, warm_cpu_s, report, parts = _recover_warm(folder)
    _evict_from_cache(cold_folder)
    t, c = time.perf_counter(), time.process_time()
    cold_report = recover(cold_folder, time.time())
    cold_s, cold_cpu_s = time.perf_counter() - t, time.process_time() - c
    report = report or cold_report
    checked = folder if detailed else cold_folder
    again = recover(checked, time.time())
    assert report is not None and report.log is not None
    result = {
        **built,
        "recovery_cold_s": round(cold_s, 3),
        "recovery_warm_s": round(warm_s, 3) if detailed else None,
        # CPU seconds of this process in each: far below the wall time means waiting (disk, or
        # another process on the core)
        "recovery_cold_cpu_s": round(cold_cpu_s, 3),
        "recovery_warm_cpu_s": round(warm_cpu_s, 3) if detailed else None,
        "parts": {k: round(v, 3) for k, v in parts.items()},
        "log_damage": report.log.damage,
        "log_cut_bytes": report.log.cut_bytes,
        "audio": [{"name": a.name, "damage": a.damage, "cut_bytes": a.cut_bytes, "eos_added": a.eos_added}
                  for a in report.audio],
        "status_after": _status(checked),
        "second_run_did_nothing": again is None,
    }
    shutil.rmtree(root)
    shutil.rmtree(cold)
    return result


def _recover_warm(folder: Path) -> tuple[float, float, RecoveryReport | None, dict[str, float]]:
    """The parts timed alone on the cached copy (CPU only: the bytes are in memory), then its
    recovery with the files cached."""
    parts: dict[str, float] = {}
    log_data = (folder / LOG_NAME).read_bytes()
    t = time.perf_counter()
    read = read_log(log_data)
    parts["read_log_s"] = time.perf_counter() - t
    parts["log_records"] = len(read.records)
    for path in sorted(folder.glob("audio-*.opus")):
        data = path.read_bytes()
        t = time.perf_counter()
        read_ogg_opus(data)
        parts[f"read_ogg_{path.stem}_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for path in folder.iterdir():
        hashlib.sha256(path.read_bytes()).hexdigest()
    parts["sha256_s"] = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    report = recover(folder, time.time())
    return time.perf_counter() - t, time.process_time() - c, report, parts


# --- the run ------------------------------------------------------------------------------------


def kept_up(w: dict[str, Any]) -> bool:
    """Whether the server relayed (almost) everything sent in the window: when it falls behind
    (another process took its core), it did less work than the load asked for."""
    t = w["tally"]
    return bool(t["ops_relayed_fraction"] >= 0.97 and t["audio_relayed_fraction"] >= 0.97 and not t["errors"])


def pairs(windows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(on, off) windows of the same repeat."""
    by_rep: dict[int, dict[str, dict[str, Any]]] = {}
    for w in windows:
        by_rep.setdefault(w["repeat"], {})[w["mode"]] = w
    return [(p[ON], p[OFF]) for _, p in sorted(by_rep.items()) if ON in p and OFF in p]


def clean_pairs(windows: list[dict[str, Any]]) -> int:
    return sum(1 for a, b in pairs(windows) if a["kept_up"] and b["kept_up"])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _r(value: float, digits: int = 3) -> float:
    return round(value, digits)


def run(opts: Options) -> dict[str, Any]:
    secret = secrets.token_hex(16)
    t_begin = time.monotonic()
    rec_dir = opts.base_dir / "recordings"
    rec_dir.mkdir()
    gen = Generator(opts.load_cpu)
    servers = {ON: start_server(True, opts, secret, rec_dir), OFF: start_server(False, opts, secret,
                                                                               opts.base_dir / "unused")}
    windows: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None
    try:
        rep = 0
        while clean_pairs(windows) < opts.repeats and rep < opts.max_pairs:
            order = (ON, OFF) if rep % 2 == 0 else (OFF, ON)
            for mode in order:
                w = run_window(mode, servers[mode], gen, opts, secret, f"r{rep}{mode}", rec_dir if mode == ON else None)
                w["repeat"] = rep
                w["kept_up"] = kept_up(w)
                windows.append(w)
                print(f"repeat {rep} recording {mode}: server {w['server_cpu_pct']:.1f} % "
                      f"(loop {w['server_loop_thread_pct']:.1f}, other threads {w['server_other_threads_pct']:.1f}),"
                      f" rest of its core {w['core_other_pct']:.1f} %, load {w['load_cpu_pct']:.1f} %"
                      f"{'' if w['kept_up'] else ', FELL BEHIND (other work on the machine?): pair dropped'}",
                      file=sys.stderr)
            rep += 1
        if opts.profile_s > 0:
            spy_opts = dataclasses.replace(opts, window_s=opts.profile_s)
            raw = opts.base_dir / "profile-on.txt"
            w = run_window(ON, servers[ON], gen, spy_opts, secret, "profile", rec_dir, profile_to=raw)
            profile = summarize_profile(raw, w["window_s"], PROFILE_HZ, w["server_cpu_pct"])
            profile["server_other_threads_pct_measured"] = _r(w["server_other_threads_pct"], 2)
            profile["server_kept_up"] = kept_up(w)
            profile["rest_of_its_core_pct"] = _r(w["core_other_pct"], 1)
            print(f"py-spy: {profile.get('recording_pct_of_loop_samples')} % of the event loop's samples in "
                  f"recordings/", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        gen.close()
    t_load = time.monotonic() - t_begin
    recovery = measure_recovery(opts.base_dir, opts.recovery_minutes, detailed=not opts.quick)
    print(f"recovery of {recovery['minutes']:g} min ({recovery['total_bytes'] / 1e6:.1f} MB): "
          f"{recovery['recovery_cold_s']} s evicted from the cache, {recovery['recovery_warm_s']} s cached",
          file=sys.stderr)

    all_pairs = pairs(windows)
    kept = [(a, b) for a, b in all_pairs if a["kept_up"] and b["kept_up"]]
    if not kept:
        print("warning: no repeat where the server kept up in both windows; using them all", file=sys.stderr)
        kept = all_pairs
    on = [a for a, _ in kept]
    off = [b for _, b in kept]
    diffs = [a["server_cpu_pct"] - b["server_cpu_pct"] for a, b in zip(on, off, strict=True)]
    loop_diffs = [a["server_loop_thread_pct"] - b["server_loop_thread_pct"] for a, b in zip(on, off, strict=True)]
    other_diffs = [a["server_other_threads_pct"] - b["server_other_threads_pct"]
                   for a, b in zip(on, off, strict=True)]
    core_diffs = [a["core_busy_pct"] - b["core_busy_pct"] for a, b in zip(on, off, strict=True)]
    n = opts.sessions
    steady = [w["window_bytes_per_session_minute"] for w in on]
    whole = [w["finished"] for w in on]
    off_cpu = [w["server_cpu_pct"] for w in off]
    on_cpu = [w["server_cpu_pct"] for w in on]
    per_session = _median(diffs) / n
    result: dict[str, Any] = {
        "cpu_percent_per_session": _r(per_session, 4),
        "bytes_per_session_minute": round(_median([s["total"] for s in steady])),
        "recovery_s": recovery["recovery_cold_s"],
        "target_cpu_percent_per_session": 1.0,
        "target_met": per_session <= 1.0,
        "sessions": n,
        "pairs_used": len(kept),
        "pairs_dropped": len(all_pairs) - len(kept),
        "dropped_pairs_cpu_pct_on_off": [[_r(a["server_cpu_pct"], 1), _r(b["server_cpu_pct"], 1)]
                                         for a, b in all_pairs if (a, b) not in kept],
        "core0_other_pct_median": _r(_median([w["core_other_pct"] for w in windows]), 1),
        "window_s": opts.window_s,
        "server_cpu_pct_on": [_r(v, 2) for v in on_cpu],
        "server_cpu_pct_off": [_r(v, 2) for v in off_cpu],
        "server_cpu_pct_on_median": _r(_median(on_cpu), 2),
        "server_cpu_pct_off_median": _r(_median(off_cpu), 2),
        "recording_cpu_pct_diffs": [_r(d, 2) for d in diffs],
        "recording_cpu_pct_median": _r(_median(diffs), 2),
        "recording_share_of_server_cpu_pct": _r(100 * _median(diffs) / _median(on_cpu), 1),
        "cpu_percent_per_session_range": [_r(min(diffs) / n, 4), _r(max(diffs) / n, 4)],
        "noise_off_spread_pct": _r(max(off_cpu) - min(off_cpu), 2),
        "noise_on_spread_pct": _r(max(on_cpu) - min(on_cpu), 2),
        "server_cpu_pct_per_session_off": _r(_median(off_cpu) / n, 4),
        "recording_loop_thread_pct_median": _r(_median(loop_diffs), 2),
        "recording_other_threads_pct_median": _r(_median(other_diffs), 2),
        "core0_busy_diff_pct_median": _r(_median(core_diffs), 2),
        "load_cpu_pct_max": _r(max(w["load_cpu_pct"] for w in windows), 1),
        "server_write_bytes_per_s_on_median": round(_median([w["server_write_bytes_per_s"] for w in on])),
        # what the server's writes sent to the block layer (/proc/pid/io write_bytes): each fsync of a
        # file whose last page is partly filled writes that whole 4 KiB page again
        "disk_write_bytes_per_session_minute": round(60 * _median(
            [a["server_write_bytes_per_s"] - b["server_write_bytes_per_s"] for a, b in zip(on, off, strict=True)]) / n),
        "server_write_calls_per_s_on_median": round(_median([w["server_write_calls_per_s"] for w in on])),
        "server_write_calls_per_s_off_median": round(_median([w["server_write_calls_per_s"] for w in off])),
        "bytes_per_session_minute_steady": {k: round(_median([s[k] for s in steady])) for k in steady[0]},
        "bytes_per_recorded_minute_whole": round(_median([f["bytes_per_recorded_minute"] for f in whole])),
        "bytes_per_recorded_minute_by_file": {k: round(v) for k, v in
                                              whole[-1]["bytes_per_recorded_minute_by_file"].items()},
        "log_bytes_per_recorded_minute_by_kind": {k: round(v) for k, v in
                                                  whole[-1]["log_bytes_per_recorded_minute_by_kind"].items()},
        "load": on[-1]["tally"],
        "load_off": off[-1]["tally"],
        "profile": profile,
        "recovery": recovery,
        "load_phase_s": round(t_load, 1),
        "total_s": round(time.monotonic() - t_begin, 1),
    }
    return result


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 sessions, two 4 s pairs, no profile: under 60 s")
    parser.add_argument("--sessions", type=int, help="active sessions (default 80, quick 60)")
    parser.add_argument("--seconds", type=float, help="measured window (default 15, quick 4)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each window (default 3, quick 1.5)")
    parser.add_argument("--repeats", type=int, help="on/off window pairs, order alternating (default 6, quick 2)")
    parser.add_argument("--max-repeats", type=int,
                        help="pairs to try in all when some are dropped because the server fell behind "
                        "(default twice --repeats; quick: no retries)")
    parser.add_argument("--profile-seconds", type=float,
                        help="py-spy the recording server for a window this long (default 30, quick 0: off)")
    parser.add_argument("--recovery-minutes", type=float, help="length of the large recording (default 60)")
    parser.add_argument("--writer-sessions", type=int, help="rooms in the writer measurement (default 200, quick 100)")
    parser.add_argument("--writer-seconds", type=float, help="its length per mode (default 10, quick 4)")
    parser.add_argument("--writer-only", action="store_true", help="only the writer measurement (no servers)")
    parser.add_argument("--dir", type=Path, help="where recordings and logs go (default: a temporary folder "
                        "under $TMPDIR on the same disk)")
    args = parser.parse_args(argv)
    q = args.quick

    def pick(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if q else full)

    base = args.dir or Path(tempfile.mkdtemp(prefix="tutorwire-archive-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    return Options(sessions=pick(args.sessions, 80, 60), window_s=pick(args.seconds, 15.0, 4.0),
                   warmup_s=pick(args.warmup, 3.0, 1.5), repeats=pick(args.repeats, 6, 2),
                   profile_s=pick(args.profile_seconds, 30.0, 0.0),
                   max_pairs=pick(args.max_repeats, 2 * pick(args.repeats, 6, 2), pick(args.repeats, 6, 2)),
                   recovery_minutes=pick(args.recovery_minutes, 60.0, 60.0), base_dir=base, quick=q,
                   writer_sessions=pick(args.writer_sessions, 200, 100),
                   writer_seconds=pick(args.writer_seconds, 10.0, 4.0), writer_only=args.writer_only)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: fewer than 2 CPUs; the load shares the server's core", file=sys.stderr)
    if opts.writer_only:
        writer = measure_writer(opts.base_dir, opts.writer_sessions, opts.writer_seconds, opts.server_cpu)
        print(json.dumps({"writer": writer, "dir": str(opts.base_dir)}))
        return 0
    os.sched_setaffinity(0, {opts.load_cpu})  # this process and the generator stay off the server's core
    try:
        result = run(opts)
        result["writer"] = measure_writer(opts.base_dir, opts.writer_sessions, opts.writer_seconds, opts.server_cpu)
    finally:
        shutil.rmtree(opts.base_dir / "recordings", ignore_errors=True)
    result["dir"] = str(opts.base_dir)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
