"""The archiver: a ``SessionRecorder`` per live room on the event loop, and one writer thread per
archiver that does every disk operation of every recording.

Nothing here touches the disk on the event loop. ``Archiver.open`` returns a recorder at once;
its ``on_event``, ``on_audio`` and ``on_clock`` append one tuple to the archiver's queue (O(1),
well under a microsecond). The writer thread takes the queue every ``drain_s`` (at once for an
open or a close), does the work (the folder, the log records, Ogg pages, the manifest) through
``RecordingFiles``, and every ``flush_s`` writes out and fsyncs what each recording buffered: a
server killed with SIGKILL loses at most ``flush_s + drain_s`` of a recording, and the next
``Archiver.start`` recovers it (``recovery.recover_all``).

The queue is bounded by ``max_backlog_bytes`` (payload bytes not yet taken by the writer, over
all recordings). A recorder that would go beyond it stops recording (``failure`` says why) and
the session goes on; so does a recorder whose files cannot be written, or that a bug hits. A
recording must never take the live session down with it.

``Archiver.close(recorder, reason)`` queues the recording's end at once and returns a future that
is done when the manifest says ``complete`` on disk (the recorder's ``done`` is set then too).

``Archiver.resume`` is ``open`` for a room this node took over from another (its session moved):
it goes on with the folder the old node wrote (``resume.py``). Reading and repairing that folder
takes a while (about a second for a 12-minute session), so one resumer thread does it, one folder
at a time (a node taking over a dead node's many rooms must not starve the event loop with as
many threads), trying again later a folder whose old writer still holds it; meanwhile the writer
keeps the recorder's items aside (they still count towards the bound) and does them in order
once the files are ready.

A recorder's lifecycle (``RecorderState``, changed on the event loop only)::

    open ──> closing ──> closed
      └──> failed ──┘
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path

from wire import messages as m
from wire.audio import AudioPacket

from .layout import LOG_NAME
from .recording import DEFAULT_SYNC, RecordingFiles, SyncConfig
from .recovery import recover_all
from .resume import LOCK_POLL_S, MoveRequest, busy, try_resume

log = logging.getLogger("tutorwire.archiver")
__all__ = ["LOG_NAME", "Archiver", "RecorderState", "SessionRecorder", "SyncConfig"]

DRAIN_S = 0.02  # how often the writer takes the queue
MAX_BACKLOG_BYTES = 64 << 20  # about 20 s of 200 sessions' ink and voice
ITEM_BYTES = 64  # what a queued item costs beyond its payload, for the bound
SETTLE_S = 10.0
# The writer hands the GIL back to the event loop every this many items (time.sleep(0)) rather
# than keeping it for the interpreter's 5 ms switch interval: measured with bench/archive.py
# --writer-only (200 rooms on one core), the loop's 4 ms ticks came p99 4-5 ms late instead of 7-9.
YIELD_EVERY = 256
RESUME_LOCK_WAIT_S = 30.0  # how long a resume waits for the old node to let go of the folder


class RecorderState(Enum):
    OPEN = "open"  # taking input
    FAILED = "failed"  # stopped taking input (``failure`` says why); still to be closed
    CLOSING = "closing"  # close() was called: the writer finalizes it
    CLOSED = "closed"  # final


TRANSITIONS: dict[RecorderState, frozenset[RecorderState]] = {
    RecorderState.OPEN: frozenset({RecorderState.FAILED, RecorderState.CLOSING}),
    RecorderState.FAILED: frozenset({RecorderState.CLOSING}),
    RecorderState.CLOSING: frozenset({RecorderState.CLOSED}),
    RecorderState.CLOSED: frozenset(),
}


class IllegalRecorderTransition(RuntimeError):
    """A recorder state change its lifecycle does not allow (a bug in the caller)."""


# What the writer is asked to do: (recorder, op, argument, argument).
_OPEN, _EVENT, _AUDIO, _CLOCK, _STOP, _CLOSE, _QUIT, _LATE, _STROKE_DEVICE, _RESUME = range(10)
_Item = tuple["SessionRecorder | None", int, object, object]


class SessionRecorder:
    """One room's recording, as the event loop sees it. Create with ``Archiver.open``."""

    def __init__(self, archiver: Archiver, folder: Path, session_id: str, epoch: int, started_unix: float) -> None:
        self.archiver = archiver
        self.folder = folder
        self.session_id = session_id
        self.epoch = epoch
        self.started_unix = started_unix
        self.state = RecorderState.OPEN
        self.failure: str | None = None
        self.clock_samples: collections.Counter[int] = collections.Counter()  # on_clock calls by pid
        # The last event seq the log holds on disk (fsynced), set by the writer thread after each
        # flush: a room's Redis stream can be trimmed up to it (an int, read on the loop as it is).
        self.durable_seq = 0
        self.done = asyncio.Event()  # set once the recording is final on disk (or given up)
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def accepting(self) -> bool:
        return self.state is RecorderState.OPEN

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def _move(self, new: RecorderState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise IllegalRecorderTransition(f"a recorder that is {self.state.value} cannot become {new.value}")
        self.state = new

    # -- what the room tells it (on the event loop; O(1), no I/O) ----------------------------------

    def on_event(self, event: m.Event, frame: bytes) -> None:
        if self.state is RecorderState.OPEN:
            self.archiver._put(self, _EVENT, event, frame, len(frame))

    def on_audio(self, packet: AudioPacket) -> None:
        if self.state is RecorderState.OPEN:
            self.archiver._put(self, _AUDIO, packet, None, len(packet.payload))

    def on_stroke_device(self, pid: int, stroke: int, dev: str) -> None:
        """Stroke ``stroke`` of ``pid`` is written on its device ``dev`` (a second device's ink
        is mapped with that device's clock)."""
        if self.state is RecorderState.OPEN:
            self.archiver._put(self, _STROKE_DEVICE, pid, (stroke, dev), 0)

    def on_late_audio(self, packet: AudioPacket) -> None:
        """A packet too old to have been played live (``AudioLate``): recorded at its capture
        time, marked late, in the speaker's late stream."""
        if self.state is RecorderState.OPEN:
            self.archiver._put(self, _LATE, packet, None, len(packet.payload))

    def on_clock(self, pid: int, session_ms: int, offset_ms: float, rtt_ms: float, drift_ppm: float = 0.0,
                 dev: str = "") -> None:
        """Participant ``pid``'s clock model at ``session_ms`` (of its device ``dev``): its device
        clock minus the session clock, and its drift; ``rtt_ms`` is the round trip of the
        measurement it came with."""
        if self.state is RecorderState.OPEN:
            self.clock_samples[pid] += 1
            self.archiver._put(self, _CLOCK, pid, (session_ms, offset_ms, rtt_ms, drift_ppm, dev), 0)

    def _fail(self, why: str) -> None:
        """Stop taking input (on the loop). The recording is still closed as usual later."""
        if self.failure is None:
            self.failure = why
        if self.state is RecorderState.OPEN:
            self._move(RecorderState.FAILED)

    def _finished(self) -> None:
        if self.state is not RecorderState.CLOSED:
            self._move(RecorderState.CLOSED)
        self.done.set()
        if not self._closed.done():
            self._closed.set_result(None)


class Archiver:
    """All recorders of this process and their writer thread. ``start`` it (on the event loop
    that will use it) before ``open``; ``stop`` closes every recording still open."""

    def __init__(self, root: Path, flush_s: float, wall_clock: Callable[[], float] = time.time, *,
                 drain_s: float = DRAIN_S, max_backlog_bytes: int = MAX_BACKLOG_BYTES,
                 sync: SyncConfig = DEFAULT_SYNC, resume_lock_wait_s: float = RESUME_LOCK_WAIT_S) -> None:
        self.root = root
        self.resume_lock_wait_s = resume_lock_wait_s
        self.sync = sync
        self.flush_s = flush_s
        self.drain_s = min(drain_s, flush_s)
        self.max_backlog_bytes = max_backlog_bytes
        self.wall_clock = wall_clock
        self.recorders: dict[str, SessionRecorder] = {}  # open (or failed) ones, by folder name
        self.closing: dict[str, asyncio.Future[None]] = {}  # being finalized, by folder name
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_bytes = 0  # written on the loop only
        self._writer: _Writer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_flush: Callable[[float], None] | None = None  # each write-out's seconds (metrics; writer thread)

    @property
    def written_bytes(self) -> int:
        """Payload bytes the writer has taken since the start (it grows; for metrics)."""
        return self._writer.taken_bytes if self._writer else 0

    @property
    def backlog_bytes(self) -> int:
        """Payload bytes queued and not yet taken by the writer."""
        return self._queued_bytes - (self._writer.taken_bytes if self._writer else 0)

    async def start(self) -> None:
        """Recover what a crash left open (off the loop), then start the writer thread."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        reports = await asyncio.to_thread(recover_all, self.root, self.wall_clock())
        for report in reports:
            log.warning("recovered an interrupted recording: %s", report)
        self._loop = asyncio.get_running_loop()
        self._writer = _Writer(self)
        self._writer.start()

    def open(self, session_id: str, epoch: int) -> SessionRecorder:
        """A recorder for a new room; returns at once (the writer creates the files). Never raises
        for the disk: a recording that cannot be created fails later (``failure``), unrecorded."""
        if self._writer is None:
            raise RuntimeError("Archiver.open before Archiver.start")
        name = f"{session_id}-{epoch}"
        recorder = SessionRecorder(self, self.root / name, session_id, epoch, self.wall_clock())
        self.recorders[name] = recorder
        self._put(recorder, _OPEN, None, None, 0, wake=True)
        return recorder

    def resume(self, session_id: str, epoch: int, moved_from: str, moved_to: str, *,
               started_unix: float | None = None, durable_seq: int | None = None) -> SessionRecorder:
        """A recorder for a room this node took over from node ``moved_from`` (this node is
        ``moved_to``), at this moment; returns at once, like ``open``. The writer goes on with the
        folder ``{session_id}-{epoch}`` where the old node left it (repaired as recovery would,
        whatever its status), or creates it if it is not there (recordings directories not
        shared), and notes the move in the log and the manifest's ``moves``. Feed it every event
        the room's stream holds, from seq 1, then the live ones: events at or below the last seq
        already logged are skipped. ``started_unix`` is the session's start (its wall clock at
        session clock 0), for a folder that has to be created; the folder's own start wins.
        ``durable_seq``: the last event the room's stream held when it was taken over; events the
        old node logged after it never reached Redis, are not in the rebuilt room (the clients
        resend those ops, numbered anew), and are cut from the log here."""
        if self._writer is None:
            raise RuntimeError("Archiver.resume before Archiver.start")
        name = f"{session_id}-{epoch}"
        now = self.wall_clock()
        started = now if started_unix is None else started_unix
        recorder = SessionRecorder(self, self.root / name, session_id, epoch, started)
        self.recorders[name] = recorder
        move = MoveRequest(session_id, epoch, moved_from, moved_to, now, started, durable_seq)
        self._put(recorder, _RESUME, move, None, 0, wake=True)
        return recorder

    def close(self, recorder: SessionRecorder, reason: str) -> asyncio.Future[None]:
        """Finalize the recording: queued at once, done (the returned future, ``recorder.done``)
        once its manifest says ``complete`` on disk, or once it has been given up on. Await it or
        not; closing again returns the same future."""
        if recorder.state in (RecorderState.OPEN, RecorderState.FAILED):
            recorder._move(RecorderState.CLOSING)
            self.recorders.pop(recorder.folder.name, None)
            self.closing[recorder.folder.name] = recorder._closed
            recorder._closed.add_done_callback(lambda _: self.closing.pop(recorder.folder.name, None))
            if self._writer is None:  # stopped: nothing is left to write
                recorder._finished()
            else:
                self._put(recorder, _CLOSE, reason, None, 0, wake=True)
        return recorder._closed

    async def settle(self, recording_ids: Iterable[str] | None = None, timeout_s: float = SETTLE_S) -> None:
        """Wait until the recordings being closed (those of ``recording_ids``, or all) are final,
        so that a reader sees them ``complete``; at most ``timeout_s``."""
        wanted = self.closing if recording_ids is None else {i: self.closing[i] for i in recording_ids
                                                              if i in self.closing}
        if wanted:
            await asyncio.wait(list(wanted.values()), timeout=timeout_s)

    async def stop(self) -> None:
        """Close every recording still open, then stop the writer."""
        if self._writer is None:
            return
        pending = [self.close(r, "server shut down") for r in list(self.recorders.values())]
        pending += list(self.closing.values())
        if pending:
            await asyncio.wait(pending)
        writer, self._writer = self._writer, None
        self._queue.append((None, _QUIT, None, None))
        writer.wake.set()
        await asyncio.to_thread(writer.join)

    # -- the queue -------------------------------------------------------------------------------

    def _put(self, recorder: SessionRecorder, op: int, a: object, b: object, size: int, wake: bool = False) -> None:
        writer = self._writer
        if writer is None:  # stopped: nothing more is written
            recorder._fail("the archiver has stopped")
            return
        size += ITEM_BYTES
        if not wake and self._queued_bytes - writer.taken_bytes + size > self.max_backlog_bytes:
            why = f"the disk fell behind by more than {self.max_backlog_bytes} bytes"
            log.error("recording %s stops: %s; the session goes on unrecorded from here", recorder.folder.name, why)
            recorder._fail(why)
            self._queued_bytes += ITEM_BYTES
            self._queue.append((recorder, _STOP, why, None))
            writer.wake.set()
            return
        self._queued_bytes += size
        self._queue.append((recorder, op, a, b))
        if wake:
            writer.wake.set()

    def _from_writer(self, callback: Callable[..., None], *args: object) -> None:
        """Run ``callback(*args)`` on the event loop (called by the writer thread)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(callback, *args)


