"""Frames to messages and back: one msgpack array per frame, ``[type, field, ...]``.

``decode_frame`` is the only way bytes from the network become messages. It accepts a frame or
raises ``ProtocolError`` (never anything else), checking the frame size before unpacking and
every field's type and range after. ``encode`` is its inverse for every message.
Trailing fields beyond those a message defines are ignored, so later minor versions can add
fields at the end without breaking older peers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from . import messages as m
from .errors import ErrorCode, ProtocolError
from .ink import CHANNEL_FLAGS
from .limits import CLEAR_LAYERS_KEPT, Limits
from .opus import packet_samples
from .roles import ALL_RIGHTS

U32 = 2**32 - 1
U53 = 2**53 - 1
MAX_PAGE_ID = 65_535
MAX_WIDTH = 65_535
MIN_BYTES_PER_POINT = 3
MAX_BYTES_PER_POINT = 5 + 5 + 11 + 11  # two varints and two escaped pairs
QUESTION_MAX_BYTES = 2048  # a class question's text in UTF-8 (the room bounds it in characters too)
MAX_LATE_PACKETS = 50  # packets in one AudioLate: a second of 20 ms packets


# --- encoding ---------------------------------------------------------------------------------


def _op_fields(op: m.Op) -> list[Any]:
    if isinstance(op, m.StrokeBegin):
        return [op.stroke, op.page, int(op.tool), op.color, op.width, op.flags, op.device_t0]
    if isinstance(op, m.StrokePoints):
        return [op.stroke, op.start, op.count, op.blob]
    if isinstance(op, m.Undo):
        return [op.stroke, op.author] if op.author else [op.stroke]
    if isinstance(op, m.StrokeEnd):
        return [op.stroke]
    if isinstance(op, m.Mute):
        return [op.muted]
    if isinstance(op, m.Hand):
        return [op.raised]
    if isinstance(op, m.Question):
        return [op.text]
    if isinstance(op, (m.Stage, m.Moderate)):
        return [op.pid, int(op.action)]
    if isinstance(op, m.Grant):
        return [op.pid, int(op.rights)]
    return [op.page]  # PageAdd, PageSwitch, Clear, Restore


_OP_TYPES: dict[type, m.MsgType] = {
    m.StrokeBegin: m.MsgType.STROKE_BEGIN,
    m.StrokePoints: m.MsgType.STROKE_POINTS,
    m.StrokeEnd: m.MsgType.STROKE_END,
    m.PageAdd: m.MsgType.PAGE_ADD,
    m.PageSwitch: m.MsgType.PAGE_SWITCH,
    m.Undo: m.MsgType.UNDO,
    m.Clear: m.MsgType.CLEAR,
    m.Restore: m.MsgType.RESTORE,
    m.Grant: m.MsgType.GRANT,
    m.Mute: m.MsgType.MUTE,
    m.Hand: m.MsgType.HAND,
    m.Question: m.MsgType.QUESTION,
    m.Stage: m.MsgType.STAGE,
    m.Moderate: m.MsgType.MODERATE,
}


def event_body(body: m.EventBody) -> list[Any]:
    """The array an ``Event`` carries for ``body`` (an op without its cseq, or a presence)."""
    if isinstance(body, m.Presence):
        presence = [m.MsgType.PRESENCE, body.user_id, body.online, int(body.role)]
        return [*presence, True] if body.left else presence  # trailing, left out when false
    if isinstance(body, m.Roster):
        if not 1 <= len(body.changes) <= m.ROSTER_MAX_CHANGES:
            raise ValueError(f"a Roster holds 1..{m.ROSTER_MAX_CHANGES} changes")
        return [m.MsgType.ROSTER, [[c.pid, c.user_id, c.online, int(c.role)] for c in body.changes]]
    return [_OP_TYPES[type(body)], *_op_fields(body)]


def _snapshot_stroke(s: m.SnapshotStroke) -> list[Any]:
    stroke = [s.pid, s.stroke, int(s.tool), s.color, s.width, s.flags, s.device_t0, s.count, s.blob, s.ended]
    return [*stroke, s.layer] if s.layer else stroke  # a cleared layer's: trailing, left out when 0


def _roster_entry(e: m.RosterEntry) -> list[Any]:
    entry = [e.pid, e.user_id, int(e.role), e.online, e.muted, e.current_page]
    if e.hand_ms or e.stage or e.granted:  # a class's hand and stage, then grants: trailing, left out when 0
        entry += [e.hand_ms, e.stage]
        if e.granted:
            entry.append(int(e.granted))
    return entry


def to_wire(msg: m.Message) -> list[Any]:
    """The msgpack array for ``msg``."""
    if type(msg) is m.Event and type(msg.body) is m.StrokePoints:  # the hot path: ink to its receivers
        b = msg.body
        return [_EVENT, msg.seq, msg.session_ms, msg.pid, msg.cseq, [_POINTS, b.stroke, b.start, b.count, b.blob]]
    if type(msg) in _OP_TYPES:
        op: Any = msg
        return [_OP_TYPES[type(msg)], op.cseq, *_op_fields(op)]
    if isinstance(msg, m.Event):
        return [m.MsgType.EVENT, msg.seq, msg.session_ms, msg.pid, msg.cseq, event_body(msg.body)]
    if isinstance(msg, m.Join):
        return [m.MsgType.JOIN, msg.version, msg.token, int(msg.role), msg.last_seq, msg.epoch]
    if isinstance(msg, m.Welcome):
        return [m.MsgType.WELCOME, msg.version, msg.pid, int(msg.role), msg.user_id, msg.session_id,
                msg.session_ms, msg.last_seq, msg.acked_cseq, int(msg.mode), msg.page_count, msg.epoch,
                msg.rate_per_s, msg.rate_burst, int(msg.rights),
                [_roster_entry(e) for e in msg.roster]]
    if isinstance(msg, m.Snapshot):
        snapshot = [m.MsgType.SNAPSHOT, msg.seq, msg.page, [_snapshot_stroke(s) for s in msg.strokes]]
        if msg.part or not msg.last:  # trailing fields, left out for a page in one part
            snapshot += [msg.part, msg.last]
        return snapshot
    if isinstance(msg, m.Ping):
        return [m.MsgType.PING, msg.ts]
    if isinstance(msg, m.Pong):
        return [m.MsgType.PONG, msg.echo, msg.ts]
    if isinstance(msg, m.Ack):
        return [m.MsgType.ACK, msg.cseq, msg.seq]
    if isinstance(msg, m.Error):
        return [m.MsgType.ERROR, msg.code, msg.message, msg.ref]
    if isinstance(msg, m.Audio):
        return [m.MsgType.AUDIO, msg.seq, msg.capture_ts, msg.payload]
    if isinstance(msg, m.AudioRelay):
        return [m.MsgType.AUDIO_RELAY, msg.pid, msg.seq, msg.capture_ts, msg.session_ms, msg.payload]
    if isinstance(msg, m.AudioLate):
        if not 1 <= len(msg.packets) <= MAX_LATE_PACKETS:
            raise ValueError(f"AudioLate holds 1..{MAX_LATE_PACKETS} packets")
        return [m.MsgType.AUDIO_LATE, [[p.seq, p.capture_ts, p.payload] for p in msg.packets]]
    if isinstance(msg, m.RtcOffer):
        return [m.MsgType.RTC_OFFER, msg.sdp]
    if isinstance(msg, m.RtcAnswer):
        return [m.MsgType.RTC_ANSWER, msg.sdp]
    if isinstance(msg, m.RtcCandidate):
        return [m.MsgType.RTC_CANDIDATE, msg.candidate, msg.sdp_mid, msg.sdp_mline_index]
    if isinstance(msg, m.RtcClose):
        return [m.MsgType.RTC_CLOSE]
    raise TypeError(f"not a protocol message: {msg!r}")


def pack(array: list[Any]) -> bytes:
    frame: bytes = msgpack.packb(array, use_bin_type=True)
    return frame


def encode(msg: m.Message) -> bytes:
    """One frame for ``msg``."""
    return pack(to_wire(msg))


# --- decoding ---------------------------------------------------------------------------------


class _Fields:
    """Reads the fields of one frame in order, refusing wrong types and ranges."""

    __slots__ = ("items", "pos", "what")

    def __init__(self, items: Sequence[Any], what: str) -> None:
        self.items = items
        self.pos = 1
        self.what = what

    def _next(self, name: str) -> Any:
        if self.pos >= len(self.items):
            raise ProtocolError(ErrorCode.BAD_FRAME, f"{self.what} is missing field {name!r}")
        value = self.items[self.pos]
        self.pos += 1
        return value

    def integer(self, name: str, lo: int, hi: int, code: ErrorCode = ErrorCode.INVALID_FIELD) -> int:
        value = self._next(name)
        if type(value) is not int:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{self.what}.{name} must be an integer")
        if not lo <= value <= hi:
            raise ProtocolError(code, f"{self.what}.{name} = {value} is outside {lo}..{hi}")
        return value

    def text(self, name: str, max_bytes: int) -> str:
        value = self._next(name)
        if type(value) is not str:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{self.what}.{name} must be a string")
        if len(value.encode()) > max_bytes:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{self.what}.{name} is longer than {max_bytes}")
        return value

    def binary(self, name: str) -> bytes:
        value = self._next(name)
        if type(value) is not bytes:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{self.what}.{name} must be binary")
        return value

    def flag(self, name: str) -> bool:
        value = self._next(name)
        if type(value) is not bool:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{self.what}.{name} must be a boolean")
        return value

    def array(self, name: str) -> list[Any]:
        value = self._next(name)
        if type(value) is not list:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{self.what}.{name} must be an array")
        return value

    def pid(self) -> int:
        return self.integer("pid", 1, U32)

    def role(self) -> m.Role:
        return m.Role(self.integer("role", 0, max(m.Role)))

    def tool(self) -> m.Tool:
        return m.Tool(self.integer("tool", 0, max(m.Tool)))

    def rights(self, name: str = "rights") -> m.Rights:
        return m.Rights(self.integer(name, 0, int(ALL_RIGHTS)))

    def more(self) -> bool:
        """Whether a trailing field follows."""
        return self.pos < len(self.items)


def _op(kind: m.MsgType, f: _Fields, cseq: int, limits: Limits) -> m.Op:
    if kind is m.MsgType.STROKE_BEGIN:
        return m.StrokeBegin(cseq, f.integer("stroke", 0, U32), f.integer("page", 0, MAX_PAGE_ID),
                             f.tool(), f.integer("color", 0, U32), f.integer("width", 1, MAX_WIDTH),
                             f.integer("flags", 0, CHANNEL_FLAGS), f.integer("device_t0", 0, U53))
    if kind is m.MsgType.STROKE_POINTS:
        stroke = f.integer("stroke", 0, U32)
        start = f.integer("start", 0, U32)
        count = f.integer("count", 1, U32)
        if count > limits.max_points_per_message:
            raise ProtocolError(ErrorCode.TOO_MANY_POINTS,
                                f"{count} points exceed {limits.max_points_per_message} a message")
        blob = f.binary("blob")
        if not count * MIN_BYTES_PER_POINT <= len(blob) <= count * MAX_BYTES_PER_POINT:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"{len(blob)} bytes cannot hold {count} points")
        return m.StrokePoints(cseq, stroke, start, count, blob)
    if kind is m.MsgType.STROKE_END:
        return m.StrokeEnd(cseq, f.integer("stroke", 0, U32))
    if kind is m.MsgType.UNDO:
        stroke = f.integer("stroke", 0, U32)
        return m.Undo(cseq, stroke, f.integer("author", 0, U32) if f.more() else 0)
    if kind is m.MsgType.MUTE:
        return m.Mute(cseq, f.flag("muted"))
    if kind is m.MsgType.HAND:
        return m.Hand(cseq, f.flag("raised"))
    if kind is m.MsgType.QUESTION:
        return m.Question(cseq, f.text("text", QUESTION_MAX_BYTES))
    if kind is m.MsgType.STAGE:
        return m.Stage(cseq, f.pid(), m.StageAction(f.integer("action", 0, max(m.StageAction))))
    if kind is m.MsgType.MODERATE:
        return m.Moderate(cseq, f.integer("pid", 0, U32), m.ModAction(f.integer("action", 0, max(m.ModAction))))
    if kind is m.MsgType.GRANT:
        return m.Grant(cseq, f.pid(), f.rights())
    page = f.integer("page", 0, MAX_PAGE_ID)
    if kind is m.MsgType.PAGE_ADD:
        return m.PageAdd(cseq, page)
    if kind is m.MsgType.PAGE_SWITCH:
        return m.PageSwitch(cseq, page)
    if kind is m.MsgType.RESTORE:
        return m.Restore(cseq, page)
    return m.Clear(cseq, page)


_OP_KINDS = frozenset(_OP_TYPES.values())
_EVENT, _POINTS = int(m.MsgType.EVENT), int(m.MsgType.STROKE_POINTS)
_KINDS = {int(kind): kind for kind in m.MsgType}


def _typed(items: Any, what: str) -> tuple[m.MsgType, _Fields]:
    """The type and fields of an array that starts with a message type; refuses anything else."""
    if type(items) is not list or not items or type(items[0]) is not int:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"{what} must be a msgpack array starting with a type")
    kind = _KINDS.get(items[0])
    if kind is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown {what} type {items[0]}")
    return kind, _Fields(items, kind.name.lower())


def _event_body(items: Any, limits: Limits) -> m.EventBody:
    kind, f = _typed(items, "event body")
    if kind is m.MsgType.PRESENCE:
        presence = m.Presence(f.text("user_id", limits.max_string_bytes), f.flag("online"), f.role())
        return m.Presence(presence.user_id, presence.online, presence.role, f.flag("left")) if f.more() else presence
    if kind is m.MsgType.ROSTER:
        return m.Roster(_roster_changes(f.array("changes"), limits))
    if kind not in _OP_KINDS:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{kind.name} cannot be an event body")
    return _op(kind, f, 0, limits)


def _roster_changes(items: list[Any], limits: Limits) -> tuple[m.RosterChange, ...]:
    if not 1 <= len(items) <= m.ROSTER_MAX_CHANGES:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"roster.changes holds 1..{m.ROSTER_MAX_CHANGES} changes")
    changes = []
    for item in items:
        if type(item) is not list:
            raise ProtocolError(ErrorCode.BAD_FRAME, "a roster change is [pid, user_id, online, role]")
        f = _Fields([None, *item], "roster change")
        changes.append(m.RosterChange(f.pid(), f.text("user_id", limits.max_string_bytes), f.flag("online"), f.role()))
    return tuple(changes)


def _roster(items: list[Any], limits: Limits) -> tuple[m.RosterEntry, ...]:
    roster = []
    for item in items:
        if type(item) is not list:
            raise ProtocolError(ErrorCode.BAD_FRAME, "roster entry must be an array")
        f = _Fields([None, *item], "roster entry")
        entry = m.RosterEntry(f.pid(), f.text("user_id", limits.max_string_bytes), f.role(),
                              f.flag("online"), f.flag("muted"), f.integer("current_page", 0, MAX_PAGE_ID))
        if f.more():  # a class's hand and stage, then grants
            hand_ms, stage = f.integer("hand_ms", 0, U53), f.integer("stage", 0, 2)
            granted = f.rights("granted") if f.more() else m.Rights.NONE
            entry = m.RosterEntry(entry.pid, entry.user_id, entry.role, entry.online, entry.muted,
                                  entry.current_page, hand_ms, stage, granted)
        roster.append(entry)
    return tuple(roster)


def _snapshot_strokes(items: list[Any], limits: Limits) -> tuple[m.SnapshotStroke, ...]:
    strokes = []
    for item in items:
        if type(item) is not list:
            raise ProtocolError(ErrorCode.BAD_FRAME, "snapshot stroke must be an array")
        f = _Fields([None, *item], "snapshot stroke")
        strokes.append(m.SnapshotStroke(
            f.pid(), f.integer("stroke", 0, U32), f.tool(), f.integer("color", 0, U32),
            f.integer("width", 1, MAX_WIDTH), f.integer("flags", 0, CHANNEL_FLAGS),
            f.integer("device_t0", 0, U53), f.integer("count", 0, limits.max_points_per_stroke),
            f.binary("blob"), f.flag("ended"), f.integer("layer", 0, CLEAR_LAYERS_KEPT) if f.more() else 0))
    return tuple(strokes)


def _message(kind: m.MsgType, f: _Fields, limits: Limits) -> m.Message:
    if kind in _OP_KINDS:
        cseq = f.integer("cseq", 1, U53)
        try:
            return _op(kind, f, cseq, limits)
        except ProtocolError as exc:
            exc.ref = cseq  # the client drops the refused op from its outbox by this
            raise
    if kind is m.MsgType.EVENT:
        return m.Event(f.integer("seq", 1, U53), f.integer("session_ms", 0, U53), f.pid(),
                       f.integer("cseq", 0, U53), _event_body(f._next("body"), limits))
    if kind is m.MsgType.JOIN:
        return m.Join(f.integer("version", 0, 65_535), f.text("token", limits.max_token_bytes),
                      f.role(), f.integer("last_seq", 0, U53), f.integer("epoch", 0, U53))
    if kind is m.MsgType.WELCOME:
        return m.Welcome(
            f.integer("version", 0, 65_535), f.pid(), f.role(), f.text("user_id", limits.max_string_bytes),
            f.text("session_id", limits.max_string_bytes), f.integer("session_ms", 0, U53),
            f.integer("last_seq", 0, U53), f.integer("acked_cseq", 0, U53),
            m.CatchUp(f.integer("mode", 0, max(m.CatchUp))), f.integer("page_count", 1, MAX_PAGE_ID + 1),
            f.integer("epoch", 0, U53), f.integer("rate_per_s", 1, U32), f.integer("rate_burst", 1, U32),
            m.Rights(f.integer("rights", 0, int(ALL_RIGHTS))), _roster(f.array("roster"), limits))
    if kind is m.MsgType.SNAPSHOT:
        snapshot = m.Snapshot(f.integer("seq", 0, U53), f.integer("page", 0, MAX_PAGE_ID),
                              _snapshot_strokes(f.array("strokes"), limits))
        if f.more():  # a page in parts
            return m.Snapshot(snapshot.seq, snapshot.page, snapshot.strokes, f.integer("part", 0, U32), f.flag("last"))
        return snapshot
    if kind is m.MsgType.PING:
        return m.Ping(f.integer("ts", -U53, U53))
    if kind is m.MsgType.PONG:
        return m.Pong(f.integer("echo", -U53, U53), f.integer("ts", -U53, U53))
    if kind is m.MsgType.ACK:
        return m.Ack(f.integer("cseq", 0, U53), f.integer("seq", 0, U53))
    if kind is m.MsgType.ERROR:
        return m.Error(f.integer("code", 0, 65_535), f.text("message", 4_096), f.integer("ref", 0, U53))
    if kind is m.MsgType.AUDIO:
        return m.Audio(f.integer("seq", 0, U32), f.integer("capture_ts", 0, U53), _opus(f.binary("payload")))
    if kind is m.MsgType.AUDIO_RELAY:
        return m.AudioRelay(f.pid(), f.integer("seq", 0, U32), f.integer("capture_ts", 0, U53),
                            f.integer("session_ms", 0, U53), _opus(f.binary("payload")))
    if kind is m.MsgType.AUDIO_LATE:
        return m.AudioLate(_late_packets(f.array("packets")))
    if kind is m.MsgType.RTC_OFFER:
        return m.RtcOffer(f.text("sdp", limits.max_sdp_bytes))
    if kind is m.MsgType.RTC_ANSWER:
        return m.RtcAnswer(f.text("sdp", limits.max_sdp_bytes))
    if kind is m.MsgType.RTC_CANDIDATE:
        return m.RtcCandidate(f.text("candidate", 1024), f.text("sdp_mid", 64), f.integer("sdp_mline_index", 0, 255))
    if kind is m.MsgType.RTC_CLOSE:
        return m.RtcClose()
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{kind.name} is not a frame of its own")


def _late_packets(items: list[Any]) -> tuple[m.LatePacket, ...]:
    if not 1 <= len(items) <= MAX_LATE_PACKETS:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"audio_late.packets holds 1..{MAX_LATE_PACKETS} packets")
    packets = []
    for item in items:
        if type(item) is not list:
            raise ProtocolError(ErrorCode.BAD_FRAME, "a late packet is [seq, capture_ts, payload]")
        f = _Fields([None, *item], "late packet")
        packets.append(m.LatePacket(f.integer("seq", 0, U32), f.integer("capture_ts", 0, U53),
                                    _opus(f.binary("payload"))))
    return tuple(packets)


def _opus(payload: bytes) -> bytes:
    packet_samples(payload)  # refuses what is not a well-formed Opus packet
    return payload


def decode_frame(frame: bytes, limits: Limits) -> m.Message:
    """The message in ``frame``, or ``ProtocolError`` with the reason it is refused."""
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE, f"frame of {len(frame)} bytes exceeds {limits.max_frame_bytes}"
        )
    try:
        items = msgpack.unpackb(
            frame, raw=False, use_list=True, strict_map_key=True, max_str_len=limits.max_frame_bytes,
            max_bin_len=limits.max_frame_bytes, max_array_len=limits.max_frame_bytes,
            max_map_len=0, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many kinds for malformed input; all mean garbage
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame is not valid msgpack ({type(exc).__name__})") from None
    if type(items) is list and len(items) >= 6 and items[0] == _STROKE_POINTS and type(items[0]) is int:
        points = _stroke_points(items, limits)  # the hot path: ink, checked without a _Fields
        if points is not None:
            return points
    if type(items) is list and len(items) >= 4 and items[0] == _AUDIO and type(items[0]) is int:
        audio = _audio(items)  # the audio hot path, as for ink
        if audio is not None:
            return audio
    kind, f = _typed(items, "frame")
    return _message(kind, f, limits)


_STROKE_POINTS = int(m.MsgType.STROKE_POINTS)
_AUDIO = int(m.MsgType.AUDIO)


def _stroke_points(items: list[Any], limits: Limits) -> m.StrokePoints | None:
    """A well-formed ``StrokePoints`` as ``_op`` checks it, or ``None`` for anything else (the
    general path then refuses it with its own error)."""
    _, cseq, stroke, start, count, blob = items[:6]
    if (type(cseq) is int and type(stroke) is int and type(start) is int and type(count) is int
            and type(blob) is bytes and 1 <= cseq <= U53 and 0 <= stroke <= U32 and 0 <= start <= U32
            and 1 <= count <= limits.max_points_per_message and count <= U32
            and count * MIN_BYTES_PER_POINT <= len(blob) <= count * MAX_BYTES_PER_POINT):
        return m.StrokePoints(cseq, stroke, start, count, blob)
    return None


def _audio(items: list[Any]) -> m.Audio | None:
    """A well-formed ``Audio`` as ``_message`` checks it (``ProtocolError`` for a payload that is
    not Opus), or ``None`` for a field of the wrong type or range (the general path refuses it)."""
    _, seq, capture_ts, payload = items[:4]
    if (type(seq) is int and type(capture_ts) is int and type(payload) is bytes and 0 <= seq <= U32
            and 0 <= capture_ts <= U53):
        packet_samples(payload)
        return m.Audio(seq, capture_ts, payload)
    return None


Decoder = Callable[[bytes, Limits], m.Message]
