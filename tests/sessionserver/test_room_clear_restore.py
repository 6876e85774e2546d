"""Clear, its undo (``Restore``) and ``Grant`` in the room core, sans-I/O: cleared ink is kept in
layers a Restore brings back beneath what was drawn since; the tutor grants the student CLEAR and
takes it back; and every replica (fed the events, or a snapshot at any point) and a room rebuilt
from the events hold exactly the room's pages and layers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionserver.room import Room
from sessionserver.room.restore import replay
from sessionserver.room.room import Applied
from wire import (
    CLEAR_LAYERS_KEPT,
    CatchUp,
    ErrorCode,
    Limits,
    Point,
    PointState,
    ProtocolError,
    Rights,
    Role,
    RoomKind,
    decode_frame,
    encode_points,
)
from wire import messages as m
from wire.replica import Replica

TUTOR, STUDENT = 1, 2
POINTS = encode_points([Point(10, 10, 0), Point(12, 11, 4)], 0, PointState())


def one_on_one(**kw: object) -> Room:
    """The tutor (pid 1) and the student (2), online: their presence events are seqs 1 and 2."""
    room = Room("r", Limits(), 10_000, now=0.0, **kw)  # type: ignore[arg-type]
    for role, user in ((Role.TUTOR, "t"), (Role.STUDENT, "s")):
        room.presence(room.admit(role, user).pid, True, 0.0)
    return room


class Sender:
    """One participant's ops, numbered."""

    def __init__(self, room: Room, pid: int) -> None:
        self.room, self.pid, self.cseq, self.stroke = room, pid, 0, 0

    def op(self, make: type, *fields: object) -> Applied | None:
        self.cseq += 1
        return self.room.apply(self.pid, make(self.cseq, *fields), 0.0)

    def stroke_on(self, page: int = 0, end: bool = True) -> int:
        self.stroke += 1
        self.op(m.StrokeBegin, self.stroke, page, m.Tool.PEN, 255, 10, 0, 0)
        self.op(m.StrokePoints, self.stroke, 0, 2, POINTS)
        if end:
            self.op(m.StrokeEnd, self.stroke)
        return self.stroke


def on_page(room: Room, page: int = 0) -> list[tuple[int, int]]:
    return list(room.pages[page].strokes)


def refused(sender: Sender, make: type, *fields: object) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        sender.op(make, *fields)
    assert info.value.ref == sender.cseq
    return ErrorCode(info.value.code)


def test_restore_brings_a_clear_back_beneath_what_was_drawn_since_newest_clear_first() -> None:
    room = one_on_one()
    tutor, student = Sender(room, TUTOR), Sender(room, STUDENT)
    first = [(TUTOR, tutor.stroke_on()), (STUDENT, student.stroke_on())]
    tutor.op(m.Clear, 0)
    assert on_page(room) == [] and (TUTOR, 1) not in room.strokes
    second = [(STUDENT, student.stroke_on())]
    tutor.op(m.Clear, 0)
    after = [(TUTOR, tutor.stroke_on())]
    tutor.op(m.Restore, 0)  # the second Clear's ink, beneath the stroke drawn after it
    assert on_page(room) == second + after
    tutor.op(m.Restore, 0)
    assert on_page(room) == first + second + after  # drawing order, whole again
    assert refused(tutor, m.Restore, 0) is ErrorCode.NOTHING_TO_RESTORE
    student.op(m.Undo, 1)  # restored strokes are their authors' again
    assert (STUDENT, 1) not in room.pages[0].strokes


def test_a_clear_ends_a_stroke_being_drawn_and_a_restore_brings_it_back_ended() -> None:
    room = one_on_one()
    student = Sender(room, STUDENT)
    stroke = student.stroke_on(end=False)
    Sender(room, TUTOR).op(m.Clear, 0)
    assert refused(student, m.StrokePoints, stroke, 2, 2, POINTS) is ErrorCode.UNKNOWN_STROKE
    room.apply(TUTOR, m.Restore(10, 0), 0.0)
    restored = room.pages[0].strokes[(STUDENT, stroke)]
    assert restored.ended and restored.count == 2


