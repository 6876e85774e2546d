"""A room rebuilt from its events, sans-I/O: what a node does when it takes over a room whose
home node died (``sessionserver/cluster/``). The events come as the old home numbered them
(``wire.messages.Event`` with its encoded frame); replaying them in order gives the same pages,
participants (same pids, roles and user ids), cseqs, seq and op log, so that the room's clients
resume on the new node with the same epoch and seqs: a client's Join names its last seq and gets
exactly the events it missed, and its resent ops are settled as duplicates or applied.

An event is replayed for its effect only: it was checked when it was first applied. Everyone is
offline after a rebuild until they join again. A class's floor (hands, questions, stage) is
replayed through the same checks as live ops; one whose check no longer passes is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from wire import ProtocolError, Rights, Role
from wire import messages as m

from . import classops
from .room import ParticipantState, Room


def _participant(room: Room, pid: int, role: Role, user_id: str) -> ParticipantState:
    state = room.participants.get(pid)
    if state is None:
        state = room.participants[pid] = ParticipantState(pid, role, room.rights_table.get(role, Rights.NONE), user_id)
    state.user_id = user_id or state.user_id
    return state


def replay(room: Room, events: Iterable[tuple[m.Event, bytes]], now: float, offline_after: bool = True) -> int:
    """Apply ``events`` (each with its frame) after the room's last seq; returns how many were
    replayed. Events at or below the room's seq are skipped (a write seen twice). A room taken
    over has everyone offline after it (``offline_after``); a mirror keeps what the events say."""
    count = 0
    for event, frame in events:
        if event.seq <= room.seq:
            continue
        room.seq = event.seq
        room._last_ms = max(room._last_ms, event.session_ms)
        room.log.append((event.seq, frame))
        room.log_bytes += len(frame)
        while len(room.log) > room.oplog_max_events or (room.log_bytes > room.oplog_max_bytes and len(room.log) > 1):
            room.log_bytes -= len(room.log.popleft()[1])
        _effect(room, event, now)
        count += 1
    if offline_after:
        for state in room.participants.values():
            state.online = False
    return count


def _effect(room: Room, event: m.Event, now: float) -> None:
    body = event.body
    if isinstance(body, m.Presence):
        _participant(room, event.pid, body.role, body.user_id).online = body.online
        return
    if isinstance(body, m.Roster):
        for change in body.changes:
            _participant(room, change.pid, change.role, change.user_id).online = change.online
        return
    state = room.participants.get(event.pid)
    if state is None:
        return  # an op of someone never seen: nothing to apply it to
    try:
        if isinstance(body, m.ClassOp):
            if room.floor is not None:
                classops.check(room, room.floor, state, body, now)
            if isinstance(body, m.Moderate) and body.action is m.ModAction.REMOVE:
                target = room.participants.get(body.pid)
                if target is not None:
                    room.removed.add(target.user_id)
        else:
            room._check(state, body)
    except ProtocolError:
        pass  # applied once under rules that held then; its effect is what the events after it assume


def set_cseqs(room: Room, cseqs: Iterable[tuple[int, str, int]]) -> None:
    """Every device's last processed cseq, as the old home had them (a refused op used its cseq)."""
    for pid, dev, cseq in cseqs:
        state = room.participants.get(pid)
        if state is not None:
            room._used(state, dev, cseq)


def keep_last_run(room: Room) -> None:
    """Keep in the op log only the events after its last jump in seq (a takeover numbers on from
    a gap, ``renumber``): a replay must never cross one, so a client behind it gets a snapshot."""
    log = room.log
    last = None
    cut = 0
    for index, (seq, _) in enumerate(log):
        if last is not None and seq != last + 1:
            cut = index
        last = seq
    for _ in range(cut):
        room.log_bytes -= len(log.popleft()[1])


def renumber(room: Room, epoch: int, gap: int) -> None:
    """The room was taken over from a dead node: the events that node numbered after the last one
    Redis holds are lost, and some clients may have seen them under seqs this room would use
    again. A new epoch and a jump of ``gap`` in seq keep the two apart: every client of the old
    node resumes by snapshot (its epoch is the old one), and no new event takes a seq that one of
    them saw (``gap`` is far more events than a node numbers between two journal writes)."""
    room.epoch = epoch
    room.seq += gap
    room.log.clear()
    room.log_bytes = 0
