"""A recording in memory, as the loader reads it from a recording folder (see docs/recordings.md).

The exports take one of these and nothing else, so they can be tested without files.
"""

from __future__ import annotations

from dataclasses import dataclass

from wire.messages import EventBody, Seat


@dataclass(frozen=True)
class InkEvent:
    """One ``EVENT`` record of the log: the decoded ``Event``'s session time, seat and body."""

    session_ms: int
    seat: Seat
    body: EventBody


@dataclass(frozen=True)
class AudioTrack:
    """A speaker's Opus packets, each with the granule position (48 kHz samples since session
    clock 0) at which it ends; gaps are already filled with silence packets, pre-skip is 0."""

    seat: Seat
    packets: list[tuple[bytes, int]]


@dataclass(frozen=True)
class ClockOffset:
    """A measurement of a seat's device clock minus the session clock, at session time ``at_ms``."""

    seat: Seat
    at_ms: int
    offset_ms: float
    rtt_ms: float


@dataclass(frozen=True)
class RecordingData:
    session_id: str
    started_unix: float
    duration_ms: int
    participants: dict[Seat, str]  # user ids
    events: list[InkEvent]  # in seq order
    audio: dict[Seat, AudioTrack]
    clocks: list[ClockOffset]
    status: str
