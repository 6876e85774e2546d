"""A class's floor, sans-I/O: raised hands in the order they went up, questions (bounded in
length and rate), and the stage (who besides the presenter may write and speak).

The room asks the floor before it applies a class op, and the floor answers with the change to
record or a ``ProtocolError`` naming why not. Time is passed in. The stage of a viewer moves
OFF -> INVITED (the presenter's invite) -> ON (the viewer accepts) -> OFF (the viewer leaves or is
sent back); INVITED -> OFF when the viewer declines or the presenter withdraws the invite. An
illegal move is refused, never applied.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import Enum

from wire import STAGE_RIGHTS, ErrorCode, ProtocolError, Rights
from wire.ratelimit import TokenBucket


class StageState(Enum):
    OFF = "off"
    INVITED = "invited"
    ON = "on"


STAGE_MOVES: dict[StageState, frozenset[StageState]] = {
    StageState.OFF: frozenset({StageState.INVITED}),
    StageState.INVITED: frozenset({StageState.ON, StageState.OFF}),
    StageState.ON: frozenset({StageState.OFF}),
}


@dataclass(frozen=True, slots=True)
class FloorLimits:
    max_on_stage: int = 2  # viewers on stage at once (invited ones count)
    question_max_chars: int = 500
    questions_per_minute: float = 3.0  # sustained, per viewer
    question_burst: int = 3


@dataclass(slots=True)
class _Seat:
    hand_since: float | None = None  # when the hand went up (None: down)
    hand_order: int = 0  # the raise's place among all raises (two in one millisecond keep their order)
    stage: StageState = StageState.OFF
    questions: TokenBucket | None = None


@dataclass(slots=True)
class Floor:
    limits: FloorLimits = field(default_factory=FloorLimits)
    _seats: dict[int, _Seat] = field(default_factory=dict)
    _order: int = 0

    def _seat(self, pid: int) -> _Seat:
        seat = self._seats.get(pid)
        if seat is None:
            seat = self._seats[pid] = _Seat()
        return seat

    # -- hands ---------------------------------------------------------------------------------

    def raise_hand(self, pid: int, now: float) -> bool:
        """``pid`` raises its hand; False if it was up already (the first raise keeps its place)."""
        seat = self._seat(pid)
        if seat.hand_since is not None:
            return False
        seat.hand_since = now
        self._order += 1
        seat.hand_order = self._order
        return True

    def lower_hand(self, pid: int) -> bool:
        """``pid``'s hand goes down (by itself, or the presenter); False if it was down."""
        seat = self._seats.get(pid)
        if seat is None or seat.hand_since is None:
            return False
        seat.hand_since = None
        return True

    def lower_all(self) -> list[int]:
        raised = self.hands()
        for pid in raised:
            self._seats[pid].hand_since = None
        return raised

    def raised(self) -> dict[int, float]:
        """When each raised hand went up, by pid."""
        return {pid: s.hand_since for pid, s in self._seats.items() if s.hand_since is not None}

    def hands(self) -> list[int]:
        """The pids with a hand up, in the order they went up."""
        up = [(s.hand_order, pid) for pid, s in self._seats.items() if s.hand_since is not None]
        return [pid for _, pid in sorted(up)]

    # -- questions -----------------------------------------------------------------------------

    def ask(self, pid: int, text: str, now: float) -> str:
        """The question as it will be recorded (trimmed), or ``ProtocolError``: empty, too long,
        holding control characters (``INVALID_FIELD``), or past the rate (``RATE_LIMITED``)."""
        question = text.strip()
        if not question:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "a question must not be empty")
        if len(question) > self.limits.question_max_chars:
            raise ProtocolError(ErrorCode.INVALID_FIELD,
                                f"a question must be at most {self.limits.question_max_chars} characters")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and c not in "\n" for c in question):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "a question must not hold control characters")
        seat = self._seat(pid)
        if seat.questions is None:
            seat.questions = TokenBucket(self.limits.questions_per_minute / 60.0, self.limits.question_burst, now)
        if not seat.questions.take(now):
            wait = seat.questions.delay(now)
            raise ProtocolError(ErrorCode.RATE_LIMITED, f"too many questions: ask again in {wait:.0f} s")
        return question

    # -- the stage -----------------------------------------------------------------------------

    def stage(self, pid: int) -> StageState:
        seat = self._seats.get(pid)
        return seat.stage if seat is not None else StageState.OFF

    def on_stage(self) -> list[int]:
        return sorted(pid for pid, s in self._seats.items() if s.stage is StageState.ON)

    def invite(self, pid: int) -> None:
        taken = sum(1 for s in self._seats.values() if s.stage is not StageState.OFF)
        if self.stage(pid) is StageState.OFF and taken >= self.limits.max_on_stage:
            raise ProtocolError(ErrorCode.ROOM_FULL, f"the stage holds {self.limits.max_on_stage} already: "
                                                     "send someone back first")
        self._move(pid, StageState.INVITED)

    def accept(self, pid: int) -> None:
        if self.stage(pid) is not StageState.INVITED:
            raise ProtocolError(ErrorCode.FORBIDDEN, "only an invited viewer can come on stage")
        self._move(pid, StageState.ON)
        self.lower_hand(pid)

    def leave(self, pid: int) -> bool:
        """Off the stage (declined, withdrawn, left or sent back); False if it was not on or invited."""
        if self.stage(pid) is StageState.OFF:
            return False
        self._move(pid, StageState.OFF)
        return True

    def rights(self, pid: int, base: Rights) -> Rights:
        """What ``pid`` may do: its role's rights, plus ``STAGE_RIGHTS`` while on stage."""
        return base | STAGE_RIGHTS if self.stage(pid) is StageState.ON else base

    def gone(self, pid: int) -> None:
        """``pid`` was removed from the class: hand down, off the stage."""
        self._seats.pop(pid, None)

    def _move(self, pid: int, target: StageState) -> None:
        seat = self._seat(pid)
        if target not in STAGE_MOVES[seat.stage]:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"the stage cannot go from {seat.stage.value} to {target.value}")
        seat.stage = target
