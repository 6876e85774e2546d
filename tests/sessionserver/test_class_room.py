"""A class room through the real server with real clients: the presenter's ink reaches every
viewer; a viewer's ink is refused (1020) and reaches nobody until it is on stage; hands in
order, questions bounded, the stage's turn (invite, accept, write, leave), the presenter's mute
held, removal, and the viewer limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sessionserver.client import SessionClient
from tests.conftest import RunningServer, StartServer
from tests.inkdata import draw, handwriting
from wire import STAGE_RIGHTS, CloseCode, ErrorCode, Rights, Role
from wire import messages as m

ROOM = "class-0123456789ab"


def strokes_of(client: SessionClient, pid: int) -> int:
    return sum(1 for s in client.replica.strokes(pid) if s.ended)


async def refusal(client: SessionClient, make: Callable[[int], m.Op]) -> m.Error:
    count = len(client.errors)
    await client.send_op(make)
    await client.wait_for(lambda: len(client.errors) > count)
    return client.errors[-1]


async def join_class(server: RunningServer, viewers: int) -> tuple[SessionClient, list[SessionClient]]:
    presenter = server.client(ROOM, Role.PRESENTER, "t.wang")
    welcome = await presenter.connect()
    assert welcome.role is Role.PRESENTER and Rights.MODERATE in welcome.rights
    audience = [server.client(ROOM, Role.VIEWER, f"s.{i}") for i in range(viewers)]
    for v in audience:
        seat = await v.connect()
        assert seat.rights == Rights.ASK
    everyone = {c.pid for c in (presenter, *audience)}
    for c in (presenter, *audience):  # the viewers' presence comes as a Roster, at most one a second
        await c.wait_for(lambda: everyone <= set(c.replica.participants), timeout=5.0)  # noqa: B023
    return presenter, audience


async def test_the_presenters_ink_reaches_every_viewer_and_a_viewers_reaches_nobody(server: RunningServer) -> None:
    presenter, audience = await join_class(server, 3)
    await draw(presenter, handwriting(30, seed=1))
    for v in audience:
        await v.wait_for(lambda: strokes_of(v, presenter.pid) == 1)  # noqa: B023 (awaited at once)
    error = await refusal(audience[0], lambda cseq: m.StrokeBegin(cseq, 1, 0, m.Tool.PEN, 0xFF, 20, 0, 1))
    assert error.code == ErrorCode.FORBIDDEN
    await draw(presenter, handwriting(10, seed=2))  # later than the refused op: everyone has it
    for watcher in (presenter, *audience[1:]):
        await watcher.wait_for(lambda: strokes_of(watcher, presenter.pid) >= 1)  # noqa: B023 (awaited at once)
        assert list(watcher.replica.strokes(audience[0].pid)) == []
    for c in (presenter, *audience):
        await c.close()


async def test_hands_questions_and_a_turn_on_stage(server: RunningServer) -> None:
    presenter, (first, second) = await join_class(server, 2)
    await second.send_op(lambda cseq: m.Hand(cseq, True))
    await presenter.wait_for(lambda: presenter.replica.participants[second.pid].hand_ms > 0)
    await first.send_op(lambda cseq: m.Hand(cseq, True))
    await presenter.wait_for(lambda: presenter.replica.participants[first.pid].hand_ms > 0)
    floor = server.hub.rooms[ROOM].room.floor
    assert floor is not None and floor.hands() == [second.pid, first.pid]  # in the order they went up
    await first.send_op(lambda cseq: m.Question(cseq, "  为什么 x 是负数?  "))
    await presenter.wait_for(lambda: presenter.replica.questions == [(first.pid, "为什么 x 是负数?")])
    too_long = await refusal(first, lambda cseq: m.Question(cseq, "问" * 501))
    assert too_long.code == ErrorCode.INVALID_FIELD
    # a viewer cannot invite, and cannot accept what it was not offered
    assert (await refusal(first, lambda cseq: m.Stage(cseq, second.pid, m.StageAction.INVITE))).code == \
        ErrorCode.FORBIDDEN
    assert (await refusal(first, lambda cseq: m.Stage(cseq, first.pid, m.StageAction.ACCEPT))).code == \
        ErrorCode.FORBIDDEN
    await presenter.send_op(lambda cseq: m.Stage(cseq, first.pid, m.StageAction.INVITE))
    await first.wait_for(lambda: first.replica.participants[first.pid].stage == 1)
    await first.send_op(lambda cseq: m.Stage(cseq, first.pid, m.StageAction.ACCEPT))
    await second.wait_for(lambda: second.replica.participants[first.pid].stage == 2)
    await first.wait_for(lambda: first.replica.participants[first.pid].stage == 2)  # its own op, from its event
    assert second.replica.participants[first.pid].hand_ms == 0  # coming on stage answered the hand
    await draw(first, handwriting(20, seed=3))  # on stage: it writes, everyone sees it
    await presenter.wait_for(lambda: strokes_of(presenter, first.pid) == 1)
    await second.wait_for(lambda: strokes_of(second, first.pid) == 1)
    late = server.client(ROOM, Role.VIEWER, "s.late")  # a late joiner sees the stage and the hands
    welcome = await late.connect()
    entries = {e.pid: e for e in welcome.roster}
    assert entries[first.pid].stage == 2 and entries[second.pid].hand_ms > 0
    await presenter.send_op(lambda cseq: m.Stage(cseq, first.pid, m.StageAction.LEAVE))  # sent back
    await first.wait_for(lambda: first.replica.participants[first.pid].stage == 0)
    error = await refusal(first, lambda cseq: m.StrokeBegin(cseq, 99, 0, m.Tool.PEN, 0xFF, 20, 0, 1))
    assert error.code == ErrorCode.FORBIDDEN
    for c in (presenter, first, second, late):
        await c.close()


async def test_the_presenters_mute_holds_and_removal_is_final(server: RunningServer) -> None:
    presenter, (speaker, other) = await join_class(server, 2)
    await presenter.send_op(lambda cseq: m.Stage(cseq, speaker.pid, m.StageAction.INVITE))
    await speaker.wait_for(lambda: speaker.replica.participants[speaker.pid].stage == 1)
    await speaker.send_op(lambda cseq: m.Stage(cseq, speaker.pid, m.StageAction.ACCEPT))
    await presenter.wait_for(lambda: presenter.replica.participants[speaker.pid].stage == 2)
    assert server.hub.rooms[ROOM].room.rights_of(speaker.pid) == Rights.ASK | STAGE_RIGHTS
    await presenter.send_op(lambda cseq: m.Moderate(cseq, speaker.pid, m.ModAction.MUTE))
    await speaker.wait_for(lambda: speaker.replica.muted.get(speaker.pid) is True)
    assert (await refusal(speaker, lambda cseq: m.Mute(cseq, False))).code == ErrorCode.FORBIDDEN
    await presenter.send_op(lambda cseq: m.Moderate(cseq, other.pid, m.ModAction.REMOVE))
    assert await other.wait_closed(10) == CloseCode.SESSION_ENDED
    assert other.errors[-1].code == ErrorCode.SESSION_ENDED
    again = server.client(ROOM, Role.VIEWER, "s.1")  # the removed user, on another device
    with pytest.raises(ConnectionRefusedError):
        await again.connect()
    assert again.errors[-1].code == ErrorCode.SESSION_ENDED and "removed" in again.errors[-1].message
    assert (await refusal(presenter, lambda cseq: m.Moderate(cseq, presenter.pid, m.ModAction.MUTE))).code == \
        ErrorCode.INVALID_FIELD
    for c in (presenter, speaker):
        await c.close()


async def test_a_class_admits_up_to_its_viewer_limit(start_server: StartServer) -> None:
    from sessionserver.classes import ClassSettings

    server = await start_server(classes=ClassSettings(max_viewers=2))
    presenter, audience = await join_class(server, 2)
    third = server.client(ROOM, Role.VIEWER, "s.third")
    with pytest.raises(ConnectionRefusedError):
        await third.connect()
    assert third.errors[-1].code == ErrorCode.ROOM_FULL and third.close_code == CloseCode.ROOM_FULL
    again = server.client(ROOM, Role.VIEWER, "s.0")  # a viewer already in keeps its seat on a rejoin
    assert (await again.connect()).pid == audience[0].pid
    for c in (presenter, *audience[1:], again):
        await c.close()


async def test_class_ops_are_refused_in_a_one_on_one_room(server: RunningServer) -> None:
    tutor, student = await server.pair("not-a-class")
    assert (await refusal(student, lambda cseq: m.Hand(cseq, True))).code == ErrorCode.FORBIDDEN
    assert (await refusal(tutor, lambda cseq: m.Stage(cseq, student.pid, m.StageAction.INVITE))).code == \
        ErrorCode.FORBIDDEN
    await tutor.close()
    await student.close()
