"""The client-side replica (``wire/replica.py``): events in order build pages,
gaps are errors, duplicates and our own replayed ops are not applied twice, snapshots replace."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import (
    HAS_PRESSURE,
    ErrorCode,
    Point,
    PointState,
    ProtocolError,
    encode_points,
)
from wire import messages as m
from wire.replica import Replica

TUTOR, STUDENT = 1, 2  # the pids of a one-on-one room whose tutor joined first
ROLES = {TUTOR: m.Role.TUTOR, STUDENT: m.Role.STUDENT}


def pts(n: int, start: int = 0) -> list[Point]:
    return [Point(100 + 10 * i, 200 + 5 * i, 4 * i, 500 + i) for i in range(start, start + n)]


def begin(stroke: int, page: int = 0, cseq: int = 0) -> m.StrokeBegin:
    return m.StrokeBegin(cseq, stroke, page, m.Tool.PEN, 0x000000FF, 20, HAS_PRESSURE, 1_000)


def view(replica: Replica) -> Any:
    """Everything a replica shows, in comparable form."""
    pages = [
        {key: (s.page, s.tool, s.color, s.width, s.flags, s.device_t0, s.ended, s.points) for key, s in page.items()}
        for page in replica.pages
    ]
    return pages, replica.current_pages, replica.online, replica.muted, replica.last_seq


class Author:
    """Writes one participant's ops with consecutive cseqs and a point encoder per stroke."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cseq = 0
        self.encoders: dict[int, PointState] = {}

    def next(self) -> int:
        self.cseq += 1
        return self.cseq

    def begin(self, stroke: int, page: int = 0) -> m.StrokeBegin:
        self.encoders[stroke] = PointState()
        return begin(stroke, page, self.next())

    def points(self, stroke: int, points: list[Point]) -> m.StrokePoints:
        start = self.encoders[stroke].count
        blob = encode_points(points, HAS_PRESSURE, self.encoders[stroke])
        return m.StrokePoints(self.next(), stroke, start, len(points), blob)


def event(seq: int, pid: int, op: m.Op | m.Presence, cseq: int | None = None) -> m.Event:
    """The server's relay of ``op``: the op's cseq moves to the event, the body carries 0."""
    if isinstance(op, m.Presence):
        return m.Event(seq, 0, pid, 0, op)
    body = dataclasses.replace(op, cseq=0)
    return m.Event(seq, 10 * seq, pid, op.cseq if cseq is None else cseq, body)


# --- events in order --------------------------------------------------------------------------


def test_events_in_order_build_pages() -> None:
    tutor = Author(TUTOR)
    ops: list[m.Op | m.Presence] = [
        m.Presence("tutor-1", True, m.Role.TUTOR),
        tutor.begin(1),
        tutor.points(1, pts(3)),
        tutor.points(1, pts(2, 3)),
        tutor.points(1, pts(1, 5)),
        m.StrokeEnd(tutor.next(), 1),
        m.PageAdd(tutor.next(), 1),
        m.PageSwitch(tutor.next(), 1),
        tutor.begin(2, page=1),
        tutor.points(2, pts(4)),
        tutor.begin(3, page=1),
        m.Undo(tutor.next(), 3),
    ]
    student = Replica(STUDENT)
    for seq, op in enumerate(ops, start=1):
        assert student.event(event(seq, TUTOR, op)) is True
        assert student.last_seq == seq
    assert len(student.pages) == 2
    assert set(student.pages[0]) == {(TUTOR, 1)}
    first = student.pages[0][(TUTOR, 1)]
    assert first.points == pts(6) and first.ended
    assert set(student.pages[1]) == {(TUTOR, 2)}  # stroke 3 was undone
    second = student.pages[1][(TUTOR, 2)]
    assert second.points == pts(4) and not second.ended and second.page == 1
    assert student.current_pages == {TUTOR: 1}
    assert student.online == {TUTOR: True}
    assert student.participants[TUTOR].role is m.Role.TUTOR and student.pid_of(m.Role.TUTOR) == TUTOR
    assert [s.stroke for s in student.strokes(TUTOR)] == [1, 2] and student.strokes(STUDENT) == []

    student.event(event(len(ops) + 1, TUTOR, m.Clear(0, 0)))
    assert student.pages[0] == {} and set(student.pages[1]) == {(TUTOR, 2)}


