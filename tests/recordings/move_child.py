"""A node's archiver in a process of its own, for tests/recordings/test_recording_move.py to kill.

``python -m tests.recordings.move_child ROOT SESSION EPOCH COUNT`` records a one-on-one session
into ROOT through the real ``Archiver``: the events of ``session_events`` (seq 1..COUNT) and a
tutor's 440 Hz voice, one packet per event, at a steady pace, printing ``flushed`` each time the
writer has fsynced. The test kills it with SIGKILL mid-session: the folder is left as a node's
death leaves it. The events are made here so that the test can replay the same ones, as the new
home node replays the room's Redis stream.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from recordings.archiver import Archiver
from tests.recordkit import opus_packets, tone
from wire import HAS_PRESSURE, Point, PointState, Role, encode, encode_points
from wire import messages as m
from wire.audio import AudioPacket

STARTED = 1_790_000_100.0
EVENT_MS = 20  # event seq n of the session's first part is at n * 20 ms
STROKE_EVENTS = 10  # a stroke: begin, 8 batches of points, end
POINTS_PER_BATCH = 3


def batch_points(stroke: int, batch: int) -> list[Point]:
    return [Point(100 * stroke + 7 * (3 * batch + i), 2000 + 5 * (3 * batch + i), t=4 * (3 * batch + i),
                  pressure=300 + batch) for i in range(POINTS_PER_BATCH)]


def session_event(seq: int, ms: int) -> tuple[m.Event, bytes]:
    """Event ``seq`` of the session at session time ``ms``: the tutor joins (1), the student (2),
    then the tutor's strokes of ``STROKE_EVENTS`` events each (cseq = seq)."""
    body: m.EventBody
    pid = 1
    if seq == 1:
        body = m.Presence("t-move", True, Role.TUTOR)
    elif seq == 2:
        pid, body = 2, m.Presence("s-move", True, Role.STUDENT)
    else:
        stroke, step = divmod(seq - 3, STROKE_EVENTS)
        if step == 0:
            body = m.StrokeBegin(seq, stroke + 1, 0, m.Tool.PEN, 0x224466FF, 20, HAS_PRESSURE, 5_000 + ms)
        elif step == STROKE_EVENTS - 1:
            body = m.StrokeEnd(seq, stroke + 1)
        else:
            state = PointState()
            for earlier in range(step - 1):  # the encoder's state runs on through the stroke
                encode_points(batch_points(stroke + 1, earlier), HAS_PRESSURE, state)
            pts = batch_points(stroke + 1, step - 1)
            body = m.StrokePoints(seq, stroke + 1, (step - 1) * POINTS_PER_BATCH, len(pts),
                                  encode_points(pts, HAS_PRESSURE, state))
    event = m.Event(seq, ms, pid, getattr(body, "cseq", 0), body)
    return event, encode(event)


def expected_points(last_seq: int) -> dict[int, list[tuple[int, int, int]]]:
    """The tutor's points by stroke in events 1..``last_seq`` (as ``session_event`` makes them)."""
    out: dict[int, list[tuple[int, int, int]]] = {}
    for seq in range(3, last_seq + 1):
        stroke, step = divmod(seq - 3, STROKE_EVENTS)
        out.setdefault(stroke + 1, [])
        if 0 < step < STROKE_EVENTS - 1:
            out[stroke + 1] += [(p.x, p.y, p.pressure) for p in batch_points(stroke + 1, step - 1)]
    return out


async def main(root: Path, session_id: str, epoch: int, count: int) -> None:
    archiver = Archiver(root, 0.05, wall_clock=lambda: STARTED)
    archiver.on_flush = lambda _s: print("flushed", flush=True)
    await archiver.start()
    recorder = archiver.open(session_id, epoch)
    voice = opus_packets(tone(440, 960 * count))
    for seq in range(1, count + 1):
        recorder.on_event(*session_event(seq, EVENT_MS * seq))
        recorder.on_audio(AudioPacket(1, seq, 0, EVENT_MS * seq, 960, voice[seq - 1]))
        if seq % 10 == 0:
            await asyncio.sleep(0.01)  # a live session's pace: the writer flushes as it goes
    print("fed", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
