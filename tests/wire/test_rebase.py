"""Our unacknowledged ops and the events of others (``wire/rebase.py``), driven through the client
machine by hand: each event below was sequenced before the ops of ours still waiting for their
Ack, as the server guarantees, and the replica ends as the room would."""

from __future__ import annotations

from collections.abc import Mapping

from tests.wire.test_session_machine_client import client, decoded, join, ops_in, pen, presence, state
from wire import encode, encode_points
from wire import messages as m
from wire.ink import PointState
from wire.session import ClientSession, ClientState

TUTOR, STUDENT = 1, 2


class Student:
    """The other participant's events, numbered on from ``seq``."""

    def __init__(self, c: ClientSession, seq: int) -> None:
        self.c, self.seq, self.cseq = c, seq, 0
        self.states: dict[int, PointState] = {}

    def send(self, body: m.EventBody) -> None:
        self.seq += 1
        self.cseq += 1
        self.c.receive_frame(encode(m.Event(self.seq, 0, STUDENT, self.cseq, body)), 1.0)

    def begin(self, stroke: int) -> None:
        self.states[stroke] = PointState()
        self.send(m.StrokeBegin(0, stroke, 0, m.Tool.PEN, 0xFF, 20, 1, 0))

    def points(self, stroke: int, n: int) -> None:
        state = self.states[stroke]
        start = state.count
        self.send(m.StrokePoints(0, stroke, start, n, encode_points(pen(n, start), 1, state)))


def session() -> tuple[ClientSession, Student]:
    c = client()
    join(c, 0.0, last_seq=2)
    c.receive_frame(presence(1), 0.0)
    c.receive_frame(presence(2, pid=STUDENT), 0.0)
    return c, Student(c, 2)


def ack(c: ClientSession, cseq: int, seq: int) -> None:
    c.receive_frame(encode(m.Ack(cseq, seq)), 1.0)


def keys(layer: Mapping[tuple[int, int], object]) -> list[tuple[int, int]]:
    return list(layer)


def sent(c: ClientSession) -> list[m.Op]:
    return ops_in(c.data_to_send())


def test_the_students_ink_sequenced_before_our_clear_goes_into_its_layer() -> None:
    c, student = session()
    student.begin(5)
    student.points(5, 2)
    op = c.submit(1.0, lambda cseq: m.Clear(cseq, 0))  # takes stroke 5 here at once
    assert op is not None and c.replica.pages[0] == {}
    student.points(5, 3)  # the room had these before our Clear: they are not lost, nor a fault
    student.begin(6)  # nor this stroke, which the room's Clear took too
    assert state(c) is ClientState.LIVE and c.replica.pages[0] == {}
    ack(c, op.cseq, student.seq + 1)
    layer = c.replica.cleared[0][-1]
    assert keys(layer) == [(STUDENT, 5), (STUDENT, 6)] and layer[(STUDENT, 5)].points == pen(5)
    assert c.replica.rebases == 2  # the points and the begin


def test_a_clear_of_the_students_before_our_new_stroke_leaves_it_on_the_page() -> None:
    c, student = session()
    student.begin(5)
    ours = c.begin_stroke(1.0, 0)
    assert ours is not None
    c.add_points(1.0, ours, pen(4))
    student.send(m.Clear(0, 0))  # sequenced before our stroke: it took only the student's
    assert keys(c.replica.pages[0]) == [(TUTOR, ours)] and keys(c.replica.cleared[0][-1]) == [(STUDENT, 5)]
    c.add_points(1.0, ours, pen(2, 4))  # and the rest of our stroke still goes out
    assert [type(op) for op in sent(c)].count(m.StrokePoints) >= 1
    assert c.replica.pages[0][(TUTOR, ours)].points == pen(6)


def test_our_restore_that_found_nothing_brings_back_the_clear_the_room_had_before_it() -> None:
    c, student = session()
    student.begin(5)
    op = c.submit(1.0, lambda cseq: m.Restore(cseq, 0))  # nothing to bring back here, yet
    assert op is not None and keys(c.replica.pages[0]) == [(STUDENT, 5)]
    student.send(m.Clear(0, 0))  # the room: the student's Clear, then our Restore undoes it
    assert keys(c.replica.pages[0]) == [(STUDENT, 5)] and c.replica.cleared[0] == []
    ack(c, op.cseq, student.seq + 1)
    assert keys(c.replica.pages[0]) == [(STUDENT, 5)]


def test_a_refused_restore_is_taken_back_beneath_our_clear_after_it() -> None:
    c, student = session()
    student.begin(5)
    student.send(m.Clear(0, 0))  # layer [5]
    student.begin(6)
    restore = c.submit(1.0, lambda cseq: m.Restore(cseq, 0))  # page 5, 6
    clear = c.submit(1.0, lambda cseq: m.Clear(cseq, 0))  # layer [5, 6]
    assert restore is not None and clear is not None
    assert [keys(layer) for layer in c.replica.cleared[0]] == [[(STUDENT, 5), (STUDENT, 6)]]
    ack(c, restore.cseq, 0)  # the room refused the Restore (say the student restored first: 1022)
    c.receive_frame(encode(m.Error(1022, "page 0 has no cleared ink to bring back", restore.cseq)), 1.0)
    assert [keys(layer) for layer in c.replica.cleared[0]] == [[(STUDENT, 5)], [(STUDENT, 6)]]
    assert c.replica.pages[0] == {}


def test_the_students_undo_of_our_stroke_stops_its_points_going_out() -> None:
    c, student = session()
    ours = c.begin_stroke(1.0, 0)
    assert ours is not None
    c.add_points(1.0, ours, pen(3))
    sent(c)
    ack(c, c.cseq, student.seq + 2)  # our begin and points are in the room
    student.seq += 2
    student.send(m.Undo(0, ours, TUTOR))  # the student (granted UNDO_OTHERS) takes our open stroke
    c.add_points(1.0, ours, pen(2, 3))
    c.end_stroke(1.0, ours)
    assert sent(c) == [] and not c.outbox  # the server would refuse each with 1008


def test_an_event_the_replica_cannot_apply_rebuilds_the_pages_from_seq_0() -> None:
    c, student = session()
    student.send(m.Undo(0, 99, 0))  # a stroke this replica never had: its pages are not the room's
    assert state(c) is ClientState.BACKOFF
    c.connect(2.0)
    c.connection_made(2.0)
    assert decoded(c.data_to_send()) == [m.Join(2, "tok", m.Role.TUTOR, 0, 7)]
