"""A session's room, sans-I/O: admits participants, applies ops, numbers events, keeps the op log.

The I/O shell calls ``admit`` when a participant joins, ``apply`` for each op it sends, and fans
the returned frame out to everyone else; ``catch_up`` tells a (re)joining participant what it
missed. Time is passed in as ``now`` (seconds on a monotonic clock); nothing here reads a clock or
touches a socket.

Participants get ids (``pid``) 1, 2, 3, ... in the order they first join, kept for the room's
life and across reconnects. What a participant may do is its role's ``Rights`` in the table of
the room's kind; an op its rights do not allow is refused with ``FORBIDDEN`` (1020).

A participant may be connected from several devices at once (the tutor's browser and the pen
gateway paired with it; ``docs/protocol.md`` 3.6): each device numbers its own ops (``cseq`` per
device: ``apply``/``refuse``/``welcome`` take the device id, ``""`` for the first one), and one
device at a time holds the participant's microphone (``take_mic``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from wire import (
    CLASS_RIGHTS,
    CLEAR_LAYERS_KEPT,
    GRANTABLE,
    ONE_ON_ONE_RIGHTS,
    CatchUp,
    CloseCode,
    ErrorCode,
    FatalProtocolError,
    Limits,
    ProtocolError,
    Rights,
    Role,
    RoomKind,
    encode,
)
from wire import messages as m
from wire.ink import validate_points
from wire.ratelimit import TokenBucket

from . import classops
from .floor import Floor, FloorLimits, StageState
from .pages import Page, Stroke, StrokeKey
from .snapshot import Captured, capture, page_frames

# A device that sends audio after this long without takes the participant's microphone; one whose
# holder has been silent this long takes it too (``Room.take_mic``).
MIC_IDLE_S = 1.0

# What a StrokeBegin costs against ``max_room_ink_bytes``: the stroke's record, its place in the
# page and its id, which the room keeps (a rough upper bound of their memory, in bytes).
STROKE_BYTES = 256

RIGHTS_TABLES: Mapping[RoomKind, Mapping[Role, Rights]] = {RoomKind.ONE_ON_ONE: ONE_ON_ONE_RIGHTS,
                                                            RoomKind.CLASS: CLASS_RIGHTS}

# The right each op needs. Mute needs AUDIO: muting a microphone one may not publish means nothing.
OP_RIGHTS: Mapping[type, Rights] = {
    m.StrokeBegin: Rights.INK, m.StrokePoints: Rights.INK, m.StrokeEnd: Rights.INK, m.Undo: Rights.INK,
    m.PageAdd: Rights.PAGES, m.PageSwitch: Rights.PAGES, m.Clear: Rights.CLEAR, m.Restore: Rights.CLEAR,
    m.Grant: Rights.MODERATE, m.Mute: Rights.AUDIO,
    m.Hand: Rights.ASK, m.Question: Rights.ASK, m.Stage: Rights.NONE, m.Moderate: Rights.MODERATE,
}
_STAGE_NUMBERS = {StageState.OFF: 0, StageState.INVITED: 1, StageState.ON: 2}


@dataclass(slots=True)
class ParticipantState:
    pid: int
    role: Role
    rights: Rights
    user_id: str = ""
    last_cseq: int = 0  # of its first device ("")
    current_page: int = 0
    online: bool = False
    muted: bool = False  # while muted, the server forwards none of the participant's audio
    held_muted: bool = False  # muted by a class's presenter: its own Mute(False) is refused
    device_cseqs: dict[str, int] = field(default_factory=dict)  # last_cseq of each other device
    mic: str | None = None  # the device whose audio is heard (take_mic)
    mic_heard: dict[str, float] = field(default_factory=dict)  # by device: when its last packet came
    granted: Rights = Rights.NONE  # beyond its role's (``Grant``): a subset of GRANTABLE its role lacks

    def entry(self, hand_ms: int = 0, stage: int = 0) -> m.RosterEntry:
        return m.RosterEntry(self.pid, self.user_id, self.role, self.online, self.muted, self.current_page,
                             hand_ms, stage, self.granted)


@dataclass(frozen=True, slots=True)
class Coalesced:
    """A class viewer's coming or going, held for the room's next ``Roster`` event
    (``Room.roster_due``, ``Room.flush_roster``) instead of a ``Presence`` event of its own."""

    pid: int
    online: bool


@dataclass(frozen=True, slots=True)
class Applied:
    """An event the room accepted, and its frame (encoded once) for every other participant."""

    event: m.Event
    frame: bytes


class Room:
    def __init__(self, session_id: str, limits: Limits, oplog_max_events: int, now: float,
                 epoch: int = 1, kind: RoomKind = RoomKind.ONE_ON_ONE, *,
                 oplog_max_bytes: int = 1 << 62, max_ink_bytes: int = 1 << 62, max_joins_per_minute: int = 0,
                 snapshot_part_bytes: int = 1 << 62, max_viewers: int = 1000,
                 floor_limits: FloorLimits | None = None, roster_interval_s: float = 1.0) -> None:
        """``oplog_max_events`` and ``oplog_max_bytes`` bound the op log (the oldest events go
        first; a client behind them gets a snapshot); ``max_ink_bytes`` bounds the ink the room
        takes over its life (point bytes, plus ``STROKE_BYTES`` a stroke; past it ink ops get 1021);
        ``max_joins_per_minute`` bounds each participant's joins (0: no bound); a page snapshot
        goes in Snapshot frames of at most about ``snapshot_part_bytes``. A class room admits at
        most ``max_viewers`` viewers and keeps its floor (hands, questions, stage) within
        ``floor_limits``; its viewers' comings and goings go out as one ``Roster`` event at most
        every ``roster_interval_s``."""
        if kind not in RIGHTS_TABLES:
            raise ValueError(f"no rights table for rooms of kind {kind.name}")
        self.session_id = session_id
        self.epoch = epoch  # distinguishes this life of the room from an earlier one with the same id
        self.kind = kind
        self.rights_table = RIGHTS_TABLES[kind]
        self.limits = limits
        self.started_at = now
        self.seq = 0
        self._last_ms = 0
        self.pages: list[Page] = [Page()]
        self.strokes: dict[StrokeKey, Stroke] = {}
        self._used_ids: set[StrokeKey] = set()
        self.participants: dict[int, ParticipantState] = {}
        self.log: deque[tuple[int, bytes]] = deque()
        self.oplog_max_events = oplog_max_events
        self.oplog_max_bytes = oplog_max_bytes
        self.log_bytes = 0  # frame bytes in the log
        self.max_ink_bytes = max_ink_bytes
        self.ink_bytes = 0  # ink taken so far (never decreases: undone ink was held until then)
        self.max_joins_per_minute = max_joins_per_minute
        self.snapshot_part_bytes = snapshot_part_bytes
        self._joins: dict[int, TokenBucket] = {}
        self.max_viewers = max_viewers
        self.floor = Floor(floor_limits or FloorLimits()) if kind is RoomKind.CLASS else None
        self.removed: set[str] = set()  # user ids a class's presenter removed: their joins are refused
        self.roster_interval_s = roster_interval_s
        self._roster_held: dict[int, None] = {}  # class viewers whose presence changed since the last Roster
        self._roster_next = now  # the next Roster may go at once: a lone join is not held back
        # Told of every event numbered and every cseq used up (several nodes: the journal writes
        # them to Redis); ``moved_cseqs`` holds the cseqs used since ``take_moved_cseqs``.
        self.on_change: Callable[[], None] | None = None
        self.moved_cseqs: dict[tuple[int, str], int] = {}

    # --- clock and numbering ------------------------------------------------------------------

    def session_ms(self, now: float) -> int:
        """Milliseconds since the room started; never goes backwards."""
        self._last_ms = max(self._last_ms, int((now - self.started_at) * 1000))
        return self._last_ms

    def _record(self, pid: int, body: m.EventBody, now: float) -> Applied:
        self.seq += 1
        event = m.Event(self.seq, self.session_ms(now), pid, getattr(body, "cseq", 0), body)
        frame = encode(event)
        self.log.append((self.seq, frame))
        self.log_bytes += len(frame)
        while len(self.log) > self.oplog_max_events or (self.log_bytes > self.oplog_max_bytes and len(self.log) > 1):
            self.log_bytes -= len(self.log.popleft()[1])
        if self.on_change is not None:
            self.on_change()
        return Applied(event, frame)

    # --- joining ------------------------------------------------------------------------------

    def admit(self, role: Role, user_id: str) -> ParticipantState:
        """The participant a join with ``role`` (already checked against the token) and
        ``user_id`` is: in a one-on-one room the one holding that role, created at its first
        join. A role the room's kind has no place for is refused with ``WRONG_SEAT`` (2004,
        close 4003), as a token for the wrong seat was in version 1."""
        rights = self.rights_table.get(role)
        if rights is None:
            raise FatalProtocolError(ErrorCode.WRONG_SEAT,
                                     f"a {self.kind.name.lower().replace('_', '-')} room has no {role.label}",
                                     CloseCode.FORBIDDEN)
        if self.kind is RoomKind.CLASS:
            return self._admit_to_class(role, rights, user_id)
        known = next((p for p in self.participants.values() if p.role is role), None)
        if known is None:
            pid = len(self.participants) + 1
            known = self.participants[pid] = ParticipantState(pid, role, rights)
        known.user_id = user_id
        return known

    def _admit_to_class(self, role: Role, rights: Rights, user_id: str) -> ParticipantState:
        """A class: one participant per user and role (a rejoin is the same pid); viewers up to
        ``max_viewers`` (``ROOM_FULL`` 2009, close 4012); a removed user is refused (2007, 4006)."""
        if user_id in self.removed:
            raise FatalProtocolError(ErrorCode.SESSION_ENDED, "you were removed from this class by its presenter",
                                     CloseCode.SESSION_ENDED)
        known = next((p for p in self.participants.values() if p.role is role and p.user_id == user_id), None)
        if known is not None:
            return known
        if role is Role.VIEWER:
            viewers = sum(1 for p in self.participants.values() if p.role is Role.VIEWER)
            if viewers >= self.max_viewers:
                raise FatalProtocolError(ErrorCode.ROOM_FULL, f"this class holds {self.max_viewers} viewers already",
                                         CloseCode.ROOM_FULL)
        elif any(p.role is role for p in self.participants.values()):
            raise FatalProtocolError(ErrorCode.ROOM_FULL, f"this class has its {role.label} already",
                                     CloseCode.ROOM_FULL)
        pid = len(self.participants) + 1
        known = self.participants[pid] = ParticipantState(pid, role, rights, user_id)
        return known

    def count_join(self, pid: int, now: float) -> None:
        """A join of participant ``pid`` at ``now``: more than ``max_joins_per_minute`` within a
        minute is refused with ``TOO_MANY_JOINS`` (2008, close 4007); the client waits and
        tries again."""
        if self.max_joins_per_minute <= 0:
            return
        bucket = self._joins.get(pid)
        if bucket is None:
            bucket = self._joins[pid] = TokenBucket(self.max_joins_per_minute / 60.0, self.max_joins_per_minute, now)
        if not bucket.take(now):
            raise FatalProtocolError(ErrorCode.TOO_MANY_JOINS,
                                     f"more than {self.max_joins_per_minute} joins a minute; wait and join again",
                                     CloseCode.TOO_MANY_JOINS)

    def pid_of(self, role: Role) -> int | None:
        return next((p.pid for p in self.participants.values() if p.role is role), None)

    def presence(self, pid: int, online: bool, now: float, left: bool = False) -> Applied | Coalesced:
        """``pid`` came online or went offline (``left``: by leaving, not by losing its link): a
        ``Presence`` event, or for a class's viewer a change held for the next ``Roster``
        (hundreds of viewers joining at once must not cost every viewer a frame per join)."""
        state = self.participants[pid]
        state.online = online
        if self.floor is not None and state.role is Role.VIEWER:
            self._roster_held[pid] = None
            return Coalesced(pid, online)
        return self._record(pid, m.Presence(state.user_id, online, state.role, left and not online), now)

    def roster_due(self) -> float | None:
        """When the held presence changes are to go out (``flush_roster``); None while none are held."""
        return self._roster_next if self._roster_held else None

    def flush_roster(self, now: float) -> list[Applied]:
        """The held changes as ``Roster`` events (each participant as it is now, at most
        ``ROSTER_MAX_CHANGES`` an event); none before ``roster_due()``. The next may go
        ``roster_interval_s`` later."""
        due = self.roster_due()
        if due is None or now < due:
            return []
        held = [self.participants[pid] for pid in self._roster_held]
        self._roster_held.clear()
        self._roster_next = now + self.roster_interval_s
        out = []
        for i in range(0, len(held), m.ROSTER_MAX_CHANGES):
            part = held[i : i + m.ROSTER_MAX_CHANGES]
            changes = tuple(m.RosterChange(p.pid, p.user_id, p.online, p.role) for p in part)
            out.append(self._record(part[0].pid, m.Roster(changes), now))
        return out

    def catch_up_mode(self, last_seq: int, epoch: int) -> CatchUp:
        """REPLAY when the log still holds every event after ``last_seq`` of this room's epoch,
        else SNAPSHOT (the client is too far behind, or its seqs belong to an earlier room)."""
        if last_seq and epoch != self.epoch:
            return CatchUp.SNAPSHOT
        first = self.log[0][0] if self.log else self.seq + 1
        if first - 1 <= last_seq <= self.seq:
            return CatchUp.REPLAY
        return CatchUp.SNAPSHOT

    def roster(self) -> tuple[m.RosterEntry, ...]:
        floor = self.floor
        if floor is None:
            return tuple(p.entry() for p in sorted(self.participants.values(), key=lambda p: p.pid))
        hands = {pid: int(at) for pid, at in floor.raised().items()}
        return tuple(p.entry(hands.get(p.pid, 0), _STAGE_NUMBERS[floor.stage(p.pid)])
                     for p in sorted(self.participants.values(), key=lambda p: p.pid))

    def rights_of(self, pid: int) -> Rights:
        """What ``pid`` may do now: its role's rights, a class viewer's stage rights, and what
        was granted to it."""
        state = self.participants[pid]
        own = state.rights if self.floor is None else self.floor.rights(pid, state.rights)
        return own | state.granted

    def welcome(self, pid: int, mode: CatchUp, now: float, dev: str = "") -> m.Welcome:
        state = self.participants[pid]
        return m.Welcome(m.PROTOCOL_VERSION, pid, state.role, state.user_id, self.session_id,
                         self.session_ms(now), self.seq, self.last_cseq(pid, dev), mode, len(self.pages), self.epoch,
                         max(1, int(self.limits.rate_messages_per_s)), self.limits.rate_burst,
                         self.rights_of(pid), self.roster())

    def catch_up(self, last_seq: int, mode: CatchUp) -> Iterator[bytes]:
        """The frames that bring a client from ``last_seq`` to now, as of this call: taken now,
        encoded as they are read (the caller may read them later, while the room goes on)."""
        if mode is CatchUp.REPLAY:
            return iter([frame for seq, frame in self.log if seq > last_seq])  # the log's own frames
        return self._snapshot(self.seq, capture(self.pages))  # each page's cleared layers first

    def _snapshot(self, seq: int, pages: list[list[Captured]]) -> Iterator[bytes]:
        for index, strokes in enumerate(pages):
            yield from page_frames(seq, index, strokes, self.snapshot_part_bytes)

    # --- ops ----------------------------------------------------------------------------------

    def may(self, pid: int, right: Rights) -> bool:
        return right in self.rights_of(pid)

    def last_cseq(self, pid: int, dev: str = "") -> int:
        """The highest cseq the room has processed from device ``dev`` of participant ``pid``."""
        state = self.participants[pid]
        return state.device_cseqs.get(dev, 0) if dev else state.last_cseq

    def _used(self, state: ParticipantState, dev: str, cseq: int) -> None:
        if dev:
            cseq = state.device_cseqs[dev] = max(state.device_cseqs.get(dev, 0), cseq)
        else:
            cseq = state.last_cseq = max(state.last_cseq, cseq)
        if self.on_change is not None:
            self.moved_cseqs[(state.pid, dev)] = cseq
            self.on_change()

    def take_moved_cseqs(self) -> dict[tuple[int, str], int]:
        out, self.moved_cseqs = self.moved_cseqs, {}
        return out

    def take_mic(self, pid: int, dev: str, now: float) -> bool:
        """Whether a packet device ``dev`` of ``pid`` sends at ``now`` is heard: one device at a time
        holds the participant's microphone, the one that most recently started sending (after
        ``MIC_IDLE_S`` without), or any that sends once the holder has been silent that long. The
        others' packets are dropped (neither forwarded nor recorded)."""
        state = self.participants[pid]
        heard = state.mic_heard
        last = heard.get(dev)
        holder = state.mic
        if (holder is None or last is None or now - last >= MIC_IDLE_S
                or now - heard.get(holder, -MIC_IDLE_S) >= MIC_IDLE_S):
            state.mic = holder = dev
        heard[dev] = now
        return holder == dev

    def apply(self, pid: int, op: m.Op, now: float, dev: str = "") -> Applied | None:
        """Apply one op from device ``dev`` of participant ``pid``. ``None`` for a resent op
        already applied.

        Raises ``ProtocolError`` (with ``ref`` set to the op's cseq) when the op is refused; a
        refused op still counts as processed, so a client must not resend it. Any other exception
        (a fault of the server) leaves the cseq unused, so the op, resent after the client
        resumes, is applied then.
        """
        state = self.participants[pid]
        if op.cseq <= self.last_cseq(pid, dev):
            return None
        try:
            needed = OP_RIGHTS[type(op)]
            if needed not in self.rights_of(pid):
                raise ProtocolError(ErrorCode.FORBIDDEN,
                                    f"a {state.role.label} may not send {type(op).__name__}"
                                    f" (needs the {needed.name} right)")
            if isinstance(op, m.ClassOp):
                if self.floor is None:
                    raise ProtocolError(ErrorCode.FORBIDDEN, f"{type(op).__name__} is for classes only")
                op = classops.check(self, self.floor, state, op, now)
            else:
                self._check(state, op)
        except ProtocolError as exc:
            self._used(state, dev, op.cseq)
            exc.ref = op.cseq
            raise
        self._used(state, dev, op.cseq)
        return self._record(pid, op, now)

    def refuse(self, pid: int, cseq: int, dev: str = "") -> None:
        """An op the codec refused still uses up its cseq, as one the room refuses does."""
        self._used(self.participants[pid], dev, cseq)

    def _check(self, state: ParticipantState, op: m.Op) -> None:
        """Validate ``op`` against the pages and apply its effect to them."""
        pid = state.pid
        if isinstance(op, m.StrokePoints):
            stroke = self._open_stroke(pid, op.stroke)
            if op.start != stroke.count:
                # an earlier batch was refused or lost: decoding this one would give wrong points
                raise ProtocolError(ErrorCode.STROKE_GAP, f"stroke {op.stroke} has {stroke.count} points, "
                                    f"not {op.start}; start a new stroke")
            if stroke.count + op.count > self.limits.max_points_per_stroke:
                raise ProtocolError(ErrorCode.TOO_MANY_POINTS,
                                    f"stroke {op.stroke} would pass {self.limits.max_points_per_stroke} points")
            self._take_ink(len(op.blob))
            validate_points(op.blob, op.count, stroke.flags, stroke.state, self.limits)
            stroke.blob += op.blob
            stroke.count += op.count
            self.ink_bytes += len(op.blob)
        elif isinstance(op, m.StrokeBegin):
            self._begin(pid, op)
        elif isinstance(op, m.StrokeEnd):
            self._open_stroke(pid, op.stroke).ended = True
        elif isinstance(op, m.Undo):
            author = op.author or pid
            if author != pid and Rights.UNDO_OTHERS not in self.rights_of(pid):
                raise ProtocolError(ErrorCode.FORBIDDEN, "undoing another participant's stroke needs the "
                                    "UNDO_OTHERS right")
            key = (author, op.stroke)
            undone = self.strokes.get(key)
            if undone is None:
                whose = "you have" if author == pid else f"participant {author} has"
                raise ProtocolError(ErrorCode.UNKNOWN_STROKE, f"{whose} no stroke {op.stroke} to undo")
            del self.strokes[key], self.pages[undone.page].strokes[key]
        elif isinstance(op, m.PageAdd):
            if op.page > len(self.pages):
                raise ProtocolError(ErrorCode.UNKNOWN_PAGE,
                                    f"page {op.page} would leave a gap after page {len(self.pages) - 1}")
            if op.page == len(self.pages):
                if len(self.pages) >= self.limits.max_pages:
                    raise ProtocolError(ErrorCode.PAGE_LIMIT, f"a session has at most {self.limits.max_pages} pages")
                self.pages.append(Page())
        elif isinstance(op, m.PageSwitch):
            self._page(op.page)
            state.current_page = op.page
        elif isinstance(op, m.Mute):
            if state.held_muted and not op.muted:
                raise ProtocolError(ErrorCode.FORBIDDEN, "the presenter muted you; wait to be unmuted")
            state.muted = op.muted
        elif isinstance(op, m.Clear):
            self._clear(self._page(op.page))
        elif isinstance(op, m.Restore):
            self._restore(op.page)
        elif isinstance(op, m.Grant):
            self._grant(state, op)

    def _clear(self, page: Page) -> None:
        """The page's strokes become its newest cleared layer (a stroke being drawn ends here);
        past ``CLEAR_LAYERS_KEPT`` layers the oldest is gone for good. Clearing an empty page
        changes nothing (a snapshot could not carry an empty layer)."""
        if not page.strokes:
            return
        for key, stroke in page.strokes.items():
            stroke.ended = True
            del self.strokes[key]
        page.cleared.append(page.strokes)
        page.strokes = {}
        if len(page.cleared) > CLEAR_LAYERS_KEPT:
            del page.cleared[0]

    def _restore(self, index: int) -> None:
        """The newest cleared layer of page ``index`` back, beneath what was drawn since."""
        page = self._page(index)
        if not page.cleared:
            raise ProtocolError(ErrorCode.NOTHING_TO_RESTORE, f"page {index} has no cleared ink to bring back")
        layer = page.cleared[-1]
        if len(layer) + len(page.strokes) > self.limits.max_strokes_per_page:
            raise ProtocolError(ErrorCode.STROKE_LIMIT, f"page {index} would hold more than "
                                f"{self.limits.max_strokes_per_page} strokes with its cleared ink back")
        page.cleared.pop()
        self.strokes.update(layer)
        layer.update(page.strokes)
        page.strokes = layer

    def _grant(self, state: ParticipantState, op: m.Grant) -> None:
        target = self.participants.get(op.pid)
        if op.rights & ~GRANTABLE:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"only {GRANTABLE.name} can be granted, not {op.rights.name}")
        if target is None or target is state:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"participant {op.pid} is not another participant of this room")
        if op.rights & target.rights:
            raise ProtocolError(ErrorCode.FORBIDDEN,
                                f"a {target.role.label} has {(op.rights & target.rights).name} by its role")
        target.granted = op.rights

    def _take_ink(self, size: int) -> None:
        if self.ink_bytes + size > self.max_ink_bytes:
            raise ProtocolError(ErrorCode.ROOM_INK_LIMIT,
                                f"this session holds {self.max_ink_bytes} bytes of ink already; no more ink is taken")

    def _page(self, index: int) -> Page:
        if index >= len(self.pages):
            raise ProtocolError(ErrorCode.UNKNOWN_PAGE, f"page {index} does not exist (add it first)")
        return self.pages[index]

    def _open_stroke(self, pid: int, stroke_id: int) -> Stroke:
        stroke = self.strokes.get((pid, stroke_id))
        if stroke is None or stroke.ended:
            raise ProtocolError(ErrorCode.UNKNOWN_STROKE, f"stroke {stroke_id} is not open")
        return stroke

    def _begin(self, pid: int, op: m.StrokeBegin) -> None:
        key = (pid, op.stroke)
        if key in self._used_ids:
            raise ProtocolError(ErrorCode.DUPLICATE_STROKE, f"stroke id {op.stroke} was used before")
        page = self._page(op.page)
        if len(page.strokes) >= self.limits.max_strokes_per_page:
            raise ProtocolError(ErrorCode.STROKE_LIMIT,
                                f"page {op.page} holds {self.limits.max_strokes_per_page} strokes already")
        self._take_ink(STROKE_BYTES)
        stroke = Stroke(pid, op.stroke, op.page, op.tool, op.color, op.width, op.flags, op.device_t0)
        self.ink_bytes += STROKE_BYTES
        self._used_ids.add(key)
        self.strokes[key] = stroke
        page.strokes[key] = stroke
