"""Who a participant is in a room, and what that lets them do.

A room holds participants, each with a ``Role``; a join token names the role. What a role may
do is a ``Rights`` bit set: the server enforces it (an op the sender's rights do not allow is
refused with ``Error 1020 FORBIDDEN``) and tells each participant its own rights in ``Welcome``
so that a client can hide what it may not do. The rights table of a room depends on its kind
(``RoomKind``): a one-on-one session gives tutor and student what they had as seats in
version 1; a class gives its presenter the board and the floor (``MODERATE``) and its viewers
hands and questions (``ASK``); a viewer on stage also has ``STAGE_RIGHTS`` (ink and voice) until
it leaves the stage or is sent back.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Role(IntEnum):
    """A participant's role; the ``role`` claim of a join token is its ``label``."""

    TUTOR = 0
    STUDENT = 1
    PRESENTER = 2
    VIEWER = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Role:
        """The role named ``label``; ``ValueError`` for any other string."""
        for role in cls:
            if role.label == label:
                return role
        raise ValueError(f"no role {label!r}")


class Rights(IntFlag):
    """What a participant may do (``Welcome.rights``)."""

    NONE = 0
    INK = 1  # StrokeBegin/Points/End, Undo of one's own strokes
    PAGES = 2  # PageAdd, PageSwitch
    CLEAR = 4  # Clear a page (everyone's strokes on it), Restore what a Clear took
    AUDIO = 8  # publish audio (Audio frames, a WebRTC leg that sends)
    UNDO_OTHERS = 16  # Undo another participant's stroke (reserved: no op names one yet)
    ASK = 32  # Hand, Question (a class's viewers)
    MODERATE = 64  # Grant; a class's Stage invites and Moderate (mute, remove, lower hands)


ALL_RIGHTS = (Rights.INK | Rights.PAGES | Rights.CLEAR | Rights.AUDIO | Rights.UNDO_OTHERS | Rights.ASK
              | Rights.MODERATE)
BOARD_RIGHTS = Rights.INK | Rights.PAGES | Rights.CLEAR | Rights.AUDIO | Rights.UNDO_OTHERS
STAGE_RIGHTS = Rights.INK | Rights.AUDIO  # what a viewer on stage may do besides asking
GRANTABLE = Rights.CLEAR | Rights.UNDO_OTHERS  # what a Grant may give (beyond the target's role)


class RoomKind(IntEnum):
    ONE_ON_ONE = 0
    CLASS = 1


# One-on-one: what the two seats could do in version 1, less the student's Clear (a student clears
# only its own ink, by undoing its strokes, until the tutor grants it CLEAR; docs/protocol.md 1.4).
ONE_ON_ONE_RIGHTS: dict[Role, Rights] = {
    Role.TUTOR: BOARD_RIGHTS | Rights.MODERATE,  # MODERATE: its Grants
    Role.STUDENT: Rights.INK | Rights.PAGES | Rights.AUDIO,  # clears only its own ink (Undo), never the tutor's
}

# A class: the presenter has the board and the floor; viewers watch, raise hands and ask.
CLASS_RIGHTS: dict[Role, Rights] = {
    Role.PRESENTER: BOARD_RIGHTS | Rights.MODERATE,
    Role.VIEWER: Rights.ASK,
}
