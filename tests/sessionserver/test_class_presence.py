"""A class's presence is coalesced: its viewers' comings and goings reach the room as one
``Roster`` event at most every ``roster_interval_s``, never one frame per viewer per join.

The room's part with time stepped by hand; then the real server, where a hundred viewers join
within about a second and each of them receives a few roster frames, not a hundred."""

from __future__ import annotations

import asyncio
import time

import pytest

from sessionserver.classes.settings import ClassSettings
from sessionserver.client import SessionClient
from sessionserver.room import Room
from sessionserver.room.room import Applied, Coalesced
from sessionserver.settings import Settings, SettingsError
from tests.conftest import StartServer
from wire import Role, RoomKind
from wire import messages as m
from wire.session import events as ev

ROOM = "class-00000000c0a1"


def class_room(interval_s: float = 1.0) -> Room:
    return Room(ROOM, Settings().limits, 1000, 0.0, kind=RoomKind.CLASS, roster_interval_s=interval_s)


def join(room: Room, role: Role, user: str, now: float) -> tuple[int, Applied | Coalesced]:
    pid = room.admit(role, user).pid
    return pid, room.presence(pid, True, now)


def rosters(applied: list[Applied]) -> list[tuple[tuple[int, bool], ...]]:
    out = []
    for a in applied:
        assert isinstance(a.event.body, m.Roster)
        out.append(tuple((c.pid, c.online) for c in a.event.body.changes))
    return out


def test_the_presenter_is_announced_at_once_and_viewers_are_held_for_the_roster() -> None:
    room = class_room()
    _, presenter = join(room, Role.PRESENTER, "t.li", 0.0)
    assert isinstance(presenter, Applied) and isinstance(presenter.event.body, m.Presence)
    first, held = join(room, Role.VIEWER, "s.1", 0.0)
    assert held == Coalesced(first, True)
    assert room.roster_due() == 0.0  # a lone join after a quiet interval goes at once
    (out,) = room.flush_roster(0.0)
    assert rosters([out]) == [((first, True),)] and out.event.pid == first and out.event.cseq == 0
    assert room.roster_due() is None and room.flush_roster(5.0) == []
    # a burst: nothing before the interval is over, then one Roster with every change of it
    pids = [join(room, Role.VIEWER, f"s.{i}", 0.1 + i / 100)[0] for i in range(2, 12)]
    room.presence(pids[0], False, 0.5)
    assert room.roster_due() == 1.0 and room.flush_roster(0.99) == []
    assert rosters(room.flush_roster(1.0)) == [tuple((p, p != pids[0]) for p in pids)]
    seqs_before = room.seq
    assert room.flush_roster(1.5) == [] and room.seq == seqs_before  # nothing held: nothing recorded


def test_a_viewer_who_came_and_went_within_the_interval_is_sent_as_gone() -> None:
    room = class_room()
    join(room, Role.VIEWER, "s.0", 0.0)
    room.flush_roster(0.0)
    pid, _ = join(room, Role.VIEWER, "s.1", 0.2)
    room.presence(pid, False, 0.4)
    assert rosters(room.flush_roster(1.0)) == [((pid, False),)]


def test_more_changes_than_one_event_holds_go_in_several() -> None:
    room = class_room()
    join(room, Role.VIEWER, "s.first", 0.0)
    room.flush_roster(0.0)
    pids = [join(room, Role.VIEWER, f"s.{i}", 0.5)[0] for i in range(m.ROSTER_MAX_CHANGES + 5)]
    out = room.flush_roster(1.0)
    assert [len(changes) for changes in rosters(out)] == [m.ROSTER_MAX_CHANGES, 5]
    assert [c[0] for changes in rosters(out) for c in changes] == pids
    assert [a.event.seq for a in out] == [out[0].event.seq, out[0].event.seq + 1]


def test_a_one_on_one_room_still_sends_presence() -> None:
    room = Room("s-1", Settings().limits, 1000, 0.0)
    pid = room.admit(Role.STUDENT, "s").pid
    assert isinstance(room.presence(pid, True, 0.0), Applied)
    assert room.roster_due() is None


def test_the_interval_is_a_setting() -> None:
    assert Settings.from_env({"TUTORWIRE_CLASS_ROSTER_INTERVAL_S": "0.25"}).classes.roster_interval_s == 0.25
    with pytest.raises(SettingsError, match="roster_interval_s"):
        Settings.from_env({"TUTORWIRE_CLASS_ROSTER_INTERVAL_S": "61"})


def presence_frames(client: SessionClient) -> tuple[int, int]:
    """(Roster events, Presence events of viewers) among a client's recent machine events."""
    rosters = viewers = 0
    for e in client.events:
        if isinstance(e, ev.EventApplied):
            body = e.event.body
            rosters += isinstance(body, m.Roster)
            viewers += isinstance(body, m.Presence) and body.role is Role.VIEWER
    return rosters, viewers


async def test_a_hundred_viewers_joining_at_once_get_a_few_roster_frames_each(start_server: StartServer) -> None:
    interval_s = 1.0
    server = await start_server(classes=ClassSettings(roster_interval_s=interval_s))
    presenter = server.client(ROOM, Role.PRESENTER, "t.wang")
    await presenter.connect()
    audience = [server.client(ROOM, Role.VIEWER, f"s.{i:03}") for i in range(100)]
    started = time.monotonic()
    await asyncio.gather(*(v.connect() for v in audience))
    span_s = time.monotonic() - started
    everyone = {v.pid for v in audience}

    def sees_everyone(c: SessionClient) -> bool:
        parts = c.replica.participants
        return all(pid in parts and parts[pid].online for pid in everyone)

    for c in (presenter, *audience):
        await c.wait_for(lambda: sees_everyone(c), timeout=10.0)  # noqa: B023 (awaited at once)
    # a Roster at the first join, then at most one an interval while the joins go on, and the last
    bound = int(span_s / interval_s) + 3
    counts = [presence_frames(v) for v in audience]
    print(f"100 joins in {span_s:.2f} s; roster frames per viewer: max {max(r for r, _ in counts)}, "
          f"bound {bound}")
    assert all(viewers == 0 for _, viewers in counts), "a viewer got a Presence of a viewer"
    assert max(r for r, _ in counts) <= bound, counts
    assert presence_frames(presenter)[0] <= bound
    for c in (presenter, *audience):
        await c.close()
