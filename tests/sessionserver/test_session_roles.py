"""Participants, roles and rights through the real server: the roster in Welcome, presence with
roles, a role the room has no place for, and rights enforced (1020 FORBIDDEN) for ops and audio."""

from __future__ import annotations

import asyncio

import pytest

from sessionserver.client import SessionClient
from sessionserver.room import room as room_core
from tests.audiokit import encode_tone
from tests.conftest import RunningServer
from tests.inkdata import draw, finished, handwriting
from wire import BOARD_RIGHTS, CloseCode, ErrorCode, Rights, Role, RoomKind, encode
from wire import messages as m

STUDENT_RIGHTS = Rights.INK | Rights.PAGES | Rights.AUDIO  # no CLEAR: a student clears only its own ink


async def refused(client: SessionClient, frame: bytes) -> m.Error:
    count = len(client.errors)
    await client.send_raw(frame)
    await client.wait_for(lambda: len(client.errors) > count)
    return client.errors[-1]


async def test_welcome_carries_the_roster_and_presence_carries_the_role(server: RunningServer) -> None:
    tutor = server.client("roles-roster", Role.TUTOR, "wang")
    first = await tutor.connect()
    assert (first.pid, first.role, first.user_id) == (1, Role.TUTOR, "wang")
    assert first.rights == BOARD_RIGHTS | Rights.MODERATE  # MODERATE: its Grants
    assert first.roster == (m.RosterEntry(1, "wang", Role.TUTOR, True, False, 0),)
    await tutor.switch_page(0)
    await tutor.mute(True)
    await tutor.wait_for(lambda: not tutor.outbox)
    student = server.client("roles-roster", Role.STUDENT, "li")
    welcome = await student.connect()
    assert (welcome.pid, welcome.role, welcome.user_id, welcome.rights) == (2, Role.STUDENT, "li", STUDENT_RIGHTS)
    assert welcome.roster == (m.RosterEntry(1, "wang", Role.TUTOR, True, True, 0),
                              m.RosterEntry(2, "li", Role.STUDENT, True, False, 0))
    await tutor.wait_for(lambda: tutor.replica.online.get(2) is True)
    assert tutor.replica.participants[2].role is Role.STUDENT and tutor.replica.participants[2].user_id == "li"
    # the pid is the participant's for the room's life: a reconnect (or another token) keeps it
    await student.close()
    await tutor.wait_for(lambda: tutor.replica.online.get(2) is False)
    again = server.client("roles-roster", Role.STUDENT, "li-phone")
    rejoined = await again.connect()
    assert rejoined.pid == 2 and [e.pid for e in rejoined.roster] == [1, 2]
    await tutor.wait_for(lambda: tutor.replica.participants[2].user_id == "li-phone")
    await tutor.close()
    await again.close()


@pytest.mark.parametrize("role", [Role.PRESENTER, Role.VIEWER])
async def test_a_role_a_one_on_one_room_has_no_place_for_is_refused(server: RunningServer, role: Role) -> None:
    tutor, student = await server.pair("roles-stranger")
    stranger = server.client("roles-stranger", role)
    with pytest.raises(ConnectionRefusedError):
        await stranger.connect()
    assert stranger.errors[-1].code == ErrorCode.WRONG_SEAT
    assert stranger.close_code == CloseCode.FORBIDDEN
    assert [p.role for p in server.hub.rooms["roles-stranger"].room.participants.values()] == [Role.TUTOR,
                                                                                                Role.STUDENT]
    points = handwriting(20, 1)
    await draw(tutor, points)
    await student.wait_for(lambda: finished(student, Role.TUTOR) == [points])
    await tutor.close()
    await student.close()


async def test_ops_and_audio_the_senders_rights_do_not_allow_are_forbidden(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A one-on-one gives both roles ink and audio; narrow the student's rights the way a class
    # will narrow a viewer's, and the server enforces exactly the table.
    narrow = {Role.TUTOR: BOARD_RIGHTS, Role.STUDENT: Rights.PAGES}
    monkeypatch.setitem(room_core.RIGHTS_TABLES, RoomKind.ONE_ON_ONE, narrow)
    tutor, student = await server.pair("roles-rights")
    assert student.welcome is not None and student.welcome.rights == Rights.PAGES
    for op in (m.StrokeBegin(1, 1, 0, m.Tool.PEN, 255, 10, 1, 0), m.Clear(2, 0), m.Mute(3, True)):
        error = await refused(student, encode(op))
        assert (error.code, error.ref) == (ErrorCode.FORBIDDEN, op.cseq), error
    await student.send_raw(encode(m.Audio(0, 1, encode_tone(440.0, 1)[0])))
    await student.wait_for(lambda: student.errors[-1].code == ErrorCode.FORBIDDEN and student.errors[-1].ref == 0)
    # the refused ops used up their cseqs; what the student may do still works
    student.cseq = 3
    await student.add_page(1)
    await tutor.wait_for(lambda: len(tutor.replica.pages) == 2)
    # nothing of the refused reached the tutor, whose ink and audio carry on
    assert tutor.replica.strokes() == [] and tutor.audio.empty() and not tutor.replica.muted[student.pid]
    await tutor.send_audio(0, encode_tone(440.0, 1)[0])
    relay = await asyncio.wait_for(student.audio.get(), 10)
    assert relay.pid == tutor.pid
    assert tutor.errors == []
    await tutor.close()
    await student.close()



async def test_a_student_clears_only_its_own_ink(server: RunningServer) -> None:
    # The one-on-one table as it is: the student has no CLEAR, so its Clear of the page is refused
    # (1020) and the tutor's ink stays; undoing its own strokes (what the browser's bin does) works.
    tutor, student = await server.pair("roles-clear")
    assert student.welcome is not None and Rights.CLEAR not in student.welcome.rights
    tutor_ink, student_ink = handwriting(20, 1), handwriting(20, 2)
    await draw(tutor, tutor_ink)
    await draw(student, student_ink)
    await tutor.wait_for(lambda: finished(tutor, Role.STUDENT) == [student_ink])
    await student.wait_for(lambda: not student.outbox)
    cseq = student.cseq + 1
    error = await refused(student, encode(m.Clear(cseq, 0)))
    assert (error.code, error.ref) == (ErrorCode.FORBIDDEN, cseq), error
    student.cseq = cseq
    (own,) = [s.stroke for s in student.replica.strokes(student.pid)]
    await student.undo(own)
    await tutor.wait_for(lambda: finished(tutor, Role.STUDENT) == [])
    assert finished(tutor, Role.TUTOR) == [tutor_ink] and finished(student, Role.TUTOR) == [tutor_ink]
    await tutor.close()
    await student.close()
