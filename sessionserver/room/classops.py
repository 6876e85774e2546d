"""The class ops (``Hand``, ``Question``, ``Stage``, ``Moderate``) checked against a class room's
floor and applied to it. Called by ``Room.apply`` after the sender's rights were checked; raises
``ProtocolError`` for an op the floor refuses, or returns the op to record (a question trimmed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wire import ErrorCode, ProtocolError, Rights, Role
from wire import messages as m

from .floor import Floor

if TYPE_CHECKING:
    from .room import ParticipantState, Room

NEEDS_MODERATE = "only the class's presenter can do this"


def check(room: Room, floor: Floor, state: ParticipantState, op: m.ClassOp, now: float) -> m.ClassOp:
    session_ms = room.session_ms(now)
    if isinstance(op, m.Hand):
        if op.raised:
            floor.raise_hand(state.pid, session_ms)
        else:
            floor.lower_hand(state.pid)
        return op
    if isinstance(op, m.Question):
        return m.Question(op.cseq, floor.ask(state.pid, op.text, now))
    if isinstance(op, m.Stage):
        return _stage(room, floor, state, op)
    return _moderate(room, floor, state, op)


def _viewer(room: Room, pid: int) -> ParticipantState:
    target = room.participants.get(pid)
    if target is None or target.role is not Role.VIEWER:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"participant {pid} is not a viewer of this class")
    return target


def _stage(room: Room, floor: Floor, state: ParticipantState, op: m.Stage) -> m.Stage:
    moderator = Rights.MODERATE in state.rights
    if op.action is m.StageAction.INVITE:
        if not moderator:
            raise ProtocolError(ErrorCode.FORBIDDEN, NEEDS_MODERATE)
        if not _viewer(room, op.pid).online:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"participant {op.pid} is not in the class now")
        floor.invite(op.pid)
    elif op.action is m.StageAction.ACCEPT:
        if op.pid != state.pid:
            raise ProtocolError(ErrorCode.FORBIDDEN, "only the invited viewer can accept its invitation")
        floor.accept(op.pid)
    else:  # LEAVE: the viewer itself, or the presenter sending it back
        if op.pid != state.pid and not moderator:
            raise ProtocolError(ErrorCode.FORBIDDEN, NEEDS_MODERATE)
        _viewer(room, op.pid)
        if not floor.leave(op.pid):
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"participant {op.pid} is not on the stage")
    return op


def _moderate(room: Room, floor: Floor, state: ParticipantState, op: m.Moderate) -> m.Moderate:
    if op.action is m.ModAction.LOWER_ALL_HANDS:
        floor.lower_all()
        return op
    target = room.participants.get(op.pid)
    if target is None or target.pid == state.pid:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"participant {op.pid} cannot be moderated")
    if op.action is m.ModAction.LOWER_HAND:
        floor.lower_hand(op.pid)
    elif op.action in (m.ModAction.MUTE, m.ModAction.UNMUTE):
        target.muted = target.held_muted = op.action is m.ModAction.MUTE
    else:  # REMOVE: off the floor, and the room refuses the user's joins from now on
        floor.gone(op.pid)
        room.removed.add(target.user_id)
        target.online = False
    return op
