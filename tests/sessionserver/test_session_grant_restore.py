"""Grant, Restore and Presence.left through the real server (issue 22, items 2 and 4): the tutor
lets the student clear the whole page and takes that back; a tutor's Clear is undone by Restore
for everyone, a late joiner included; a reconnect keeps the grant; the tutor is told whether the
student left or lost the connection."""

from __future__ import annotations

from sessionserver.client import SessionClient
from tests.conftest import RunningServer
from tests.inkdata import draw, handwriting
from wire import ErrorCode, Rights, Role
from wire import messages as m

STUDENT_RIGHTS = Rights.INK | Rights.PAGES | Rights.AUDIO


def on_page(client: SessionClient, page: int = 0) -> list[tuple[int, int]]:
    return list(client.replica.pages[page]) if page < len(client.replica.pages) else []


async def settled(*clients: SessionClient) -> None:
    for c in clients:
        await c.wait_for(lambda c=c: not c.outbox)  # type: ignore[misc]


async def test_the_tutor_lets_the_student_clear_and_takes_it_back(server: RunningServer) -> None:
    tutor, student = await server.pair("grant-clear")
    ink = [(tutor.pid, await draw(tutor, handwriting(12, 1)))]
    await student.wait_for(lambda: on_page(student) == ink)  # both see one order of the page's strokes
    ink.append((student.pid, await draw(student, handwriting(12, 2))))
    await settled(tutor, student)
    await tutor.wait_for(lambda: on_page(tutor) == ink)
    await student.wait_for(lambda: on_page(student) == ink)

    await student.clear(0)  # no CLEAR yet: refused, nothing lost
    await student.wait_for(lambda: any(e.code == ErrorCode.FORBIDDEN for e in student.errors))
    await tutor.grant(student.pid, Rights.CLEAR)
    await student.wait_for(lambda: student.replica.participants[student.pid].granted == Rights.CLEAR)
    assert on_page(tutor) == ink
    await student.clear(0)
    await tutor.wait_for(lambda: on_page(tutor) == [])
    await student.restore(0)  # the student's undo of its clear brings the tutor's ink back too
    await tutor.wait_for(lambda: on_page(tutor) == ink)
    await settled(student)
    assert on_page(student) == ink

    await student.close()  # a reconnect keeps the grant
    again = server.client("grant-clear", Role.STUDENT)
    welcome = await again.connect()
    assert welcome.rights == STUDENT_RIGHTS | Rights.CLEAR
    assert [e.granted for e in welcome.roster if e.pid == again.pid] == [Rights.CLEAR]
    await tutor.grant(again.pid, Rights.NONE)
    await again.wait_for(lambda: again.replica.participants[again.pid].granted == Rights.NONE)
    errors = len(again.errors)
    await again.clear(0)
    await again.wait_for(lambda: len(again.errors) > errors)
    assert again.errors[-1].code == ErrorCode.FORBIDDEN and on_page(tutor) == ink
    await tutor.close()
    await again.close()


async def test_a_tutors_clear_is_undone_for_everyone_a_late_joiner_included(server: RunningServer) -> None:
    tutor, student = await server.pair("restore-late")
    ink = [(student.pid, await draw(student, handwriting(30, 3)))]
    await tutor.wait_for(lambda: on_page(tutor) == ink)
    ink.append((tutor.pid, await draw(tutor, handwriting(30, 4))))
    await settled(tutor, student)
    await tutor.wait_for(lambda: on_page(tutor) == ink)
    await tutor.clear(0)
    await student.wait_for(lambda: on_page(student) == [])
    await settled(tutor)
    await student.close()
    late = server.client("restore-late", Role.STUDENT)  # a new device: its pages come by snapshot
    welcome = await late.connect()
    assert welcome.mode is m.CatchUp.SNAPSHOT or welcome.last_seq
    await late.wait_for(lambda: not late.replica.awaiting_pages)
    assert on_page(late) == [] and [list(layer) for layer in late.replica.cleared[0]] == [ink]
    after = [(tutor.pid, await draw(tutor, handwriting(8, 5)))]
    await tutor.restore(0)
    await late.wait_for(lambda: on_page(late) == ink + after)
    points = {key: s.points for key, s in tutor.replica.pages[0].items()}
    assert {key: s.points for key, s in late.replica.pages[0].items()} == points  # every point came back
    errors = len(tutor.errors)
    await tutor.restore(0)
    await tutor.wait_for(lambda: len(tutor.errors) > errors)
    assert tutor.errors[-1].code == ErrorCode.NOTHING_TO_RESTORE
    await tutor.close()
    await late.close()


async def test_the_tutor_is_told_whether_the_student_left_or_dropped(server: RunningServer) -> None:
    tutor, student = await server.pair("presence-left")
    await student.drop()  # the network goes: no close frame
    await tutor.wait_for(lambda: tutor.replica.online.get(student.pid) is False)
    assert tutor.replica.participants[student.pid].left is False
    await student.connect()  # it resumes
    await tutor.wait_for(lambda: tutor.replica.online.get(student.pid) is True)
    await student.close()  # the student leaves: close 1000
    await tutor.wait_for(lambda: tutor.replica.online.get(student.pid) is False)
    assert tutor.replica.participants[student.pid].left is True
    await tutor.close()