def test_a_seq_gap_is_an_error_and_changes_nothing() -> None:
    replica = Replica(STUDENT)
    replica.event(event(1, TUTOR, begin(1, cseq=1)))
    before = view(replica)
    with pytest.raises(ProtocolError) as info:
        replica.event(event(3, TUTOR, m.StrokeEnd(2, 1)))
    assert info.value.code is ErrorCode.BAD_FRAME
    assert view(replica) == before
    assert replica.event(event(2, TUTOR, m.StrokeEnd(2, 1))) is True  # the missing one still fits
    with pytest.raises(ProtocolError):
        Replica(STUDENT).event(event(2, TUTOR, begin(1, cseq=1)))  # a fresh replica starts at seq 1


def test_an_event_seen_already_is_ignored() -> None:
    replica = Replica(STUDENT)
    author = Author(TUTOR)
    b, p = author.begin(1), author.points(1, pts(3))
    assert replica.event(event(1, TUTOR, b)) is True
    assert replica.event(event(2, TUTOR, p)) is True
    before = view(replica)
    assert replica.event(event(2, TUTOR, p)) is False  # the same again: points would double
    assert replica.event(event(1, TUTOR, b)) is False  # a begin again would wipe the points
    assert replica.event(event(1, TUTOR, m.Clear(0, 0))) is False  # seq decides, not the body
    assert view(replica) == before
    assert replica.strokes()[0].points == pts(3)


def test_own_replayed_events_are_skipped_but_advance_last_seq() -> None:
    me = Author(TUTOR)
    replica = Replica(TUTOR)
    sent: list[m.Op] = [me.begin(1), me.points(1, pts(3)), me.points(1, pts(2, 3))]
    for op in sent:  # sent and applied locally, never acknowledged (the link dropped)
        replica.apply_local(TUTOR, op)
    applied = me.cseq
    assert replica.strokes()[0].points == pts(5)
    # after resuming, the server replays them as events: not applied twice
    for seq, op in enumerate(sent, start=1):
        assert replica.event(event(seq, TUTOR, op), applied_cseq=applied) is True
        assert replica.last_seq == seq
    assert replica.strokes()[0].points == pts(5)
    # the other participant's op with the same cseq is applied
    assert replica.event(event(4, STUDENT, begin(1, cseq=2)), applied_cseq=applied) is True
    assert (STUDENT, 1) in replica.pages[0]
    # our op beyond what was applied locally is applied (e.g. sent from another device)
    end = m.StrokeEnd(applied + 1, 1)
    assert replica.event(event(5, TUTOR, end), applied_cseq=applied) is True
    assert replica.pages[0][(TUTOR, 1)].ended
    # cseq 0 (presence) is never skipped
    assert replica.event(event(6, TUTOR, m.Presence("t", True, m.Role.TUTOR)), applied_cseq=applied) is True
    assert replica.online[TUTOR] is True


def test_own_acknowledged_ops_advance_last_seq() -> None:
    replica = Replica(TUTOR)
    replica.apply_local(TUTOR, begin(1, cseq=1))
    replica.own(1)
    assert replica.last_seq == 1
    replica.own(1)  # a second ack of the same seq is harmless
    assert replica.last_seq == 1
    assert replica.event(event(2, STUDENT, begin(9, cseq=1))) is True
    # Acks are cumulative: the server sends every other participant's event before acking a later op,
    # so the seqs an ack skips over (3 and 4 here) were this client's own ops.
    replica.own(5)
    assert replica.last_seq == 5
    replica.own(4)  # an older ack never moves it back
    assert replica.last_seq == 5
    assert replica.event(event(6, STUDENT, begin(10, cseq=2))) is True


# --- snapshots --------------------------------------------------------------------------------


