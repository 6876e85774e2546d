"""Flat tables for analysis: every ink point as CSV, every event as JSON.

``points_csv`` has one row per point of every stroke (removed strokes included, flagged), times
on both clocks (see ``strokes``); its ``seat`` column is the author's label (``model.py``: the
role in a one-on-one session), so the columns are those of protocol-1 recordings.

``events_json`` has the whole recording except the audio itself: every event with its fields (a
``StrokePoints`` with its points decoded), a summary of each speaker's audio, the clock offsets
and the participants. Each event and clock offset names its participant twice: ``seat`` (the
label, as protocol-1 exports had it) and ``pid``; ``roster`` lists every participant with pid,
role, user id and label.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import Any

from wire import Limits, PointState, ProtocolError, decode_points
from wire import messages as m
from wire.opus import packet_samples

from ..ogg import SILENCE_PACKETS
from .cells import text_cell
from .model import AudioTrack, InkEvent, RecordingData
from .strokes import ms_text, replay

POINT_COLUMNS = ("session_id", "seat", "page", "stroke", "point", "x", "y", "pressure", "tilt_x", "tilt_y",
                 "device_ms", "session_ms", "removed")
SILENCE_PACKET = b"\xf8\xff\xfe"  # the 20 ms Opus silence the recorder fills gaps with
FILL_PACKETS = frozenset(p for p, _ in SILENCE_PACKETS)  # and the 10, 5 and 2.5 ms ones
_TRUSTED = Limits(max_points_per_message=2**31, max_points_per_stroke=2**31)
_EVENT_NAMES: dict[type, str] = {
    m.StrokeBegin: "stroke_begin", m.StrokePoints: "stroke_points", m.StrokeEnd: "stroke_end",
    m.PageAdd: "page_add", m.PageSwitch: "page_switch", m.Undo: "undo", m.Clear: "clear", m.Restore: "restore",
    m.Grant: "grant", m.Mute: "mute",
    m.Presence: "presence", m.Hand: "hand", m.Question: "question", m.Stage: "stage", m.Moderate: "moderate",
    m.Roster: "roster",
}


def points_csv(data: RecordingData) -> str:
    """One row per point, strokes in the order they began; ``removed`` is 0 or 1. Text cells are
    made inert for spreadsheets (``cells.text_cell``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(POINT_COLUMNS)
    session = text_cell(data.session_id)
    for s in replay(data):
        label = text_cell(s.label)
        for p in s.points:
            writer.writerow((session, label, s.page, s.stroke, p.index, p.x, p.y, p.pressure,
                             p.tilt_x, p.tilt_y, p.device_ms, ms_text(p.session_ms), int(s.removed)))
    return out.getvalue()


def _event(ev: InkEvent, label: str, states: dict[tuple[int, int], tuple[int, PointState]]) -> dict[str, Any]:
    body = ev.body
    row: dict[str, Any] = {"session_ms": ev.session_ms, "seat": label, "pid": ev.pid, "type": _EVENT_NAMES[type(body)]}
    if isinstance(body, m.StrokeBegin):
        states[(ev.pid, body.stroke)] = (body.flags, PointState())
        row.update(stroke=body.stroke, page=body.page, tool=body.tool.name.lower(), color=f"#{body.color:08x}",
                   width=body.width, flags=body.flags, device_t0=body.device_t0)
    elif isinstance(body, m.StrokePoints):
        row.update(stroke=body.stroke, start=body.start, count=body.count,
                   blob=base64.b64encode(body.blob).decode("ascii"))
        known = states.get((ev.pid, body.stroke))
        if known is not None:  # [x, y, t, pressure, tilt_x, tilt_y]; t is ms since device_t0
            try:
                pts = decode_points(body.blob, body.count, known[0], known[1], _TRUSTED)
            except ProtocolError:  # only in a damaged log; the raw blob is still there
                pts = []
            row["points"] = [[p.x, p.y, p.t, p.pressure, p.tilt_x, p.tilt_y] for p in pts]
    elif isinstance(body, m.StrokeEnd | m.Undo):
        row["stroke"] = body.stroke
        if isinstance(body, m.Undo) and body.author:  # another participant's stroke (UNDO_OTHERS)
            row["author"] = body.author
    elif isinstance(body, m.PageAdd | m.PageSwitch | m.Clear | m.Restore):
        row["page"] = body.page
    elif isinstance(body, m.Grant):  # rights by name: "CLEAR", "CLEAR|UNDO_OTHERS", "NONE"
        row.update(target=body.pid, rights=body.rights.name)
    elif isinstance(body, m.Mute):
        row["muted"] = body.muted
    elif isinstance(body, m.Hand):
        row["raised"] = body.raised
    elif isinstance(body, m.Question):
        row["text"] = body.text
    elif isinstance(body, m.Stage | m.Moderate):
        row.update(target=body.pid, action=body.action.name.lower())
    elif isinstance(body, m.Roster):  # a class's viewers coming and going, coalesced
        row["changes"] = [{"pid": c.pid, "user_id": c.user_id, "online": c.online, "role": c.role.label}
                          for c in body.changes]
    else:
        row.update(user_id=body.user_id, online=body.online, role=body.role.label)
        if body.left:
            row["left"] = True
    return row


def audio_summary(track: AudioTrack) -> dict[str, Any]:
    """Packet counts and extent of one speaker's audio, without decoding it."""
    ends = [g for _, g in track.packets]
    summary: dict[str, Any] = {
        "packets": len(track.packets),
        "silence_packets": sum(1 for p, _ in track.packets if p in FILL_PACKETS),
        "bytes": sum(len(p) for p, _ in track.packets),
        "end_granule": max(ends, default=0),
        "duration_ms": max(ends, default=0) / 48,
    }
    if track.late:  # its late stream (AudioLate), only where there is one
        late = [(p, g) for p, g in track.late if p not in FILL_PACKETS]
        summary["late"] = {"packets": len(late), "bytes": sum(len(p) for p, _ in late),
                           "first_ms": (late[0][1] - packet_samples(late[0][0])) / 48 if late else 0,
                           "end_granule": track.late[-1][1]}
    return summary


def event_dicts(data: RecordingData) -> list[dict[str, Any]]:
    """Every event as a JSON-ready dict, points decoded (for the replay API and ``events_json``)."""
    states: dict[tuple[int, int], tuple[int, PointState]] = {}
    return [_event(ev, data.label(ev.pid), states) for ev in data.events]


def roster(data: RecordingData) -> list[dict[str, Any]]:
    """Every participant: pid, role, user id and export label, in ``RecordingData.people`` order."""
    return [{"pid": pid, "role": p.role.label, "user_id": p.user_id, "label": data.label(pid)}
            for pid in data.people() if (p := data.participants.get(pid)) is not None]


def events_json(data: RecordingData) -> str:
    """The recording as one JSON object (see the module docstring), indented for reading."""
    doc = {
        "format": 1,
        "session_id": data.session_id,
        "started_unix": data.started_unix,
        "duration_ms": data.duration_ms,
        "status": data.status,
        "participants": data.user_ids(),
        "roster": roster(data),
        "events": event_dicts(data),
        "audio": {data.label(pid): audio_summary(data.audio[pid]) for pid in data.people() if pid in data.audio},
        "clock_offsets": [{"seat": data.label(c.pid), "pid": c.pid, "at_ms": c.at_ms, "offset_ms": c.offset_ms,
                           "rtt_ms": c.rtt_ms} for c in data.clocks],
    }
    if data.moves:  # only for a session that moved, so that other exports stay as they were
        doc["moves"] = [move.to_doc() for move in data.moves]
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