class _Resuming:
    """A resumed recording whose files a thread is making ready, and the items waiting for them."""

    def __init__(self, move: MoveRequest, deadline: float) -> None:
        self.move = move
        self.deadline = deadline  # monotonic: give up on a folder still held by another process then
        self.ready = threading.Event()
        self.files: RecordingFiles | None = None
        self.error: Exception | None = None
        self.items: list[tuple[int, object, object]] = []


class _Resumer(threading.Thread):
    """Makes resumed recordings' folders ready (``resume.try_resume``), one at a time, for the
    writer; a folder another process still holds goes to the back and is tried again."""

    def __init__(self, writer: _Writer) -> None:
        super().__init__(name="tutorwire-archiver-resume", daemon=True)
        self.writer = writer
        self.root, self.sync = writer.archiver.root, writer.archiver.sync
        self._pending: collections.deque[_Resuming] = collections.deque()
        self._more = threading.Condition()
        self._stopping = False

    def stop(self) -> None:
        """End the thread (the writer is quitting: nothing is waiting for it any more)."""
        with self._more:
            self._stopping = True
            self._more.notify()

    def add(self, resuming: _Resuming) -> None:
        with self._more:
            self._pending.append(resuming)
            self._more.notify()

    def run(self) -> None:
        waiting = 0  # folders in a row found still held: once all are, wait a little
        while True:
            with self._more:
                while not self._pending and not self._stopping:
                    self._more.wait()
                if self._stopping:
                    return
                resuming = self._pending.popleft()
                left = len(self._pending)
            try:
                files = try_resume(self.root, resuming.move, self.sync)
                if files is None and time.monotonic() >= resuming.deadline:
                    raise busy(resuming.move, self.writer.archiver.resume_lock_wait_s)
            except Exception as exc:
                resuming.error, files = exc, None
            else:
                if files is None:
                    waiting += 1
                    with self._more:
                        self._pending.append(resuming)
                        if waiting > left:  # every folder here is held: a file lock tells nobody when it goes
                            waiting = 0
                            self._more.wait(LOCK_POLL_S)
                    continue
            waiting = 0
            resuming.files = files
            resuming.ready.set()
            self.writer.wake.set()