def snapshot_stroke(pid: int, stroke: int, points: list[Point], ended: bool = True) -> m.SnapshotStroke:
    blob = encode_points(points, HAS_PRESSURE, PointState())
    return m.SnapshotStroke(pid, stroke, m.Tool.PEN, 0xFF, 20, HAS_PRESSURE, 1_000, len(points), blob, ended)


def test_snapshot_replaces_a_page() -> None:
    author = Author(TUTOR)
    replica = Replica(STUDENT)
    replica.event(event(1, TUTOR, author.begin(1)))
    replica.event(event(2, TUTOR, author.points(1, pts(3))))
    replica.event(event(3, TUTOR, author.begin(2)))
    replica.snapshot(m.Snapshot(40, 0, (snapshot_stroke(STUDENT, 7, pts(5)), snapshot_stroke(TUTOR, 2, pts(2), False))))
    assert set(replica.pages[0]) == {(STUDENT, 7), (TUTOR, 2)}  # stroke 1 is gone, 2 is as the snapshot says
    assert replica.pages[0][(STUDENT, 7)].points == pts(5) and replica.pages[0][(STUDENT, 7)].ended
    assert replica.pages[0][(TUTOR, 2)].points == pts(2) and not replica.pages[0][(TUTOR, 2)].ended
    assert replica.last_seq == 40
    # a snapshot stroke continues like any other: the next batch follows its point state
    more = encode_points(pts(2, 2), HAS_PRESSURE, _after(pts(2)))
    assert replica.event(event(41, TUTOR, m.StrokePoints(9, 2, 2, 2, more))) is True
    assert replica.pages[0][(TUTOR, 2)].points == pts(4)
    # a snapshot of a page not seen yet adds the pages up to it
    replica.snapshot(m.Snapshot(41, 3, ()))
    assert len(replica.pages) == 4 and replica.pages[3] == {}


def _after(points: list[Point]) -> PointState:
    state = PointState()
    encode_points(points, HAS_PRESSURE, state)
    return state


def test_welcome_in_snapshot_mode_waits_for_every_page() -> None:
    replica = Replica(STUDENT)
    replica.event(event(1, TUTOR, begin(1, cseq=1)))
    roster = (m.RosterEntry(TUTOR, "t", m.Role.TUTOR, True, True, 1),
              m.RosterEntry(STUDENT, "s", m.Role.STUDENT, True, False, 0))
    replica.welcome(m.Welcome(2, STUDENT, m.Role.STUDENT, "s", "sess", 0, 90, 0, m.CatchUp.SNAPSHOT, 2, 7, 200, 400,
                              m.Rights.INK, roster))
    assert replica.pages == [{}, {}] and replica.current_pages == {TUTOR: 1, STUDENT: 0}
    assert replica.muted == {TUTOR: True, STUDENT: False} and replica.online == {TUTOR: True, STUDENT: True}
    assert replica.pid == STUDENT and replica.epoch == 7
    replica.snapshot(m.Snapshot(90, 1, (snapshot_stroke(TUTOR, 4, pts(3)),)))
    assert replica.last_seq == 0  # not whole yet: a drop now must resume from nothing, not replay onto empty pages
    replica.snapshot(m.Snapshot(90, 0, ()))
    assert replica.last_seq == 90 and replica.awaiting_pages == set()
    assert replica.event(event(91, STUDENT, begin(2, cseq=1))) is True


# --- hostile or inconsistent input: only ProtocolError, and nothing half-applied ----------------


def test_unknown_stroke_is_refused() -> None:
    replica = Replica(STUDENT)
    with pytest.raises(ProtocolError) as info:
        replica.event(event(1, TUTOR, m.StrokeEnd(1, 5)))
    assert info.value.code is ErrorCode.UNKNOWN_STROKE
    replica.event(event(1, TUTOR, begin(5, cseq=1)))
    with pytest.raises(ProtocolError) as info:
        replica.event(event(2, STUDENT, m.StrokeEnd(1, 5)))  # stroke ids are per participant
    assert info.value.code is ErrorCode.UNKNOWN_STROKE


