"""Frames of protocol version 1, read as version 2 (recordings made before participants).

Version 1 had two seats where version 2 has participants: an ``Event`` carried the seat (0 tutor,
1 student) where it now carries a participant id, and a ``Presence`` body had no role. A
version-1 room gave the tutor seat participant id 1 and the student seat id 2 in all but name,
so ``upgrade_v1_event`` rewrites a stored version-1 ``Event`` frame to exactly the version-2
frame a room of today would have written for it. Every other stored frame kind is unchanged.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .codec import pack
from .errors import ErrorCode, ProtocolError
from .messages import MsgType
from .roles import Role

V1_SEAT_ROLES = (Role.TUTOR, Role.STUDENT)  # index: a version-1 seat


def v1_seat_pid(seat: int) -> int:
    """The participant id a version-1 seat stands for."""
    return seat + 1


def upgrade_v1_event(frame: bytes) -> bytes:
    """A version-1 ``Event`` frame as version 2; ``ProtocolError`` if it is not one."""
    try:
        items: Any = msgpack.unpackb(frame, raw=False, use_list=True)
    except Exception as exc:  # malformed input of any kind means garbage
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not a msgpack frame ({type(exc).__name__})") from None
    if (type(items) is not list or len(items) < 6 or items[0] != MsgType.EVENT
            or items[3] not in (0, 1) or type(items[3]) is not int or type(items[5]) is not list):
        raise ProtocolError(ErrorCode.BAD_FRAME, "not a version-1 event frame")
    seat = items[3]
    items[3] = v1_seat_pid(seat)
    body = items[5]
    if body and body[0] == MsgType.PRESENCE and len(body) == 3:
        body.append(int(V1_SEAT_ROLES[seat]))
    return pack(items)
