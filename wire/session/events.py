"""What the session machines report, as frozen dataclasses (``events()`` of each machine).

Client events go to the application; server events go to the I/O shell, which owns the room.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import messages as m
from ..errors import ProtocolError
from .states import ClientState

# --- client -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChanged:
    previous: ClientState
    state: ClientState


@dataclass(frozen=True, slots=True)
class Joined:
    """A Welcome arrived: the link is live. ``resend_ops``/``resend_bytes``: what the outbox
    holds to send again (after coalescing)."""

    welcome: m.Welcome
    resend_ops: int
    resend_bytes: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The server answered the Join with an Error. ``final``: rejoining cannot help (the state
    is FAILED or CLOSED); otherwise the client backs off and tries again."""

    error: m.Error
    final: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    """A link ended by a network failure (or a close that asks for a resume); the client
    retries at ``retry_at`` (``None`` without auto-reconnect: call ``connect``)."""

    code: int | None
    reason: str
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over for this client: ``state`` is CLOSED (the application left, the
    server closed 1000, the session ended) or FAILED (refused for good)."""

    state: ClientState
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class EventApplied:
    """An ``Event`` was consumed by the replica (own ops already applied locally included)."""

    event: m.Event


@dataclass(frozen=True, slots=True)
class SnapshotApplied:
    snapshot: m.Snapshot


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """The catch-up after a Welcome is complete: the replica is at ``last_seq``."""

    last_seq: int


@dataclass(frozen=True, slots=True)
class Acked:
    cseq: int
    seq: int


@dataclass(frozen=True, slots=True)
class OpRefused:
    """The server refused one of our ops (``error.ref`` is its cseq); it is not in the session."""

    error: m.Error


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """An Error that is not about one op (``ref`` 0), e.g. a refused audio packet."""

    error: m.Error


@dataclass(frozen=True, slots=True)
class OutboxFull:
    """An op was not taken: the outbox holds ``ops`` ops of ``bytes`` bytes, at its bound."""

    ops: int
    bytes: int
    max_ops: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class AudioReceived:
    relay: m.AudioRelay


@dataclass(frozen=True, slots=True)
class SignalReceived:
    message: m.RtcAnswer


ClientEvent = (StateChanged | Joined | Refused | Disconnected | Closed | EventApplied | SnapshotApplied
               | CaughtUp | Acked | OpRefused | ErrorReceived | OutboxFull | AudioReceived | SignalReceived)

# --- server -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinRequested:
    """A well-formed Join of the right version: check the token and answer with ``accept``
    or ``refuse_join`` before feeding the next frame."""

    join: m.Join


@dataclass(frozen=True, slots=True)
class OpReceived:
    """An op for the room; tell the machine the outcome (``op_applied``, ``op_settled`` or
    ``op_refused``)."""

    op: m.Op


@dataclass(frozen=True, slots=True)
class OpRejected:
    """An op the decoder refused after reading its cseq (``error.ref``): the room must use the
    cseq up (``Room.refuse``) and the shell then calls ``op_refused``."""

    error: ProtocolError


@dataclass(frozen=True, slots=True)
class AudioIn:
    audio: m.Audio


@dataclass(frozen=True, slots=True)
class LateAudioIn:
    """Packets too old to be played live (``AudioLate``): for the recording only."""

    late: m.AudioLate


@dataclass(frozen=True, slots=True)
class SignalIn:
    message: m.RtcOffer | m.RtcCandidate | m.RtcClose


@dataclass(frozen=True, slots=True)
class ClientProgress:
    """The client says it has applied every seq up to ``seq`` (its ``Ack``)."""

    seq: int


@dataclass(frozen=True, slots=True)
class ClockSampled:
    """A Pong gave a clock sample: the client's device clock minus the session clock at
    ``session_ms`` by the clock model (``wire.clocksync.ClockModel``), changing by ``drift_ppm``,
    and this sample's round trip."""

    session_ms: int
    offset_ms: float
    rtt_ms: float
    drift_ppm: float = 0.0


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close the connection with ``code`` after sending what ``data_to_send`` holds."""

    code: int
    reason: str


ServerEvent = (JoinRequested | OpReceived | OpRejected | AudioIn | LateAudioIn | SignalIn | ClientProgress
               | ClockSampled | CloseLink)
