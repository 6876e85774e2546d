"""A research summary of one session, its timeline as SVG, and a CSV across sessions.

Talk time (voice activity, per speaker, on the decoded audio):

1. Frame energy: the mean square of each 20 ms frame (960 samples), in dB relative to full scale.
2. Adaptive noise floor: for each frame, the minimum of the energy (smoothed over 5 frames)
   within ``FLOOR_WINDOW_S`` either side of it, never below ``FLOOR_MIN_DBFS`` (digital silence
   would otherwise pull the floor to minus infinity). It follows the background level as it
   changes; speech always has pauses within a few seconds, so the floor stays beneath it.
3. A frame is active when its energy is ``THRESHOLD_DB`` above the floor and above
   ``ACTIVE_MIN_DBFS``.
4. Hangover: a segment stays open ``HANGOVER_MS`` after its last active frame; speech resuming
   within it joins the segment (the pause counts as talk). Offline we see what follows, so a
   hangover that nothing resumes is trimmed off: segments end at their last active frame.
   Segments shorter than ``MIN_SEGMENT_MS`` (clicks) are dropped.

Silences are the stretches of the session, at least ``SILENCE_MIN_MS`` long, in which nobody is
talking. Ink counts include strokes later undone or cleared (they were written); ``removed``
says how many. Per-minute lists count by session minute of each point (a stroke by its begin).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt

from .cells import text_cell
from .model import RecordingData
from .strokes import Stroke, pages_used, replay
from .wav import RATE, decode_track, session_samples

FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000
SMOOTH_FRAMES = 5
FLOOR_WINDOW_S = 3.0
FLOOR_MIN_DBFS = -80.0
THRESHOLD_DB = 12.0
ACTIVE_MIN_DBFS = -50.0
HANGOVER_MS = 300
MIN_SEGMENT_MS = 60
SILENCE_MIN_MS = 2000

Segments = list[tuple[int, int]]  # [start_ms, end_ms)


def frame_energy_db(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """The energy of each whole 20 ms frame in dBFS (a trailing partial frame is dropped)."""
    n = len(pcm) // FRAME
    frames = pcm[: n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
    energy: npt.NDArray[np.float64] = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)
    return energy


def _noise_floor(energy_db: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    power = 10.0 ** (energy_db / 10.0)
    smooth = np.convolve(power, np.ones(SMOOTH_FRAMES) / SMOOTH_FRAMES, mode="same")
    half = round(FLOOR_WINDOW_S * 1000 / FRAME_MS)
    padded = np.pad(smooth, half, mode="edge")
    running_min = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).min(axis=1)
    floor_db: npt.NDArray[np.float64] = np.maximum(10.0 * np.log10(running_min + 1e-12), FLOOR_MIN_DBFS)
    return floor_db


def voice_segments(pcm: npt.NDArray[np.int16]) -> Segments:
    """The stretches of ``pcm`` (mono s16, 48 kHz) judged to be speech, in ms."""
    energy = frame_energy_db(pcm)
    if not len(energy):
        return []
    active = (energy > _noise_floor(energy) + THRESHOLD_DB) & (energy > ACTIVE_MIN_DBFS)
    hang = HANGOVER_MS // FRAME_MS
    segments: list[list[int]] = []  # frame indices [first, last]
    for i in np.flatnonzero(active):
        if segments and i - segments[-1][1] <= hang + 1:
            segments[-1][1] = int(i)
        else:
            segments.append([int(i), int(i)])
    min_frames = math.ceil(MIN_SEGMENT_MS / FRAME_MS)
    return [(a * FRAME_MS, (b + 1) * FRAME_MS) for a, b in segments if b - a + 1 >= min_frames]


def _silences(talk: list[Segments], duration_ms: int) -> Segments:
    busy = sorted(seg for segs in talk for seg in segs)
    gaps: Segments = []
    cursor = 0
    for start, end in [*busy, (duration_ms, duration_ms)]:
        if start - cursor >= SILENCE_MIN_MS:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    return gaps


def _per_minute(times: list[float], minutes: int) -> list[int]:
    counts = [0] * minutes
    for t in times:
        counts[min(max(int(t // 60_000), 0), minutes - 1)] += 1
    return counts


def _speaker(pid: int, segments: Segments, strokes: list[Stroke], duration_ms: int) -> dict[str, Any]:
    mine = [s for s in strokes if s.pid == pid]
    points = sum(len(s.points) for s in mine)
    talk_ms = sum(b - a for a, b in segments)
    minutes = duration_ms / 60_000
    n_min = max(1, math.ceil(minutes))
    return {
        "talk_ms": talk_ms,
        "talk_share": talk_ms / duration_ms if duration_ms else 0.0,
        "turns": len(segments),
        "segments": [list(seg) for seg in segments],
        "strokes": len(mine),
        "strokes_removed": sum(1 for s in mine if s.removed),
        "points": points,
        "strokes_per_min": len(mine) / minutes if minutes else 0.0,
        "points_per_min": points / minutes if minutes else 0.0,
        "strokes_by_minute": _per_minute([s.begin_ms for s in mine], n_min),
        "points_by_minute": _per_minute([p.session_ms for s in mine for p in s.points], n_min),
        "ink": [[s.begin_ms, s.end_ms if s.end_ms is not None else s.begin_ms] for s in mine],
    }


def summary(data: RecordingData) -> dict[str, Any]:
    """The session's research summary: a JSON-ready dict (see the module docstring)."""
    strokes = replay(data)
    length = session_samples(data)
    duration_ms = max(data.duration_ms, length * 1000 // RATE)
    people = data.people()
    talk = {pid: voice_segments(decode_track(track, length)) if (track := data.audio.get(pid)) else []
            for pid in people}
    silences = _silences(list(talk.values()), duration_ms)
    return {
        "session_id": data.session_id,
        "started_unix": data.started_unix,
        "duration_ms": duration_ms,
        "status": data.status,
        "participants": data.user_ids(),
        "speakers": {data.label(pid): _speaker(pid, talk[pid], strokes, duration_ms) for pid in people},
        "silence": {"min_ms": SILENCE_MIN_MS, "count": len(silences), "total_ms": sum(b - a for a, b in silences),
                    "segments": [list(s) for s in silences]},
        "pages_used": pages_used(strokes),
        "vad": {"frame_ms": FRAME_MS, "threshold_db": THRESHOLD_DB, "floor_window_s": FLOOR_WINDOW_S,
                "floor_min_dbfs": FLOOR_MIN_DBFS, "active_min_dbfs": ACTIVE_MIN_DBFS,
                "hangover_ms": HANGOVER_MS, "min_segment_ms": MIN_SEGMENT_MS},
    }


# --- the timeline picture ---------------------------------------------------------------------

_LANE_H, _LEFT, _TOP, _WIDTH = 28, 90, 30, 900
_TALK_COLOR, _INK_COLOR = "#3b7dd8", "#e08a1e"


def timeline_svg(data: RecordingData, summ: dict[str, Any] | None = None) -> str:
    """An SVG timeline: a lane per speaker, talk above and writing below, minutes on the axis,
    a legend. Pass ``summ`` (from ``summary``) to avoid decoding the audio twice."""
    s = summ if summ is not None else summary(data)
    duration = max(int(s["duration_ms"]), 1)
    scale = _WIDTH / duration
    speakers: dict[str, dict[str, Any]] = s["speakers"]
    height = _TOP + len(speakers) * (_LANE_H + 12) + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LEFT + _WIDTH + 20}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f"<title>{escape(str(s['session_id']))}: who spoke and wrote when</title>",
    ]
    for i, (role, sp) in enumerate(speakers.items()):
        y = _TOP + i * (_LANE_H + 12)
        half = _LANE_H // 2
        parts.append(f'<g class="lane" data-speaker="{role}">')
        parts.append(f'<text x="8" y="{y + half + 4}">{role}</text>')
        parts.append(f'<rect x="{_LEFT}" y="{y}" width="{_WIDTH}" height="{_LANE_H}" fill="#f3f3f3"/>')
        for a, b in sp["segments"]:
            parts.append(f'<rect class="talk" x="{_LEFT + a * scale:.2f}" y="{y}" '
                         f'width="{max((b - a) * scale, 0.5):.2f}" height="{half - 1}" fill="{_TALK_COLOR}"/>')
        for a, b in sp["ink"]:
            parts.append(f'<rect class="ink" x="{_LEFT + a * scale:.2f}" y="{y + half + 1}" '
                         f'width="{max((b - a) * scale, 1.0):.2f}" height="{half - 1}" fill="{_INK_COLOR}"/>')
        parts.append("</g>")
    axis_y = _TOP + len(speakers) * (_LANE_H + 12)
    parts.append(f'<line x1="{_LEFT}" y1="{axis_y}" x2="{_LEFT + _WIDTH}" y2="{axis_y}" stroke="#444"/>')
    minutes = duration / 60_000
    step = next(st for st in (1, 2, 5, 10, 15, 30, 60, 120, 10**9) if minutes / st <= 12)
    for k in range(0, int(minutes) + 1, step):
        x = _LEFT + k * 60_000 * scale
        parts.append(f'<line x1="{x:.2f}" y1="{axis_y}" x2="{x:.2f}" y2="{axis_y + 5}" stroke="#444"/>')
        parts.append(f'<text x="{x:.2f}" y="{axis_y + 18}" text-anchor="middle">{k}</text>')
    parts.append(f'<text x="{_LEFT + _WIDTH}" y="{axis_y + 32}" text-anchor="end">minutes</text>')
    ly = axis_y + 28
    parts.append(f'<g class="legend"><rect x="{_LEFT}" y="{ly}" width="12" height="10" fill="{_TALK_COLOR}"/>'
                 f'<text x="{_LEFT + 16}" y="{ly + 9}">speaking</text>'
                 f'<rect x="{_LEFT + 90}" y="{ly}" width="12" height="10" fill="{_INK_COLOR}"/>'
                 f'<text x="{_LEFT + 106}" y="{ly + 9}">writing</text></g>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --- across sessions --------------------------------------------------------------------------

CORPUS_COLUMNS = (
    "session_id", "started_unix", "duration_ms", "status", "tutor_user", "student_user",
    "tutor_talk_ms", "student_talk_ms", "tutor_talk_share", "student_talk_share", "tutor_turns", "student_turns",
    "tutor_strokes", "student_strokes", "tutor_points", "student_points",
    "tutor_points_per_min", "student_points_per_min", "tutor_strokes_per_min", "student_strokes_per_min",
    "silence_count", "silence_total_ms", "pages_used",
)


def corpus_csv(summaries: list[dict[str, Any]]) -> str:
    """One row per session from ``summary`` dicts, columns ``CORPUS_COLUMNS`` (the tutor's and
    the student's cells are empty in a session without one, such as a class). Text cells are
    made inert for spreadsheets (``cells.text_cell``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CORPUS_COLUMNS)
    for s in summaries:
        sp, people = s["speakers"], s["participants"]
        row: list[Any] = [text_cell(s["session_id"]), s["started_unix"], s["duration_ms"], text_cell(s["status"]),
                          text_cell(people.get("tutor", "")), text_cell(people.get("student", ""))]
        for key in ("talk_ms", "talk_share", "turns", "strokes", "points", "points_per_min", "strokes_per_min"):
            row += [_cell(sp[who][key]) if who in sp else "" for who in ("tutor", "student")]
        row += [s["silence"]["count"], s["silence"]["total_ms"], len(s["pages_used"])]
        writer.writerow(row)
    return out.getvalue()


def _cell(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