@pytest.mark.parametrize("op", [begin(1, page=3, cseq=1), m.Clear(1, 3)])
def test_unknown_page_is_a_protocol_error(op: m.Op) -> None:
    replica = Replica(STUDENT)
    with pytest.raises(ProtocolError) as info:
        replica.event(event(1, TUTOR, op))
    assert info.value.code is ErrorCode.UNKNOWN_PAGE
    with pytest.raises(ProtocolError):
        replica.apply_local(STUDENT, op)


def test_a_refused_event_is_not_consumed() -> None:
    replica = Replica(STUDENT)
    replica.event(event(1, TUTOR, begin(1, cseq=1)))
    before = view(replica)
    bad_points = m.StrokePoints(2, 1, 0, 1, b"\x00\x00\x81")
    for op in (m.StrokeEnd(2, 99), begin(2, page=7, cseq=2), bad_points):
        with pytest.raises(ProtocolError):
            replica.event(event(2, TUTOR, op))
        assert view(replica) == before  # last_seq included: the replica did not skip the event
    assert replica.event(event(2, TUTOR, m.StrokeEnd(2, 1))) is True


def test_a_refused_snapshot_changes_nothing() -> None:
    replica = Replica(STUDENT)
    replica.event(event(1, TUTOR, begin(1, cseq=1)))
    replica.event(event(2, TUTOR, m.StrokePoints(2, 1, 0, 3, encode_points(pts(3), HAS_PRESSURE, PointState()))))
    before = view(replica)
    good = snapshot_stroke(TUTOR, 8, pts(2))
    bad = m.SnapshotStroke(TUTOR, 9, m.Tool.PEN, 0, 1, HAS_PRESSURE, 0, 2, b"\x00\x00\x81\x00\x00\x00", True)
    for page in (0, 5):
        with pytest.raises(ProtocolError) as info:
            replica.snapshot(m.Snapshot(50, page, (good, bad)))
        assert info.value.code is ErrorCode.BAD_FRAME
        assert view(replica) == before


# --- a whole session: live, replayed and late-joining replicas agree --------------------------


@dataclass
class Session:
    """A valid stream of ops from both participants, as the server would order them."""

    ops: list[tuple[int, m.Op | m.Presence]] = field(default_factory=list)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    authors = {pid: Author(pid) for pid in ROLES}
    pages = 1
    live: dict[tuple[int, int], int] = {}  # stroke -> page, strokes that still exist
    open_: dict[tuple[int, int], int] = {}  # stroke -> points so far, strokes not ended
    next_id = 1
    session = Session()
    for _ in range(draw(st.integers(1, 30))):
        pid = draw(st.sampled_from(sorted(ROLES)))
        a = authors[pid]
        mine = sorted(k for k in live if k[0] == pid)
        mine_open = sorted(k for k in open_ if k[0] == pid)
        kind = draw(st.sampled_from(["begin", "points", "points", "end", "add", "switch", "undo", "clear", "presence"]))
        op: m.Op | m.Presence
        if kind == "points" and mine_open:
            key = draw(st.sampled_from(mine_open))
            n = draw(st.integers(1, 5))
            op = a.points(key[1], pts(n, open_[key]))
            open_[key] += n
        elif kind == "end" and mine_open:
            key = draw(st.sampled_from(mine_open))
            op = m.StrokeEnd(a.next(), key[1])
            del open_[key]
        elif kind == "undo" and mine:
            key = draw(st.sampled_from(mine))
            op = m.Undo(a.next(), key[1])
            del live[key]
            open_.pop(key, None)
        elif kind == "add":
            op = m.PageAdd(a.next(), draw(st.integers(0, pages)))
            pages = max(pages, op.page + 1)
        elif kind == "switch":
            op = m.PageSwitch(a.next(), draw(st.integers(0, pages - 1)))
        elif kind == "clear":
            op = m.Clear(a.next(), draw(st.integers(0, pages - 1)))
            for key in [k for k, page in live.items() if page == op.page]:
                del live[key]
                open_.pop(key, None)
        elif kind == "presence":
            op = m.Presence(ROLES[pid].label, draw(st.booleans()), ROLES[pid])
        else:
            page = draw(st.integers(0, pages - 1))
            op = a.begin(next_id, page)
            live[(pid, next_id)] = page
            open_[(pid, next_id)] = 0
            next_id += 1
        session.ops.append((pid, op))
    return session


