"""A tutoring session's room, sans-I/O: applies ops, numbers events, keeps the op log.

The I/O shell calls ``apply`` for each op a participant sends and fans the returned frame out;
``catch_up`` tells a (re)joining participant what it missed. Time is passed in as ``now``
(seconds on a monotonic clock); nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from wire import CatchUp, ErrorCode, Limits, ProtocolError, Seat, encode
from wire import messages as m
from wire.ink import validate_points

from .pages import Page, Stroke, StrokeKey


@dataclass(slots=True)
class SeatState:
    last_cseq: int = 0
    current_page: int = 0
    user_id: str = ""
    online: bool = False
    muted: bool = False  # while muted, the server forwards none of the seat's audio


@dataclass(frozen=True, slots=True)
class Applied:
    """An op the room accepted: the event, and the frame to send to the other participants."""

    event: m.Event
    frame: bytes


class Room:
    def __init__(self, session_id: str, limits: Limits, oplog_max_events: int, now: float,
                 epoch: int = 1) -> None:
        self.session_id = session_id
        self.epoch = epoch  # distinguishes this life of the room from an earlier one with the same id
        self.limits = limits
        self.started_at = now
        self.seq = 0
        self._last_ms = 0
        self.pages: list[Page] = [Page()]
        self.strokes: dict[StrokeKey, Stroke] = {}
        self._used_ids: set[StrokeKey] = set()
        self.seats: dict[Seat, SeatState] = {seat: SeatState() for seat in Seat}
        self.log: deque[tuple[int, bytes]] = deque(maxlen=oplog_max_events)

    # --- clock and numbering ------------------------------------------------------------------

    def session_ms(self, now: float) -> int:
        """Milliseconds since the room started; never goes backwards."""
        self._last_ms = max(self._last_ms, int((now - self.started_at) * 1000))
        return self._last_ms

    def _record(self, seat: Seat, body: m.EventBody, now: float) -> Applied:
        self.seq += 1
        event = m.Event(self.seq, self.session_ms(now), seat, getattr(body, "cseq", 0), body)
        frame = encode(event)
        self.log.append((self.seq, frame))
        return Applied(event, frame)

    # --- joining ------------------------------------------------------------------------------

    def presence(self, seat: Seat, user_id: str, online: bool, now: float) -> Applied:
        state = self.seats[seat]
        state.user_id, state.online = user_id, online
        return self._record(seat, m.Presence(user_id, online), now)

    def catch_up_mode(self, last_seq: int, epoch: int) -> CatchUp:
        """REPLAY when the log still holds every event after ``last_seq`` of this room's epoch,
        else SNAPSHOT (the client is too far behind, or its seqs belong to an earlier room)."""
        if last_seq and epoch != self.epoch:
            return CatchUp.SNAPSHOT
        first = self.log[0][0] if self.log else self.seq + 1
        if first - 1 <= last_seq <= self.seq:
            return CatchUp.REPLAY
        return CatchUp.SNAPSHOT

    def welcome(self, seat: Seat, mode: CatchUp, now: float) -> m.Welcome:
        state = self.seats[seat]
        return m.Welcome(m.PROTOCOL_VERSION, seat, state.user_id, self.session_id,
                         self.session_ms(now), self.seq, state.last_cseq, mode, len(self.pages),
                         tuple(self.seats[s].current_page for s in Seat),
                         tuple(self.seats[s].online for s in Seat), self.epoch,
                         max(1, int(self.limits.rate_messages_per_s)), self.limits.rate_burst,
                         tuple(self.seats[s].muted for s in Seat))

    def catch_up(self, last_seq: int, mode: CatchUp) -> Iterator[bytes]:
        """The frames that bring a client from ``last_seq`` to now, as of this call."""
        if mode is CatchUp.REPLAY:
            for seq, frame in self.log:
                if seq > last_seq:
                    yield frame
            return
        for index, page in enumerate(self.pages):
            strokes = tuple(s.snapshot() for s in page.strokes.values())
            yield encode(m.Snapshot(self.seq, index, strokes))

    # --- ops ----------------------------------------------------------------------------------

    def apply(self, seat: Seat, op: m.Op, now: float) -> Applied | None:
        """Apply one op from ``seat``. ``None`` for a resent op already applied.

        Raises ``ProtocolError`` (with ``ref`` set to the op's cseq) when the op is refused; a
        refused op still counts as processed, so a client must not resend it.
        """
        state = self.seats[seat]
        if op.cseq <= state.last_cseq:
            return None
        state.last_cseq = op.cseq
        try:
            self._check(seat, op)
        except ProtocolError as exc:
            exc.ref = op.cseq
            raise
        return self._record(seat, op, now)

    def refuse(self, seat: Seat, cseq: int) -> None:
        """An op the codec refused still uses up its cseq, as one the room refuses does."""
        state = self.seats[seat]
        state.last_cseq = max(state.last_cseq, cseq)

    def _check(self, seat: Seat, op: m.Op) -> None:
        """Validate ``op`` against the pages and apply its effect to them."""
        if isinstance(op, m.StrokePoints):
            stroke = self._open_stroke(seat, op.stroke)
            if op.start != stroke.count:
                # an earlier batch was refused or lost: decoding this one would give wrong points
                raise ProtocolError(ErrorCode.STROKE_GAP, f"stroke {op.stroke} has {stroke.count} points, "
                                    f"not {op.start}; start a new stroke")
            if stroke.count + op.count > self.limits.max_points_per_stroke:
                raise ProtocolError(ErrorCode.TOO_MANY_POINTS,
                                    f"stroke {op.stroke} would pass {self.limits.max_points_per_stroke} points")
            validate_points(op.blob, op.count, stroke.flags, stroke.state, self.limits)
            stroke.blob += op.blob
            stroke.count += op.count
        elif isinstance(op, m.StrokeBegin):
            self._begin(seat, op)
        elif isinstance(op, m.StrokeEnd):
            self._open_stroke(seat, op.stroke).ended = True
        elif isinstance(op, m.Undo):
            key = (seat, op.stroke)
            undone = self.strokes.get(key)
            if undone is None:
                raise ProtocolError(ErrorCode.UNKNOWN_STROKE, f"you have no stroke {op.stroke} to undo")
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
            self.seats[seat].current_page = op.page
        elif isinstance(op, m.Mute):
            self.seats[seat].muted = op.muted
        else:  # Clear
            page = self._page(op.page)
            for key in page.strokes:
                del self.strokes[key]
            page.strokes.clear()

    def _page(self, index: int) -> Page:
        if index >= len(self.pages):
            raise ProtocolError(ErrorCode.UNKNOWN_PAGE, f"page {index} does not exist (add it first)")
        return self.pages[index]

    def _open_stroke(self, seat: Seat, stroke_id: int) -> Stroke:
        stroke = self.strokes.get((seat, stroke_id))
        if stroke is None or stroke.ended:
            raise ProtocolError(ErrorCode.UNKNOWN_STROKE, f"stroke {stroke_id} is not open")
        return stroke

    def _begin(self, seat: Seat, op: m.StrokeBegin) -> None:
        key = (seat, op.stroke)
        if key in self._used_ids:
            raise ProtocolError(ErrorCode.DUPLICATE_STROKE, f"stroke id {op.stroke} was used before")
        page = self._page(op.page)
        if len(page.strokes) >= self.limits.max_strokes_per_page:
            raise ProtocolError(ErrorCode.STROKE_LIMIT,
                                f"page {op.page} holds {self.limits.max_strokes_per_page} strokes already")
        stroke = Stroke(seat, op.stroke, op.page, op.tool, op.color, op.width, op.flags, op.device_t0)
        self._used_ids.add(key)
        self.strokes[key] = stroke
        page.strokes[key] = stroke
