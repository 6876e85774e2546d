"""The messages of the wire protocol, as frozen dataclasses.

Client ops (the things that change a session's pages) carry ``cseq``, the sender's own
sequence number, strictly increasing per participant; the server acknowledges them with ``Ack`` and
uses ``cseq`` to drop a resent op it has already applied. Inside an ``Event`` the server relays
the op with ``cseq`` left out (it decodes as 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .roles import Rights as Rights
from .roles import Role as Role

PROTOCOL_VERSION = 2  # 2: participants with ids and roles where version 1 had two seats


class MsgType(IntEnum):
    JOIN = 1
    WELCOME = 2
    SNAPSHOT = 3
    EVENT = 4
    STROKE_BEGIN = 10
    STROKE_POINTS = 11
    STROKE_END = 12
    PAGE_ADD = 13
    PAGE_SWITCH = 14
    UNDO = 15
    CLEAR = 16
    PRESENCE = 17
    MUTE = 18
    ROSTER = 19
    PING = 20
    PONG = 21
    ACK = 22
    ERROR = 23
    GRANT = 24
    RESTORE = 25
    AUDIO = 30
    AUDIO_RELAY = 31
    AUDIO_LATE = 32
    RTC_OFFER = 40
    RTC_ANSWER = 41
    RTC_CANDIDATE = 42
    RTC_CLOSE = 43
    HAND = 50
    QUESTION = 51
    STAGE = 52
    MODERATE = 53


class Tool(IntEnum):
    PEN = 0
    HIGHLIGHTER = 1
    ERASER = 2


class StageAction(IntEnum):
    """What a ``Stage`` op does (a class's stage: ``sessionserver/room/floor.py``)."""

    INVITE = 0  # the presenter invites viewer ``pid``
    ACCEPT = 1  # the invited viewer (``pid`` is itself) comes on stage
    LEAVE = 2  # off the stage: the viewer declines or leaves, or the presenter withdraws or sends back


class ModAction(IntEnum):
    """What a ``Moderate`` op (the presenter's) does to participant ``pid``."""

    MUTE = 0  # the server forwards none of its audio until UNMUTE
    UNMUTE = 1
    REMOVE = 2  # out of the class: its connection is closed and it cannot join again
    LOWER_HAND = 3
    LOWER_ALL_HANDS = 4  # every hand (``pid`` is 0)


class CatchUp(IntEnum):
    """How a joining client is brought up to date (field ``mode`` of ``Welcome``)."""

    REPLAY = 0  # the missing events follow, in order
    SNAPSHOT = 1  # drop local pages; one Snapshot per page follows, then live events


# --- client ops -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrokeBegin:
    cseq: int
    stroke: int
    page: int
    tool: Tool
    color: int  # 0xRRGGBBAA
    width: int  # page units
    flags: int  # ink.HAS_PRESSURE | ink.HAS_TILT
    device_t0: int  # ms on the device clock; point times are offsets from it


@dataclass(frozen=True, slots=True)
class StrokePoints:
    cseq: int
    stroke: int
    start: int  # how many points of the stroke come before these; must match the server's count
    count: int
    blob: bytes  # delta-coded points, see ink.py


@dataclass(frozen=True, slots=True)
class StrokeEnd:
    cseq: int
    stroke: int


@dataclass(frozen=True, slots=True)
class PageAdd:
    cseq: int
    page: int  # must be <= the current page count; adding an existing page is a no-op


@dataclass(frozen=True, slots=True)
class PageSwitch:
    cseq: int
    page: int


@dataclass(frozen=True, slots=True)
class Undo:
    cseq: int
    stroke: int  # the stroke id, its author's
    # the stroke's author: 0 (or the sender's pid) for one of the sender's own strokes; another
    # participant's needs UNDO_OTHERS. Trailing, left out when 0
    author: int = 0


@dataclass(frozen=True, slots=True)
class Clear:
    cseq: int
    page: int


@dataclass(frozen=True, slots=True)
class Restore:
    """The undo of a ``Clear``: the strokes the page's most recent Clear (not yet restored) took
    away come back, in their drawing order, beneath the strokes drawn on the page since. The room
    keeps ``CLEAR_LAYERS_KEPT`` cleared layers a page. Needs ``CLEAR``."""

    cseq: int
    page: int


@dataclass(frozen=True, slots=True)
class Grant:
    """The rights granted to participant ``pid`` beyond its role's become ``rights`` (a subset of
    ``GRANTABLE``; 0 takes every grant back). Needs ``MODERATE``: a one-on-one's tutor lets its
    student clear the page."""

    cseq: int
    pid: int
    rights: Rights


@dataclass(frozen=True, slots=True)
class Mute:
    """The sender's microphone is muted (or unmuted). An op like the others: logged, acked,
    relayed as an ``Event``; while a participant is muted the server forwards none of its audio."""

    cseq: int
    muted: bool


# --- class ops (rooms of kind CLASS only; docs/classes.md, protocol 5.x) ----------------------


@dataclass(frozen=True, slots=True)
class Hand:
    """The sender raises (or lowers) its own hand. Needs ``ASK``."""

    cseq: int
    raised: bool


@dataclass(frozen=True, slots=True)
class Question:
    """The sender asks the presenter in writing. Needs ``ASK``; bounded in length and rate."""

    cseq: int
    text: str


@dataclass(frozen=True, slots=True)
class Stage:
    """A move of viewer ``pid`` on the class's stage (``StageAction``)."""

    cseq: int
    pid: int
    action: StageAction


@dataclass(frozen=True, slots=True)
class Moderate:
    """The presenter acts on participant ``pid`` (``ModAction``). Needs ``MODERATE``."""

    cseq: int
    pid: int
    action: ModAction


ClassOp = Hand | Question | Stage | Moderate
Op = (StrokeBegin | StrokePoints | StrokeEnd | PageAdd | PageSwitch | Undo | Clear | Restore | Grant | Mute
      | ClassOp)


# --- session messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Join:
    version: int
    token: str
    role: Role  # must be the role the token names
    last_seq: int  # last server seq the client applied; 0 for a fresh join
    epoch: int = 0  # the room epoch ``last_seq`` belongs to (from the last Welcome); 0 if none


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One participant of a room as the joiner finds it (``Welcome.roster``)."""

    pid: int
    user_id: str
    role: Role
    online: bool
    muted: bool
    current_page: int
    # in a class: when the hand went up (session ms; 0 down) and the stage (StageAction-free
    # numbers: 0 off, 1 invited, 2 on); trailing fields, left out when both are 0
    hand_ms: int = 0
    stage: int = 0
    granted: Rights = Rights.NONE  # rights granted beyond the role's (``Grant``); trailing, after hand_ms and stage


@dataclass(frozen=True, slots=True)
class Welcome:
    version: int
    pid: int  # this participant's id in the room: stable for the room's life, across reconnects
    role: Role
    user_id: str
    session_id: str
    session_ms: int
    last_seq: int
    acked_cseq: int  # the highest cseq of this participant the server has processed
    mode: CatchUp
    page_count: int
    epoch: int  # identifies this life of the room; a different one means seqs start over
    rate_per_s: int  # the connection's sustained frame rate limit; clients pace themselves under it
    rate_burst: int  # frames a client may send at once above the sustained rate
    rights: Rights  # what this participant may do
    roster: tuple[RosterEntry, ...]  # every participant the room has seen, this one included

    def entry(self, pid: int) -> RosterEntry | None:
        return next((e for e in self.roster if e.pid == pid), None)


@dataclass(frozen=True, slots=True)
class SnapshotStroke:
    pid: int
    stroke: int
    tool: Tool
    color: int
    width: int
    flags: int
    device_t0: int
    count: int
    blob: bytes
    ended: bool
    # 0: on the page; k >= 1: in the page's k-th kept cleared layer, counted from the oldest (the
    # highest is the one a ``Restore`` brings back); trailing, left out when 0
    layer: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A page as of ``seq``, whole or in parts: a big page comes as several Snapshots of the
    same page and seq with ``part`` 0, 1, ... and ``last`` set on the final one. Part 0 replaces
    the page; a later part adds its strokes, and a stroke already in the page from an earlier
    part continues (its points are appended, its ``ended`` is that of the latest piece). The page
    is whole once its last part has arrived. On the wire ``part`` and ``last`` are trailing
    fields, left out for a page in one part (0, true)."""

    seq: int  # the state is as of this seq; live events continue after it
    page: int
    strokes: tuple[SnapshotStroke, ...]
    part: int = 0
    last: bool = True


@dataclass(frozen=True, slots=True)
class Presence:
    """The event's participant came online or went offline (its ``user_id`` and ``role`` as
    the join token named them)."""

    user_id: str
    online: bool
    role: Role
    # went offline by leaving: its client closed the connection with 1000; false when the link
    # dropped (or the page was closed or reloaded); trailing, left out when false
    left: bool = False


@dataclass(frozen=True, slots=True)
class RosterChange:
    """One participant's coming or going in a ``Roster``."""

    pid: int
    user_id: str
    online: bool
    role: Role


ROSTER_MAX_CHANGES = 200  # changes in one Roster event (a frame well below max_frame_bytes); more go in several


@dataclass(frozen=True, slots=True)
class Roster:
    """Participants came online or went offline: a class's viewers, coalesced by the room into at
    most one of these an interval instead of a ``Presence`` each. The event's pid is that of the
    first change; each change names its own."""

    changes: tuple[RosterChange, ...]


EventBody = Op | Presence | Roster


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    session_ms: int
    pid: int  # the participant the event is of
    cseq: int  # the author's cseq of the op (0 for presence)
    body: EventBody


@dataclass(frozen=True, slots=True)
class Ping:
    ts: int  # sender's clock, ms


@dataclass(frozen=True, slots=True)
class Pong:
    echo: int  # the Ping's ts
    ts: int  # responder's clock when it answered, ms


@dataclass(frozen=True, slots=True)
class Ack:
    """Server->client: op ``cseq`` was processed and became event ``seq`` (0: refused or a
    resend already applied); all ops up to ``cseq`` are done. Client->server: ``cseq`` is 0 and
    ``seq`` is the last server seq the client applied."""

    cseq: int
    seq: int


@dataclass(frozen=True, slots=True)
class Error:
    code: int
    message: str
    ref: int = 0  # cseq of the refused op, 0 when unknown


# --- live audio (not ops: never logged or acked; a lost packet is gone) ------------------------


@dataclass(frozen=True, slots=True)
class Audio:
    """Client->server: one Opus packet from the sender's microphone."""

    seq: int  # the sender's packet number, u32, +1 a packet (wraps): gaps show loss and reordering
    capture_ts: int  # the sender's device clock at capture, ms (the same clock as ink times)
    payload: bytes  # one Opus packet (RFC 6716), 20 ms by default


@dataclass(frozen=True, slots=True)
class AudioRelay:
    """Server->client: an Opus packet of another participant, forwarded as it arrived."""

    pid: int
    seq: int
    capture_ts: int  # 0 when the sender's transport does not carry it (WebRTC)
    session_ms: int  # the session clock when the server received it
    payload: bytes


@dataclass(frozen=True, slots=True)
class LatePacket:
    """One packet of an ``AudioLate``: as in ``Audio``."""

    seq: int  # the sender's packet number (the same numbering as its Audio frames)
    capture_ts: int  # the sender's device clock at capture, ms
    payload: bytes  # one Opus packet


@dataclass(frozen=True, slots=True)
class AudioLate:
    """Client->server: microphone packets too old to be played live (captured during an outage,
    or before a crash), for the recording only: the server records each at its capture time,
    marked late, and forwards none of them. Confirmed like ``Audio``: a ``Pong`` to a ``Ping``
    sent after it (the server reads a connection's frames in order)."""

    packets: tuple[LatePacket, ...]  # 1..MAX_LATE_PACKETS, of one sender


# --- WebRTC signalling (the browser's audio path) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class RtcOffer:
    """Client->server: an SDP offer (a first one, or a renegotiation)."""

    sdp: str


@dataclass(frozen=True, slots=True)
class RtcAnswer:
    """Server->client: the answer to the last offer, with the server's candidates in it."""

    sdp: str


@dataclass(frozen=True, slots=True)
class RtcCandidate:
    """Client->server: a trickled ICE candidate ("" ends them)."""

    candidate: str
    sdp_mid: str
    sdp_mline_index: int


@dataclass(frozen=True, slots=True)
class RtcClose:
    """Client->server: drop the WebRTC leg; audio goes over this WebSocket again."""


Media = Audio | AudioRelay | AudioLate | RtcOffer | RtcAnswer | RtcCandidate | RtcClose
Message = Op | Join | Welcome | Snapshot | Event | Ping | Pong | Ack | Error | Media