@settings(max_examples=100, deadline=None)
@given(sessions())
def test_live_replayed_and_late_replicas_agree(session: Session) -> None:
    events = [event(seq, pid, op) for seq, (pid, op) in enumerate(session.ops, start=1)]

    live = Replica(TUTOR)  # applies its own ops locally, learns their seq from the Ack
    for (pid, op), ev in zip(session.ops, events, strict=True):
        if pid == TUTOR and not isinstance(op, m.Presence):
            live.apply_local(TUTOR, op)
            live.own(ev.seq)
        else:
            assert live.event(ev) is True

    replayed = Replica(TUTOR)  # applied its own ops locally, then got every event replayed
    applied = 0
    for (pid, op), ev in zip(session.ops, events, strict=True):
        if pid == TUTOR and not isinstance(op, m.Presence):
            replayed.apply_local(TUTOR, op)
            applied = op.cseq
        assert replayed.event(ev, applied_cseq=applied) is True
    for ev in events:  # and a second replay of all of it changes nothing
        assert replayed.event(ev, applied_cseq=applied) is False

    late = Replica(TUTOR)  # joined afterwards with nothing local: everything comes as events
    for ev in events:
        assert late.event(ev) is True

    observer = Replica(STUDENT)
    for ev in events:
        if ev.pid == STUDENT and not isinstance(ev.body, m.Presence | m.Roster):  # its own ops, sent from here
            observer.apply_local(STUDENT, ev.body)
            observer.own(ev.seq)
        else:
            observer.event(ev)

    assert view(live) == view(replayed) == view(late) == view(observer)
    assert live.last_seq == len(events)


def test_a_page_in_parts_is_whole_with_its_last_part() -> None:
    replica = Replica(STUDENT)
    replica.welcome(m.Welcome(2, STUDENT, m.Role.STUDENT, "s", "sess", 0, 90, 0, m.CatchUp.SNAPSHOT, 1, 7, 200, 400,
                              m.Rights.INK, ()))
    points = pts(9)
    state = PointState()
    blobs = [encode_points(points[i:i + 3], HAS_PRESSURE, state) for i in (0, 3, 6)]

    def piece(blob: bytes, ended: bool) -> m.SnapshotStroke:
        return m.SnapshotStroke(TUTOR, 4, m.Tool.PEN, 0xFF, 20, HAS_PRESSURE, 1_000, 3, blob, ended)

    with pytest.raises(ProtocolError):  # a later part without the first
        replica.snapshot(m.Snapshot(90, 0, (piece(blobs[1], False),), part=1, last=False))
    replica.snapshot(m.Snapshot(90, 0, (snapshot_stroke(STUDENT, 1, pts(2)), piece(blobs[0], False)), 0, False))
    assert replica.pages == [{}] and replica.last_seq == 0  # nothing shows until the page is whole
    before = (replica._partial, replica.pages)
    with pytest.raises(ProtocolError):  # part 2 cannot come before part 1
        replica.snapshot(m.Snapshot(90, 0, (piece(blobs[2], True),), part=2, last=True))
    with pytest.raises(ProtocolError):  # a part of another seq is not a part of this snapshot
        replica.snapshot(m.Snapshot(91, 0, (piece(blobs[1], False),), part=1, last=False))
    with pytest.raises(ProtocolError):  # bad points in a part: refused whole, nothing half-applied
        replica.snapshot(m.Snapshot(90, 0, (piece(b"\x00\x00\x81" * 3, False),), part=1, last=False))
    assert (replica._partial, replica.pages) == before
    replica.snapshot(m.Snapshot(90, 0, (piece(blobs[1], False),), part=1, last=False))
    replica.snapshot(m.Snapshot(90, 0, (piece(blobs[2], True),), part=2, last=True))
    assert replica.last_seq == 90 and not replica.awaiting_pages
    assert list(replica.pages[0]) == [(STUDENT, 1), (TUTOR, 4)]
    stroke = replica.pages[0][(TUTOR, 4)]
    assert stroke.points == points and stroke.ended and stroke.state.count == 9
