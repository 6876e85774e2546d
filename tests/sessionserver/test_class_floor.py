"""A class's floor with time passed in: hands in the order raised, questions bounded in length
and rate, and the stage's moves with its limit; every refusal is the documented error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from sessionserver.room.floor import Floor, FloorLimits, StageState
from wire import STAGE_RIGHTS, ErrorCode, ProtocolError, Rights


@contextlib.contextmanager
def refused(code: ErrorCode) -> Iterator[None]:
    """The block raises ``ProtocolError`` with ``code``."""
    with pytest.raises(ProtocolError) as info:
        yield
    assert info.value.code is code, info.value


def test_hands_keep_the_order_they_went_up() -> None:
    floor = Floor()
    assert floor.raise_hand(7, 10.0) and floor.raise_hand(3, 11.0) and floor.raise_hand(9, 12.0)
    assert not floor.raise_hand(7, 13.0)  # raising again keeps the first place
    assert floor.hands() == [7, 3, 9]
    assert floor.lower_hand(3) and not floor.lower_hand(3) and not floor.lower_hand(42)
    assert floor.raise_hand(3, 14.0) and floor.hands() == [7, 9, 3]  # up again: at the back
    assert floor.lower_all() == [7, 9, 3] and floor.hands() == []


def test_questions_are_bounded_in_length_and_rate() -> None:
    floor = Floor(FloorLimits(question_max_chars=10, questions_per_minute=6, question_burst=2))
    assert floor.ask(5, "  为什么是负数?  ", 0.0) == "为什么是负数?"
    with refused(ErrorCode.INVALID_FIELD):
        floor.ask(5, "x" * 11, 0.0)
    with refused(ErrorCode.INVALID_FIELD):
        floor.ask(5, "   ", 0.0)
    with refused(ErrorCode.INVALID_FIELD):
        floor.ask(5, "a\u202eb", 0.0)
    assert floor.ask(5, "again", 0.0)
    with refused(ErrorCode.RATE_LIMITED):
        floor.ask(5, "third", 1.0)  # burst of 2 spent; 6 a minute is one per 10 s
    assert floor.ask(6, "and me?", 1.0)  # the rate is per viewer
    assert floor.ask(5, "later", 11.0)


def test_the_stage_moves_and_its_limit() -> None:
    floor = Floor(FloorLimits(max_on_stage=1))
    floor.raise_hand(4, 1.0)
    floor.invite(4)
    assert floor.stage(4) is StageState.INVITED and floor.rights(4, Rights.NONE) is Rights.NONE
    with refused(ErrorCode.ROOM_FULL):
        floor.invite(8)  # the invited one holds the only place
    with refused(ErrorCode.FORBIDDEN):
        floor.accept(8)  # not invited
    floor.accept(4)
    assert floor.on_stage() == [4] and floor.rights(4, Rights.NONE) == STAGE_RIGHTS
    assert floor.hands() == []  # coming on stage answers the hand
    with refused(ErrorCode.FORBIDDEN):
        floor.invite(4)  # on stage already
    assert floor.leave(4) and not floor.leave(4)
    assert floor.rights(4, Rights.NONE) is Rights.NONE
    floor.invite(8)
    assert floor.leave(8) and floor.stage(8) is StageState.OFF  # declined
    floor.invite(8)
    floor.accept(8)
    floor.gone(8)
    assert floor.on_stage() == [] and floor.stage(8) is StageState.OFF
