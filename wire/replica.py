"""A client's copy of a session's pages, sans-I/O: apply what the server sends, in order.

Used by the Python client helper (and the tests) to check that what arrived is what was sent.
``apply_local`` applies the client's own ops, which the server does not echo (``wire.rebase``
keeps the unacknowledged ones in the room's order around the events of others).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import messages as m
from .errors import ErrorCode, ProtocolError
from .ink import Point, PointState, decode_points
from .limits import CLEAR_LAYERS_KEPT, Limits

_TRUSTED = Limits(max_points_per_message=2**31, max_points_per_stroke=2**31)


@dataclass(slots=True)
class ReplicaStroke:
    pid: int
    stroke: int
    page: int
    tool: m.Tool
    color: int
    width: int
    flags: int
    device_t0: int
    points: list[Point] = field(default_factory=list)
    state: PointState = field(default_factory=PointState)
    ended: bool = False

    def add(self, blob: bytes, count: int) -> None:
        self.points += decode_points(blob, count, self.flags, self.state, _TRUSTED)


@dataclass(slots=True)
class ReplicaParticipant:
    user_id: str
    role: m.Role
    online: bool = False
    muted: bool = False
    current_page: int = 0
    hand_ms: int = 0  # a class: when the hand went up (session ms), 0 while down
    stage: int = 0  # a class: 0 off the stage, 1 invited, 2 on
    granted: m.Rights = m.Rights.NONE  # rights granted beyond its role's (Grant)
    left: bool = False  # offline because it left (Presence.left), not because its link dropped


StrokeKey = tuple[int, int]  # (pid, stroke id)


class Replica:
    """``pid`` is this client's participant id: 0 until the first ``Welcome`` gives it."""

    def __init__(self, pid: int = 0) -> None:
        self.pid = pid
        self.last_seq = 0
        self.epoch = 0  # the room epoch last_seq belongs to
        self.pages: list[dict[StrokeKey, ReplicaStroke]] = [{}]
        self.cleared: dict[int, list[dict[StrokeKey, ReplicaStroke]]] = {}  # by page: its cleared layers, oldest first
        self.participants: dict[int, ReplicaParticipant] = {}
        self.awaiting_pages: set[int] = set()  # snapshot pages announced but not yet received
        self.questions: list[tuple[int, str]] = []  # a class: (pid, text) as they came
        # a page whose snapshot parts are arriving: (page, next part, seq, strokes so far, their layers)
        self._partial: tuple[int, int, int, dict[StrokeKey, ReplicaStroke], dict[StrokeKey, int]] | None = None
        self.rebases = 0  # events applied beneath our unacknowledged ops (``wire.rebase``)

    def reset(self) -> None:
        """Forget the pages (they are not the room's): the next Join starts from seq 0."""
        self.pages, self.cleared, self.awaiting_pages, self._partial = [{}], {}, set(), None
        self.last_seq = 0

    # views by participant, for tests and tools
    @property
    def online(self) -> dict[int, bool]:
        return {pid: p.online for pid, p in self.participants.items()}

    @property
    def muted(self) -> dict[int, bool]:
        return {pid: p.muted for pid, p in self.participants.items()}

    @property
    def current_pages(self) -> dict[int, int]:
        return {pid: p.current_page for pid, p in self.participants.items()}

    def pid_of(self, role: m.Role) -> int | None:
        """The id of the (first) participant with ``role``, if the replica knows one."""
        return next((pid for pid, p in self.participants.items() if p.role is role), None)

    def strokes(self, pid: int | None = None) -> list[ReplicaStroke]:
        return [s for page in self.pages for s in page.values() if pid is None or s.pid == pid]

    def welcome(self, welcome: m.Welcome) -> None:
        self.pid = welcome.pid
        self.epoch = welcome.epoch
        self.participants = {e.pid: ReplicaParticipant(e.user_id, e.role, e.online, e.muted, e.current_page,
                                                       e.hand_ms, e.stage, e.granted)
                             for e in welcome.roster}
        self._partial = None
        if welcome.mode is m.CatchUp.SNAPSHOT:
            self.pages = [{} for _ in range(welcome.page_count)]
            self.cleared = {}
            self.awaiting_pages = set(range(welcome.page_count))
            # The pages are gone until the snapshot is whole: a drop before then must resume
            # from nothing, never replay onto empty pages.
            self.last_seq = 0 if self.awaiting_pages else welcome.last_seq

    def snapshot(self, snap: m.Snapshot) -> None:
        """Apply one Snapshot (a whole page, or one part of it: see ``messages.Snapshot``).
        A refused one (``ProtocolError``) leaves the replica as it was."""
        if snap.part == 0:
            page: dict[StrokeKey, ReplicaStroke] = {}
            layers: dict[StrokeKey, int] = {}
        elif self._partial is not None and self._partial[:3] == (snap.page, snap.part, snap.seq):
            page, layers = dict(self._partial[3]), dict(self._partial[4])
        else:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"snapshot part {snap.part} of page {snap.page} "
                                "does not follow the part before it")
        for s in snap.strokes:  # decode it all first: a refused snapshot leaves the replica as it was
            key = (s.pid, s.stroke)
            before = page.get(key) if snap.part else None
            if before is None:
                stroke = ReplicaStroke(s.pid, s.stroke, snap.page, s.tool, s.color, s.width, s.flags,
                                       s.device_t0)
            else:  # a stroke continued from an earlier part: append to a copy
                stroke = ReplicaStroke(before.pid, before.stroke, before.page, before.tool, before.color,
                                       before.width, before.flags, before.device_t0, list(before.points),
                                       before.state.copy())
            stroke.add(s.blob, s.count)
            stroke.ended = s.ended
            page[key] = stroke
            if s.layer:
                layers[key] = s.layer
        if not snap.last:
            self._partial = (snap.page, snap.part + 1, snap.seq, page, layers)
            return
        self._partial = None
        while len(self.pages) <= snap.page:
            self.pages.append({})
        kept: list[dict[StrokeKey, ReplicaStroke]] = [{} for _ in range(max(layers.values(), default=0))]
        for key, layer in layers.items():
            kept[layer - 1][key] = page.pop(key)
        self.pages[snap.page] = page
        self.cleared[snap.page] = [layer for layer in kept if layer]
        self.awaiting_pages.discard(snap.page)
        if not self.awaiting_pages:  # the snapshot is whole: live events continue after it
            self.last_seq = snap.seq

    def _is_next(self, seq: int) -> bool:
        """``seq`` is the next event; ``False`` if seen already, ``ProtocolError`` on a gap."""
        if seq <= self.last_seq:
            return False
        if seq != self.last_seq + 1:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"event {seq} after {self.last_seq}: a gap")
        return True

    def own(self, seq: int) -> None:
        """Our own op became event ``seq`` (from an ``Ack``); it is applied locally already.

        Acks are cumulative and may be coalesced: the server queues every other participant's
        event for us before it acks a later op of ours, so every seq up to ``seq`` that has not
        arrived as an ``Event`` was one of our own ops."""
        if seq > self.last_seq:
            self.last_seq = seq

    def event(self, event: m.Event, applied_cseq: int = 0) -> bool:
        """Apply ``event``; ``False`` if seen already. ``applied_cseq`` is the highest cseq of
        our own ops applied locally, so their replayed events are not applied twice.
        A gap in seq is an error. An event that cannot be applied raises ``ProtocolError`` and is
        not consumed (``last_seq`` stays), so the replica never silently skips part of the session."""
        if not self._is_next(event.seq):
            return False
        if isinstance(event.body, m.ClassOp):  # never applied locally: the room decides them
            self._class_op(event.pid, event.session_ms, event.body)
        elif event.pid == self.pid and 0 < event.cseq <= applied_cseq:
            pass  # our own op, applied locally already
        elif isinstance(event.body, m.Presence):
            body = event.body
            known = self.participants.get(event.pid)
            if known is None:
                known = self.participants[event.pid] = ReplicaParticipant(body.user_id, body.role, body.online)
            else:
                known.user_id, known.role, known.online = body.user_id, body.role, body.online
            known.left = body.left
        elif isinstance(event.body, m.Roster):
            for c in event.body.changes:
                seen = self.participants.get(c.pid)
                if seen is None:
                    self.participants[c.pid] = ReplicaParticipant(c.user_id, c.role, c.online)
                else:
                    seen.user_id, seen.role, seen.online = c.user_id, c.role, c.online
        else:
            self.apply_local(event.pid, event.body)
        self.last_seq = event.seq
        return True

    def _class_op(self, pid: int, session_ms: int, op: m.ClassOp) -> None:
        """Hands, questions, the stage and moderation: the room checked them; the replica keeps
        what a class's pages show (our own included: the room, not the sender, decides them).
        Its sender was online then, though a class's Roster may tell us so only a moment later."""
        self._participant(pid).online = True
        if isinstance(op, m.Hand):
            self._participant(pid).hand_ms = max(1, session_ms) if op.raised else 0
        elif isinstance(op, m.Question):
            self.questions.append((pid, op.text))
        elif isinstance(op, m.Stage):
            target = self._participant(op.pid)
            target.stage = {m.StageAction.INVITE: 1, m.StageAction.ACCEPT: 2, m.StageAction.LEAVE: 0}[op.action]
            if target.stage == 2:
                target.hand_ms = 0
        elif op.action is m.ModAction.LOWER_ALL_HANDS:
            for p in self.participants.values():
                p.hand_ms = 0
        elif op.action in (m.ModAction.MUTE, m.ModAction.UNMUTE):
            self._participant(op.pid).muted = op.action is m.ModAction.MUTE
        elif op.action is m.ModAction.LOWER_HAND:
            self._participant(op.pid).hand_ms = 0
        else:  # REMOVE
            target = self._participant(op.pid)
            target.online, target.hand_ms, target.stage = False, 0, 0

    def _participant(self, pid: int) -> ReplicaParticipant:
        known = self.participants.get(pid)
        if known is None:  # an op of someone whose presence we never saw (a partial test stream)
            known = self.participants[pid] = ReplicaParticipant("", m.Role.VIEWER)
        return known

    def apply_local(self, pid: int, op: m.Op) -> None:
        if isinstance(op, m.StrokeBegin):
            stroke = ReplicaStroke(pid, op.stroke, op.page, op.tool, op.color, op.width, op.flags,
                                   op.device_t0)
            self._page(op.page)[(pid, op.stroke)] = stroke
        elif isinstance(op, m.StrokePoints):
            self._find(pid, op.stroke).add(op.blob, op.count)
        elif isinstance(op, m.StrokeEnd):
            self._find(pid, op.stroke).ended = True
        elif isinstance(op, m.Undo):
            author = op.author or pid
            stroke = self._find(author, op.stroke)
            del self.pages[stroke.page][(author, op.stroke)]
        elif isinstance(op, m.PageAdd):
            while len(self.pages) <= op.page:
                self.pages.append({})
        elif isinstance(op, m.PageSwitch):
            self._page(op.page)
            self._participant(pid).current_page = op.page
        elif isinstance(op, m.Mute):
            self._participant(pid).muted = op.muted
        elif isinstance(op, m.Clear):
            self._clear(op.page)
        elif isinstance(op, m.Restore):
            self._restore(op.page)
        elif isinstance(op, m.Grant):
            self._participant(op.pid).granted = op.rights
        # class ops (hands, questions, the stage, moderation) change no page

    def _clear(self, index: int) -> None:
        """The page's strokes (ended now) become its newest cleared layer, as in the room."""
        page = self._page(index)
        if not page:
            return  # an empty page's Clear keeps no layer
        for stroke in page.values():
            stroke.ended = True
        layers = self.cleared.setdefault(index, [])
        layers.append(page)
        del layers[:-CLEAR_LAYERS_KEPT]
        self.pages[index] = {}

    def _restore(self, index: int) -> None:
        """The page's newest cleared layer back beneath its strokes."""
        page = self._page(index)
        layers = self.cleared.get(index)
        if not layers:
            raise ProtocolError(ErrorCode.NOTHING_TO_RESTORE, f"replica has no cleared layer on page {index}")
        restored = dict(layers.pop())  # (the layer itself stays as it was: ``wire.rebase`` may put it back)
        restored.update(page)
        self.pages[index] = restored

    def page(self, page: int) -> dict[StrokeKey, ReplicaStroke]:
        """Page ``page``'s strokes; ``ProtocolError`` (1012) if there is no such page."""
        return self._page(page)

    def find(self, pid: int, stroke_id: int) -> ReplicaStroke:
        """A stroke on a page; ``ProtocolError`` (1008) if none is."""
        return self._find(pid, stroke_id)

    def find_any(self, pid: int, stroke_id: int) -> ReplicaStroke | None:
        """A stroke on a page or in a cleared layer, if the replica holds it."""
        for page in [*self.pages, *(layer for layers in self.cleared.values() for layer in layers)]:
            stroke = page.get((pid, stroke_id))
            if stroke is not None:
                return stroke
        return None

    def _page(self, page: int) -> dict[StrokeKey, ReplicaStroke]:
        if not 0 <= page < len(self.pages):
            raise ProtocolError(ErrorCode.UNKNOWN_PAGE, f"replica has no page {page} (it has {len(self.pages)})")
        return self.pages[page]

    def _find(self, pid: int, stroke_id: int) -> ReplicaStroke:
        for page in self.pages:
            stroke = page.get((pid, stroke_id))
            if stroke is not None:
                return stroke
        raise ProtocolError(ErrorCode.UNKNOWN_STROKE, f"replica has no stroke {stroke_id} of participant {pid}")
