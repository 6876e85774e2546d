"""The room core, sans-I/O: time is stepped by hand, nothing sleeps."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionserver.hub import Hub
from sessionserver.room import Room
from sessionserver.room.room import STROKE_BYTES, Applied
from sessionserver.room.snapshot import MIN_PART_BYTES
from sessionserver.settings import Settings
from tests.inkdata import handwriting
from wire import (
    BOARD_RIGHTS,
    HAS_PRESSURE,
    HAS_TILT,
    CatchUp,
    CloseCode,
    ErrorCode,
    FatalProtocolError,
    Limits,
    Point,
    PointState,
    ProtocolError,
    Rights,
    Role,
    decode_frame,
    encode,
    encode_points,
)
from wire import messages as m
from wire.ratelimit import TokenBucket
from wire.replica import Replica


def begin(cseq: int, stroke: int, page: int = 0) -> m.StrokeBegin:
    return m.StrokeBegin(cseq, stroke, page, m.Tool.PEN, 255, 10, 1, 0)


def one_on_one(*args: object, **kw: object) -> Room:
    """A room with its tutor (pid 1) and student (pid 2) admitted, in that order."""
    room = Room(*args, **kw)  # type: ignore[arg-type]
    assert room.admit(Role.TUTOR, "t").pid == TUTOR
    assert room.admit(Role.STUDENT, "s").pid == STUDENT
    return room


TUTOR, STUDENT = 1, 2


def test_session_clock_is_milliseconds_since_start_and_never_goes_back() -> None:
    room = one_on_one("r", Limits(), 100, now=1000.0)
    assert room.session_ms(1000.25) == 250
    assert room.session_ms(999.0) == 250  # a clock step backwards does not reorder events
    first = room.apply(TUTOR, begin(1, 1), 1001.0)
    second = room.apply(TUTOR, m.StrokeEnd(2, 1), 1000.5)
    assert first is not None and second is not None
    assert (first.event.seq, second.event.seq) == (1, 2)
    assert first.event.session_ms == second.event.session_ms == 1000


def test_resent_op_is_ignored_and_refused_op_is_consumed_without_changing_pages() -> None:
    room = one_on_one("r", Limits(max_coordinate=100), 100, now=0.0)
    assert room.apply(TUTOR, begin(1, 1), 0.0) is not None
    assert room.apply(TUTOR, begin(1, 1), 0.0) is None
    bad = encode_points([Point(101, 0)], 0, PointState())
    with pytest.raises(ProtocolError) as info:
        room.apply(TUTOR, m.StrokePoints(2, 1, 0, 1, bad), 0.0)
    assert (info.value.code, info.value.ref) == (ErrorCode.OUT_OF_RANGE, 2)
    assert room.strokes[(TUTOR, 1)].count == 0
    assert room.apply(TUTOR, m.StrokePoints(2, 1, 0, 1, bad), 0.0) is None  # consumed: a resend is dropped
    assert room.seq == 1


def test_points_must_continue_the_stroke_exactly() -> None:
    room = one_on_one("r", Limits(max_coordinate=100), 100, now=0.0)
    room.apply(TUTOR, begin(1, 1), 0.0)
    state = PointState()
    first = encode_points([Point(1, 1, 0), Point(2, 2, 4)], 0, state)
    refused = encode_points([Point(500, 2, 8)], 0, state)  # out of range: refused
    after = encode_points([Point(3, 3, 12)], 0, state)  # encoded after the refused batch
    assert room.apply(TUTOR, m.StrokePoints(2, 1, 0, 2, first), 0.0) is not None
    with pytest.raises(ProtocolError):
        room.apply(TUTOR, m.StrokePoints(3, 1, 2, 1, refused), 0.0)
    with pytest.raises(ProtocolError) as info:  # would decode against the wrong predictor state
        room.apply(TUTOR, m.StrokePoints(4, 1, 3, 1, after), 0.0)
    assert info.value.code == ErrorCode.STROKE_GAP
    assert room.strokes[(TUTOR, 1)].count == 2
    assert room.apply(TUTOR, m.StrokeEnd(5, 1), 0.0) is not None


def test_stroke_rules() -> None:
    room = one_on_one("r", Limits(max_pages=2, max_strokes_per_page=1, max_points_per_stroke=3), 100, now=0.0)
    room.apply(TUTOR, begin(1, 1), 0.0)
    cases: list[tuple[m.Op, ErrorCode]] = [
        (begin(2, 1), ErrorCode.DUPLICATE_STROKE),
        (begin(3, 2), ErrorCode.STROKE_LIMIT),
        (begin(4, 3, page=1), ErrorCode.UNKNOWN_PAGE),
        (m.StrokePoints(5, 1, 0, 4, encode_points([Point(1, 1, i) for i in range(4)], 0, PointState())),
         ErrorCode.TOO_MANY_POINTS),
        (m.Undo(6, 9), ErrorCode.UNKNOWN_STROKE),
        (m.PageAdd(7, 2), ErrorCode.UNKNOWN_PAGE),
    ]
    for op, code in cases:
        with pytest.raises(ProtocolError) as info:
            room.apply(TUTOR, op, 0.0)
        assert info.value.code == code, op
    assert room.apply(TUTOR, m.PageAdd(8, 1), 0.0) is not None
    assert room.apply(TUTOR, m.PageAdd(9, 1), 0.0) is not None  # adding an existing page: no-op
    with pytest.raises(ProtocolError) as info:
        room.apply(TUTOR, m.PageAdd(10, 2), 0.0)
    assert info.value.code == ErrorCode.PAGE_LIMIT
    # a student's stroke of the same id is another stroke; undo is only for one's own
    assert room.apply(STUDENT, begin(1, 1, page=1), 0.0) is not None
    with pytest.raises(ProtocolError):
        room.apply(STUDENT, m.Undo(2, 7), 0.0)
    assert room.apply(STUDENT, m.Undo(3, 1), 0.0) is not None
    assert (TUTOR, 1) in room.strokes and (STUDENT, 1) not in room.strokes


def test_catch_up_replays_while_the_log_holds_the_gap_and_snapshots_after() -> None:
    room = one_on_one("r", Limits(), 4, now=0.0, epoch=77)
    for cseq in range(1, 4):
        room.apply(TUTOR, m.PageAdd(cseq, cseq), 0.0)
    assert [room.catch_up_mode(s, 77) for s in (0, 1, 3)] == [CatchUp.REPLAY] * 3
    assert room.catch_up_mode(0, 0) is CatchUp.REPLAY  # a first join knows no epoch
    assert room.catch_up_mode(2, 76) is CatchUp.SNAPSHOT  # seq 2 of an earlier life of the room
    assert [decode_frame(f, Limits()).seq for f in room.catch_up(1, CatchUp.REPLAY)] == [2, 3]  # type: ignore[union-attr]
    for cseq in range(4, 7):
        room.apply(TUTOR, m.PageSwitch(cseq, 1), 0.0)
    # the log now holds seqs 3..6
    assert room.catch_up_mode(2, 77) is CatchUp.REPLAY
    assert room.catch_up_mode(1, 77) is CatchUp.SNAPSHOT
    assert room.catch_up_mode(0, 77) is CatchUp.SNAPSHOT
    assert room.catch_up_mode(7, 77) is CatchUp.SNAPSHOT  # ahead of the room: cannot be this life
    snapshots = [decode_frame(f, Limits()) for f in room.catch_up(0, CatchUp.SNAPSHOT)]
    assert [(s.page, s.seq) for s in snapshots] == [(p, 6) for p in range(4)]  # type: ignore[union-attr]


def test_token_bucket_with_stepped_time() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.05) is False  # half a token
    assert bucket.take(0.1) is True
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # never more than the burst


class _Joined:
    def __init__(self, pid: int, dev: str = "") -> None:
        self.pid = pid
        self.dev = dev
        self.frames: list[bytes] = []
        self.replaced = False
        self.ended = False

    def deliver(self, frame: bytes) -> None:
        self.frames.append(frame)

    def replace(self) -> None:
        self.replaced = True

    def end_session(self) -> None:
        self.ended = True

    def moved(self, url: str) -> None:
        self.ended = True


async def test_hub_keeps_an_empty_room_for_its_idle_ttl_then_evicts_it() -> None:
    hub = Hub(Settings(room_idle_ttl_s=60), clock=lambda: 0.0)
    live = hub.room("a")
    tutor, student, again = _Joined(TUTOR), _Joined(STUDENT), _Joined(TUTOR)
    hub.attach(live, tutor)
    hub.attach(live, student)
    hub.attach(live, again)
    assert tutor.replaced and not student.replaced
    assert hub.detach(live, tutor) is False  # replaced: its leaving changes nothing
    live.fan_out(b"x", sender=STUDENT)
    assert again.frames == [b"x"] and student.frames == []
    assert hub.detach(live, again) and hub.detach(live, student)
    handle = live.evict_handle
    assert handle is not None
    assert handle.when() == pytest.approx(asyncio.get_running_loop().time() + 60, abs=1)
    assert hub.room("a") is live and live.evict_handle is None  # coming back cancels eviction
    hub.attach(live, student)
    assert hub.detach(live, student)
    assert live.evict_handle is not None
    live.evict_handle._run()  # the timer fires
    assert "a" not in hub.rooms


def test_participants_get_pids_in_join_order_and_keep_them() -> None:
    room = Room("r", Limits(), 100, now=0.0)
    student = room.admit(Role.STUDENT, "s1")
    tutor = room.admit(Role.TUTOR, "t1")
    assert (student.pid, tutor.pid) == (1, 2)
    assert (student.rights, tutor.rights) == (Rights.INK | Rights.PAGES | Rights.AUDIO, BOARD_RIGHTS | Rights.MODERATE)
    # one-on-one: a participant is its role; another token for the tutor is the same participant
    again = room.admit(Role.TUTOR, "t2")
    assert again is tutor and again.pid == 2 and again.user_id == "t2"
    assert room.pid_of(Role.TUTOR) == 2 and room.pid_of(Role.VIEWER) is None


@pytest.mark.parametrize("role", [Role.PRESENTER, Role.VIEWER])
def test_a_role_a_one_on_one_room_has_no_place_for_is_refused(role: Role) -> None:
    room = Room("r", Limits(), 100, now=0.0)
    with pytest.raises(FatalProtocolError) as info:
        room.admit(role, "v")
    assert (info.value.code, info.value.close_code) == (ErrorCode.WRONG_SEAT, CloseCode.FORBIDDEN)
    assert room.participants == {}


def test_welcome_carries_the_roster_and_the_joiners_rights() -> None:
    room = one_on_one("r", Limits(), 100, now=0.0, epoch=5)
    room.presence(TUTOR, True, 0.0)
    room.apply(TUTOR, m.PageAdd(1, 1), 0.0)
    room.apply(TUTOR, m.PageSwitch(2, 1), 0.0)
    room.apply(TUTOR, m.Mute(3, True), 0.0)
    room.presence(STUDENT, True, 1.0)
    welcome = room.welcome(STUDENT, CatchUp.REPLAY, 1.0)
    assert (welcome.pid, welcome.role, welcome.user_id, welcome.epoch) == (STUDENT, Role.STUDENT, "s", 5)
    assert welcome.rights == Rights.INK | Rights.PAGES | Rights.AUDIO  # a student clears only its own ink
    assert welcome.roster == (m.RosterEntry(TUTOR, "t", Role.TUTOR, True, True, 1),
                              m.RosterEntry(STUDENT, "s", Role.STUDENT, True, False, 0))
    decoded = decode_frame(encode(welcome), Limits())
    assert decoded == welcome
    offline = room.presence(STUDENT, False, 2.0)
    assert isinstance(offline, Applied)
    presence = offline.event
    assert (presence.pid, presence.body) == (STUDENT, m.Presence("s", False, Role.STUDENT))


def test_an_op_the_senders_rights_do_not_allow_is_forbidden_and_uses_up_its_cseq() -> None:
    room = one_on_one("r", Limits(), 100, now=0.0)
    # a participant whose role lacks INK and CLEAR (as a class viewer will): every such op is refused
    room.participants[STUDENT].rights = Rights.PAGES
    for op in (begin(1, 1), m.StrokePoints(2, 1, 0, 1, b"\x00\x00\x00"), m.StrokeEnd(3, 1), m.Undo(4, 1),
               m.Clear(5, 0), m.Mute(6, True)):
        with pytest.raises(ProtocolError) as info:
            room.apply(STUDENT, op, 0.0)
        assert (info.value.code, info.value.ref) == (ErrorCode.FORBIDDEN, op.cseq), op
        assert room.apply(STUDENT, op, 0.0) is None  # refused means processed: a resend is dropped
    assert room.seq == 0 and room.strokes == {} and not room.participants[STUDENT].muted
    assert room.apply(STUDENT, m.PageAdd(7, 1), 0.0) is not None  # what it may do still works
    assert not room.may(STUDENT, Rights.AUDIO) and room.may(TUTOR, Rights.AUDIO)


def test_snapshot_strokes_carry_their_authors_pid() -> None:
    room = one_on_one("r", Limits(), 100, now=0.0)
    room.apply(TUTOR, begin(1, 7), 0.0)
    room.apply(STUDENT, begin(1, 7), 0.0)
    [snap] = [decode_frame(f, Limits()) for f in room.catch_up(0, CatchUp.SNAPSHOT)]
    assert isinstance(snap, m.Snapshot)
    assert [(s.pid, s.stroke) for s in snap.strokes] == [(TUTOR, 7), (STUDENT, 7)]


def test_ink_past_max_ink_bytes_is_refused_and_other_ops_still_work() -> None:
    points = encode_points([Point(10 + i, 10, i) for i in range(100)], 0, PointState())
    room = one_on_one("r", Limits(), 100, now=0.0, max_ink_bytes=STROKE_BYTES + len(points))
    assert room.apply(TUTOR, begin(1, 1), 0.0) is not None
    assert room.apply(TUTOR, m.StrokePoints(2, 1, 0, 100, points), 0.0) is not None
    assert room.ink_bytes == STROKE_BYTES + len(points)
    more = encode_points([Point(200, 10, 200)], 0, room.strokes[(TUTOR, 1)].state.copy())
    refusals: list[tuple[int, m.Op]] = [(TUTOR, m.StrokePoints(3, 1, 100, 1, more)), (TUTOR, begin(4, 2)),
                                        (STUDENT, begin(1, 3))]  # the student's ink counts against the same room
    for pid, op in refusals:
        with pytest.raises(ProtocolError) as info:
            room.apply(pid, op, 0.0)
        assert (info.value.code, info.value.ref) == (ErrorCode.ROOM_INK_LIMIT, op.cseq)
    others: list[m.Op] = [m.StrokeEnd(5, 1), m.PageAdd(6, 1), m.PageSwitch(7, 1), m.Mute(8, True), m.Undo(9, 1),
                          m.Clear(10, 0)]
    for other in others:
        assert room.apply(TUTOR, other, 0.0) is not None, other
    assert room.ink_bytes == STROKE_BYTES + len(points)  # undone ink was held until then: it still counts


def test_the_op_log_is_bounded_in_bytes_too() -> None:
    room = one_on_one("r", Limits(), 10_000, now=0.0, oplog_max_bytes=1_000)
    for cseq in range(1, 200):
        room.apply(TUTOR, m.PageSwitch(cseq, 0), 0.0)
        assert room.log_bytes <= 1_000 and room.log_bytes == sum(len(f) for _, f in room.log)
    assert len(room.log) < 199 and room.log[-1][0] == room.seq
    assert room.catch_up_mode(0, room.epoch) is CatchUp.SNAPSHOT  # seq 1 is gone
    assert room.catch_up_mode(room.log[0][0] - 1, room.epoch) is CatchUp.REPLAY


def test_joins_of_one_participant_are_bounded_per_minute() -> None:
    room = one_on_one("r", Limits(), 100, now=0.0, max_joins_per_minute=3)
    for _ in range(3):
        room.count_join(TUTOR, 0.0)
    with pytest.raises(FatalProtocolError) as info:
        room.count_join(TUTOR, 1.0)
    assert (info.value.code, info.value.close_code) == (ErrorCode.TOO_MANY_JOINS, CloseCode.TOO_MANY_JOINS)
    room.count_join(STUDENT, 1.0)  # the other participant is not affected
    room.count_join(TUTOR, 21.0)  # one join back every 20 s
    with pytest.raises(FatalProtocolError):
        room.count_join(TUTOR, 22.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 600), st.booleans(), st.booleans()), max_size=12),
       st.sampled_from([256, 300, 512, 1024, 4096, 1 << 20]))
def test_a_snapshot_in_parts_rebuilds_the_pages_exactly(
    strokes: list[tuple[int, int, bool, bool]], part_bytes: int,
) -> None:
    """Pages of strokes of every size, some with tilt, some still open, in parts of every size:
    each frame is within the part size, and a replica rebuilt from them has the room's pages."""
    room = one_on_one("r", Limits(max_points_per_message=1000), 100, now=0.0, snapshot_part_bytes=part_bytes)
    room.apply(TUTOR, m.PageAdd(1, 1), 0.0)
    room.apply(TUTOR, m.PageAdd(2, 2), 0.0)
    cseq = {TUTOR: 2, STUDENT: 0}
    expected: dict[tuple[int, int], list[Point]] = {}
    for number, (page, n, tilt, end) in enumerate(strokes, start=1):
        pid = TUTOR if number % 3 else STUDENT
        flags = HAS_PRESSURE | (HAS_TILT if tilt else 0)
        pts = handwriting(n, number, tilt=tilt)
        cseq[pid] += 1
        room.apply(pid, m.StrokeBegin(cseq[pid], number, page, m.Tool.PEN, 255, 10, flags, 0), 0.0)
        state = PointState()
        for i in range(0, n, 97):
            batch = pts[i:i + 97]
            cseq[pid] += 1
            room.apply(pid, m.StrokePoints(cseq[pid], number, i, len(batch), encode_points(batch, flags, state)), 0.0)
        if end:
            cseq[pid] += 1
            room.apply(pid, m.StrokeEnd(cseq[pid], number), 0.0)
        expected[(pid, number)] = pts
    frames = list(room.catch_up(0, CatchUp.SNAPSHOT))
    replica = Replica()
    replica.welcome(room.welcome(STUDENT, CatchUp.SNAPSHOT, 0.0))
    for frame in frames:
        assert len(frame) <= max(part_bytes, MIN_PART_BYTES)
        snap = decode_frame(frame, Limits(max_frame_bytes=1 << 24))
        assert isinstance(snap, m.Snapshot)
        replica.snapshot(snap)
    assert not replica.awaiting_pages and replica.last_seq == room.seq
    for index, room_page in enumerate(room.pages):
        got = replica.pages[index]
        assert list(got) == list(room_page.strokes)  # drawing order kept
        for key, stroke in room_page.strokes.items():
            assert got[key].points == expected[key] and got[key].ended == stroke.ended
            assert got[key].state.count == stroke.count