class _Writer(threading.Thread):
    """The archiver's writer: the only thread that touches its recordings' files."""

    def __init__(self, archiver: Archiver) -> None:
        super().__init__(name="tutorwire-archiver", daemon=True)
        self.archiver = archiver
        self.wake = threading.Event()
        self.taken_bytes = 0  # written by this thread only
        self.files: dict[SessionRecorder, RecordingFiles | None] = {}  # None: could not be written
        self._stopped: set[SessionRecorder] = set()  # further input is dropped; finalized at close
        self._dirty: set[SessionRecorder] = set()  # written to since the last fsync
        self._resuming: dict[SessionRecorder, _Resuming] = {}  # files being made ready off this thread
        self._resumer: _Resumer | None = None  # started at the first resume

    def run(self) -> None:
        archiver = self.archiver
        now = time.monotonic()
        next_flush = now + archiver.flush_s
        while True:
            self.wake.wait(max(0.0, min(next_flush, now + archiver.drain_s) - time.monotonic()))
            self.wake.clear()
            if not self._drain():
                if self._resumer is not None:
                    self._resumer.stop()
                return
            if self._resuming:
                self._resumed()
            now = time.monotonic()
            if now >= next_flush:
                self._flush_all()
                next_flush = now + archiver.flush_s

    def _drain(self) -> bool:
        """Do everything queued; False once told to quit."""
        queue = self.archiver._queue
        taken = 0
        try:
            n = 0
            while queue:
                recorder, op, a, b = queue.popleft()
                if recorder is None:
                    return False
                resuming = self._resuming.get(recorder)
                if resuming is not None:  # its files are not ready: kept, still counted as queued
                    resuming.items.append((op, a, b))
                    continue
                taken += ITEM_BYTES + self._do(recorder, op, a, b)
                n += 1
                if YIELD_EVERY and n % YIELD_EVERY == 0:
                    self.taken_bytes += taken
                    taken = 0
                    time.sleep(0)
        finally:
            self.taken_bytes += taken
        return True

    def _do(self, recorder: SessionRecorder, op: int, a: object, b: object) -> int:
        """One item; returns the payload bytes it stood for (as ``_put`` counted them)."""
        size = 0
        if op == _EVENT:
            assert isinstance(b, bytes)
            size = len(b)
        elif op == _AUDIO or op == _LATE:
            assert isinstance(a, AudioPacket)
            size = len(a.payload)
        if op == _OPEN:
            self._open(recorder)
            return 0
        if op == _RESUME:
            assert isinstance(a, MoveRequest)
            self._resume(recorder, a)
            return 0
        if op == _CLOSE:
            assert isinstance(a, str)
            self._close(recorder, a)
            return 0
        files = self.files.get(recorder)
        if files is None or recorder in self._stopped:  # it failed: drop what was queued before the loop heard
            return size
        try:
            if op == _EVENT:
                assert isinstance(a, m.Event) and isinstance(b, bytes)
                files.event(a, b)
            elif op == _AUDIO:
                assert isinstance(a, AudioPacket)
                files.audio_packet(a)
            elif op == _LATE:
                assert isinstance(a, AudioPacket)
                files.late_audio_packet(a)
            elif op == _STROKE_DEVICE:
                assert isinstance(a, int) and isinstance(b, tuple)
                files.stroke_device(a, *b)
            elif op == _CLOCK:
                assert isinstance(a, int) and isinstance(b, tuple)
                files.clock(a, *b)
            elif op == _STOP:
                files.note({"stopped": a})
                self._stopped.add(recorder)
            self._dirty.add(recorder)
        except Exception as exc:  # a full disk, a bug: this recording stops, the others and the session go on
            self._broken(recorder, files, exc)
        return size

    def _open(self, recorder: SessionRecorder) -> None:
        try:
            files = RecordingFiles.create(self.archiver.root, recorder.session_id, recorder.epoch,
                                          recorder.started_unix, self.archiver.sync)
        except Exception as exc:
            log.exception("cannot record session %s; it goes on unrecorded", recorder.session_id)
            self.files[recorder] = None
            self.archiver._from_writer(recorder._fail, f"cannot create the recording: {exc}")
            return
        self.files[recorder] = files

    def _resume(self, recorder: SessionRecorder, move: MoveRequest) -> None:
        resuming = self._resuming[recorder] = _Resuming(move, time.monotonic() + self.archiver.resume_lock_wait_s)
        if self._resumer is None:
            self._resumer = _Resumer(self)
            self._resumer.start()
        self._resumer.add(resuming)

    def _resumed(self) -> None:
        """Take the resumed recordings whose files are ready, and do what waited for them."""
        for recorder, resuming in list(self._resuming.items()):
            if not resuming.ready.is_set():
                continue
            del self._resuming[recorder]
            if resuming.files is None:
                exc = resuming.error
                log.error("cannot go on with recording %s; the session goes on unrecorded", recorder.folder.name,
                          exc_info=exc)
                self.files[recorder] = None
                self.archiver._from_writer(recorder._fail, f"cannot resume the recording: {exc}")
            else:
                self.files[recorder] = resuming.files
                recorder.durable_seq = resuming.files.last_seq  # synced by the resume
                log.info("recording %s goes on here (moved from %s)", recorder.folder.name, resuming.move.moved_from)
            taken = 0
            for op, a, b in resuming.items:
                taken += ITEM_BYTES + self._do(recorder, op, a, b)
            self.taken_bytes += taken

    def _broken(self, recorder: SessionRecorder, files: RecordingFiles, exc: Exception) -> None:
        log.error("recording %s failed; the session goes on unrecorded from here", recorder.folder.name,
                  exc_info=exc)
        self.archiver._from_writer(recorder._fail, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, OSError):  # writing again would fail again: leave it to recovery
            files.abandon()
            self.files[recorder] = None
        else:  # keep what is good: the recording is finalized as usual when it is closed
            with contextlib.suppress(Exception):
                files.note({"stopped": f"{type(exc).__name__}: {exc}"})
            self._stopped.add(recorder)

    def _close(self, recorder: SessionRecorder, reason: str) -> None:
        files = self.files.pop(recorder, None)
        self._dirty.discard(recorder)
        self._stopped.discard(recorder)
        if files is not None:
            self._close_files(recorder, files, reason)
        self.archiver._from_writer(recorder._finished)

    def _close_files(self, recorder: SessionRecorder, files: RecordingFiles, reason: str) -> None:
        try:
            files.finish(reason)
        except Exception:  # left as it is on disk; the next start recovers it as interrupted
            log.exception("recording %s could not be finalized", recorder.folder.name)
            files.abandon()

    def _flush_all(self) -> None:
        started, flushed = time.monotonic(), bool(self._dirty)
        for recorder in list(self._dirty):
            files = self.files.get(recorder)
            if files is None:
                continue
            try:
                files.flush(fsync=True)
                recorder.durable_seq = files.last_seq
            except Exception as exc:
                self._broken(recorder, files, exc)
        self._dirty.clear()
        if flushed and self.archiver.on_flush is not None:
            self.archiver.on_flush(time.monotonic() - started)