def test_a_page_keeps_its_last_eight_cleared_layers() -> None:
    room = one_on_one()
    tutor = Sender(room, TUTOR)
    strokes = []
    for _ in range(CLEAR_LAYERS_KEPT + 2):
        strokes.append(tutor.stroke_on())
        tutor.op(m.Clear, 0)
    assert len(room.pages[0].cleared) == CLEAR_LAYERS_KEPT
    for _ in range(CLEAR_LAYERS_KEPT):
        tutor.op(m.Restore, 0)
    assert [s for _, s in on_page(room)] == strokes[2:]  # the two oldest layers are gone for good
    assert refused(tutor, m.Restore, 0) is ErrorCode.NOTHING_TO_RESTORE


def test_restore_is_refused_past_the_page_stroke_limit_and_on_a_page_that_does_not_exist() -> None:
    room = Room("r", Limits(max_strokes_per_page=3), 1000, now=0.0)
    room.admit(Role.TUTOR, "t")
    tutor = Sender(room, TUTOR)
    tutor.stroke_on()
    tutor.stroke_on()
    tutor.op(m.Clear, 0)
    tutor.stroke_on()
    tutor.stroke_on()
    assert refused(tutor, m.Restore, 0) is ErrorCode.STROKE_LIMIT
    assert len(room.pages[0].cleared) == 1 and len(on_page(room)) == 2  # nothing changed
    assert refused(tutor, m.Restore, 5) is ErrorCode.UNKNOWN_PAGE


def test_the_tutor_grants_the_student_clear_and_takes_it_back() -> None:
    room = one_on_one()
    tutor, student = Sender(room, TUTOR), Sender(room, STUDENT)
    tutor.stroke_on()
    assert refused(student, m.Clear, 0) is ErrorCode.FORBIDDEN
    assert refused(student, m.Grant, TUTOR, Rights.NONE) is ErrorCode.FORBIDDEN  # MODERATE is the tutor's
    granted = tutor.op(m.Grant, STUDENT, Rights.CLEAR)
    assert granted is not None
    assert decode_frame(granted.frame, Limits()) == m.Event(6, 0, TUTOR, 4, m.Grant(0, STUDENT, Rights.CLEAR))
    assert room.rights_of(STUDENT) == Rights.INK | Rights.PAGES | Rights.AUDIO | Rights.CLEAR
    welcome = room.welcome(STUDENT, CatchUp.REPLAY, 0.0)  # a reconnect keeps it
    assert Rights.CLEAR in welcome.rights and welcome.roster[STUDENT - 1].granted == Rights.CLEAR
    student.op(m.Clear, 0)
    student.op(m.Restore, 0)
    assert on_page(room) == [(TUTOR, 1)]
    tutor.op(m.Grant, STUDENT, Rights.NONE)
    assert refused(student, m.Clear, 0) is ErrorCode.FORBIDDEN and on_page(room) == [(TUTOR, 1)]
    assert room.welcome(STUDENT, CatchUp.REPLAY, 0.0).roster[STUDENT - 1].granted == Rights.NONE


@pytest.mark.parametrize(("target", "rights"), [
    (STUDENT, Rights.INK | Rights.CLEAR),  # INK cannot be granted
    (STUDENT, Rights.MODERATE),
    (TUTOR, Rights.CLEAR),  # the sender itself
    (7, Rights.CLEAR),  # nobody
])
def test_a_grant_outside_the_rules_is_forbidden(target: int, rights: Rights) -> None:
    room = one_on_one()
    tutor = Sender(room, TUTOR)
    assert refused(tutor, m.Grant, target, rights) is ErrorCode.FORBIDDEN
    assert room.participants[STUDENT].granted == Rights.NONE and room.seq == 2  # the two presences


def test_a_grant_of_a_right_the_role_has_is_forbidden_and_a_presenter_grants_a_viewer() -> None:
    room = Room("c", Limits(), 1000, now=0.0, kind=RoomKind.CLASS)
    presenter, viewer = room.admit(Role.PRESENTER, "p").pid, room.admit(Role.VIEWER, "v").pid
    room.participants[viewer].rights |= Rights.CLEAR  # as if its role gave it CLEAR
    with pytest.raises(ProtocolError) as info:
        room.apply(presenter, m.Grant(1, viewer, Rights.CLEAR), 0.0)
    assert info.value.code == ErrorCode.FORBIDDEN
    room.participants[viewer].rights = Rights.ASK
    room.apply(presenter, m.Grant(2, viewer, Rights.CLEAR | Rights.UNDO_OTHERS), 0.0)
    assert room.rights_of(viewer) == Rights.ASK | Rights.CLEAR | Rights.UNDO_OTHERS


