"""A recording in memory, as the loader reads it from a recording folder (see docs/recordings.md).

The exports take one of these and nothing else, so they can be tested without files.

Who is who. Everything is keyed by the participant id (``pid``) the room gave; the exports name a
participant by its ``label``: the role (``tutor``, ``student``) when the recording holds one
participant with that role, as every one-on-one session does, else ``{role}-{pid}``
(``viewer-7``). So a one-on-one recording of protocol 2 exports exactly as one of protocol 1 did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recordings.manifest import Device, Move
from wire import Role
from wire.messages import EventBody


@dataclass(frozen=True, slots=True)
class Person:
    """A participant of the recording: room participant id, role and user id."""

    pid: int
    role: Role
    user_id: str


@dataclass(frozen=True)
class InkEvent:
    """One ``EVENT`` record of the log: the decoded ``Event``'s session time, participant and body."""

    session_ms: int
    pid: int
    body: EventBody


@dataclass(frozen=True)
class AudioTrack:
    """A speaker's Opus packets, each with the granule position (48 kHz samples since session
    clock 0) at which it ends; gaps are already filled with silence packets, pre-skip is 0."""

    pid: int
    packets: list[tuple[bytes, int]]
    # its late stream (``AudioLate``: what the sender could not send live), placed the same way;
    # the live stream holds silence where it was not sent, so the two add up
    late: list[tuple[bytes, int]] = field(default_factory=list)


# Where a device time mapped through the clock model is not believed (the arrival time is used):
MAX_AHEAD_MS = 1000  # more than this after its arrival
MAX_BEHIND_MS = 60_000  # or more than this before it


def model_to_session(device_ms: float, at_ms: float, offset_ms: float, drift_ppm: float) -> float:
    """``device_ms`` on the session clock through a clock model: device clock minus session clock
    is ``offset_ms`` at session ``at_ms`` and changes by ``drift_ppm``. The recording places audio
    with this and the exports place ink with it, so the two agree."""
    approx = device_ms - offset_ms
    return device_ms - (offset_ms + drift_ppm * 1e-6 * (approx - at_ms))


def believable(mapped_ms: float, arrival_ms: float) -> bool:
    """Whether a mapped device time is close enough to its arrival to be used."""
    return arrival_ms - MAX_BEHIND_MS <= mapped_ms <= arrival_ms + MAX_AHEAD_MS


@dataclass(frozen=True)
class ClockOffset:
    """The server's clock model of a participant's device at session time ``at_ms``: device clock
    minus session clock, its drift (0 in protocol-1 recordings), and the round trip it came with."""

    pid: int
    at_ms: int
    offset_ms: float
    rtt_ms: float
    drift_ppm: float = 0.0

    def to_session(self, device_ms: float) -> float:
        return model_to_session(device_ms, self.at_ms, self.offset_ms, self.drift_ppm)


def labels(people: dict[int, Person]) -> dict[int, str]:
    """Each participant's export name: its role if no one else in ``people`` has that role, else
    ``{role}-{pid}``."""
    count: dict[Role, int] = {}
    for person in people.values():
        count[person.role] = count.get(person.role, 0) + 1
    return {pid: p.role.label if count[p.role] == 1 else f"{p.role.label}-{pid}" for pid, p in people.items()}


@dataclass(frozen=True)
class RecordingData:
    session_id: str
    started_unix: float
    duration_ms: int
    participants: dict[int, Person]  # by pid
    events: list[InkEvent]  # in seq order
    audio: dict[int, AudioTrack]  # by pid
    clocks: list[ClockOffset]
    status: str
    devices: dict[int, Device] = field(default_factory=dict)  # by pid, where the recording describes one
    protocol: int = 2  # 1: ink is mapped with the offset nearest in time, as protocol-1 exports were
    # a participant's second device (protocol 3.6): its clock records, by device id, and the
    # strokes written on it ((pid, stroke) -> device id), mapped with them
    device_clocks: dict[str, list[ClockOffset]] = field(default_factory=dict)
    stroke_devices: dict[tuple[int, int], str] = field(default_factory=dict)
    # the session's moves between nodes (the manifest's ``moves``): where one node took over
    moves: list[Move] = field(default_factory=list)
    _labels: dict[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_labels", labels(self.participants))

    def label(self, pid: int) -> str:
        """The participant's name in exports (see the module docstring); ``participant-{pid}`` for
        a pid the recording holds no presence of (never in a recording the server wrote)."""
        return self._labels.get(pid) or f"participant-{pid}"

    def people(self) -> list[int]:
        """Every pid the recording knows of (participants, and anyone with ink or audio) in the
        order the exports list them: by role (tutor, student, presenter, viewer), then pid."""
        known = {*self.participants, *self.audio, *(e.pid for e in self.events)}
        last = len(Role)

        def order(pid: int) -> tuple[int, int]:
            person = self.participants.get(pid)
            return (int(person.role) if person else last, pid)

        return sorted(known, key=order)

    def user_ids(self) -> dict[str, str]:
        """``{label: user_id}`` of the participants, in ``people`` order."""
        return {self.label(pid): self.participants[pid].user_id for pid in self.people() if pid in self.participants}
