"""The names of the files in a recording folder (``docs/recordings.md``), in one place."""

from __future__ import annotations

import re

from wire import Role
from wire.legacy import V1_SEAT_ROLES, v1_seat_pid

LOG_NAME = "events.log"
AUDIO_GLOB = "audio-*.opus"
_AUDIO = re.compile(r"audio-([a-z]+)-([1-9][0-9]{0,9})\.opus")
_LATE = re.compile(r"audio-([a-z]+)-([1-9][0-9]{0,9})-late\.opus")


def audio_name(role: Role | None, pid: int) -> str:
    """Where participant ``pid``'s audio goes: ``audio-{role}-{pid}.opus`` (protocol 2). The role
    is ``unknown`` if the recording has seen no presence of ``pid`` by its first packet, which a
    room never does (it announces a joiner before relaying anything of theirs)."""
    return f"audio-{role.label if role is not None else 'unknown'}-{pid}.opus"


def late_audio_name(role: Role | None, pid: int) -> str:
    """Where participant ``pid``'s late audio goes (``AudioLate``: what it could not send live,
    at its capture time): ``audio-{role}-{pid}-late.opus``, a stream of its own on the same
    session timeline (``audio_pid`` does not take it for the live stream)."""
    return f"audio-{role.label if role is not None else 'unknown'}-{pid}-late.opus"


def late_audio_pid(name: str) -> int | None:
    """The participant whose late audio a file of that name holds, or None."""
    match = _LATE.fullmatch(name)
    return int(match[2]) if match else None


def audio_pid(name: str, protocol: int) -> int | None:
    """The participant whose audio a file of that name holds, or None if it is not an audio file
    of a recording of ``protocol``: ``audio-{role}-{pid}.opus``, or in protocol 1
    ``audio-tutor.opus`` (participant 1) and ``audio-student.opus`` (2)."""
    if protocol == 1:
        for seat, role in enumerate(V1_SEAT_ROLES):
            if name == f"audio-{role.label}.opus":
                return v1_seat_pid(seat)
        return None
    match = _AUDIO.fullmatch(name)
    return int(match[2]) if match else None