def test_undoing_another_participants_stroke_needs_undo_others() -> None:
    room = one_on_one()
    tutor, student = Sender(room, TUTOR), Sender(room, STUDENT)
    tutor.stroke_on()
    student.stroke_on()
    assert refused(student, m.Undo, 1, TUTOR) is ErrorCode.FORBIDDEN  # the student may not touch the tutor's
    assert refused(tutor, m.Undo, 9, STUDENT) is ErrorCode.UNKNOWN_STROKE
    tutor.op(m.Undo, 1, STUDENT)  # the tutor (UNDO_OTHERS) takes the student's stroke 1 away
    assert on_page(room) == [(TUTOR, 1)]
    tutor.op(m.Grant, STUDENT, Rights.UNDO_OTHERS)
    student.op(m.Undo, 1, TUTOR)
    assert on_page(room) == []


# --- every copy agrees: replicas fed the events, snapshots at any point, a rebuilt room ----------

ACTIONS = st.lists(st.tuples(st.sampled_from([TUTOR, STUDENT]),
                             st.sampled_from(["stroke", "open", "clear", "restore", "undo", "undo-other", "page",
                                              "grant"]),
                             st.integers(0, 1)), max_size=40)


def state_of(room: Room) -> list[tuple[list[tuple[int, int]], list[list[tuple[int, int]]]]]:
    return [(list(p.strokes), [list(layer) for layer in p.cleared]) for p in room.pages]


def state_of_replica(replica: Replica) -> list[tuple[list[tuple[int, int]], list[list[tuple[int, int]]]]]:
    return [(list(page), [list(layer) for layer in replica.cleared.get(i, [])]) for i, page in enumerate(replica.pages)]


def snapshot_replica(room: Room) -> Replica:
    replica = Replica()
    replica.welcome(room.welcome(STUDENT, CatchUp.SNAPSHOT, 0.0))
    for frame in room.catch_up(room.seq, CatchUp.SNAPSHOT):
        snap = decode_frame(frame, Limits())
        assert isinstance(snap, m.Snapshot)
        replica.snapshot(snap)
    return replica


@settings(max_examples=120, deadline=None)
@given(ACTIONS, st.sampled_from([1 << 62, 300]))
def test_replicas_snapshots_and_a_rebuilt_room_agree_with_the_room(actions: list[tuple[int, str, int]],
                                                                    part_bytes: int) -> None:
    room = one_on_one(snapshot_part_bytes=part_bytes)
    room.apply(TUTOR, m.PageAdd(1, 1), 0.0)
    senders = {TUTOR: Sender(room, TUTOR), STUDENT: Sender(room, STUDENT)}
    senders[TUTOR].cseq = 1
    live = Replica(pid=99)  # sees every event, as a third party would
    for event in events(room):
        live.event(event)
    seen = room.seq
    for pid, action, page in actions:
        sender = senders[pid]
        try:
            if action in ("stroke", "open"):
                sender.stroke_on(page, end=action == "stroke")
            elif action == "clear":
                sender.op(m.Clear, page)
            elif action == "restore":
                sender.op(m.Restore, page)
            elif action == "undo" and sender.stroke:
                sender.op(m.Undo, sender.stroke)
            elif action == "undo-other":
                other = senders[STUDENT if pid == TUTOR else TUTOR]
                sender.op(m.Undo, other.stroke, other.pid)
            elif action == "page":
                sender.op(m.PageSwitch, page)
            elif action == "grant":
                sender.op(m.Grant, STUDENT, Rights.CLEAR | Rights.UNDO_OTHERS if page else Rights.NONE)
        except ProtocolError:
            pass  # refused: no event, and every copy must agree that nothing changed
        for event in events(room)[seen:]:
            live.event(event)
        seen = room.seq
        assert state_of_replica(live) == state_of(room)
        assert state_of_replica(snapshot_replica(room)) == state_of(room)
    assert live.participants[STUDENT].granted == room.participants[STUDENT].granted
    rebuilt = Room("r", Limits(), 10_000, now=0.0)
    replay(rebuilt, [(e, f) for e, (_, f) in zip(events(room), room.log, strict=True)], 0.0)
    assert state_of(rebuilt) == state_of(room)
    assert rebuilt.rights_of(STUDENT) == room.rights_of(STUDENT)


def events(room: Room) -> list[m.Event]:
    """The room's whole log (it is never trimmed here), decoded."""
    assert room.log[0][0] == 1
    out = [decode_frame(frame, Limits()) for _, frame in room.log]
    assert all(isinstance(e, m.Event) for e in out)
    return out  # type: ignore[return-value]
