"""Error codes and the protocol's exception.

Hierarchy::

    ProtocolError          the peer sent something the protocol refuses (carries an ErrorCode)
    └── FatalProtocolError the connection must end (carries a CloseCode as well)

Every error that reaches a client is an ``Error`` frame with a stable numeric code and a
sentence; the codes are documented in ``docs/protocol.md`` and never reused.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Stable codes carried by ``Error`` frames."""

    BAD_FRAME = 1001
    UNKNOWN_TYPE = 1002
    FRAME_TOO_LARGE = 1003
    TOO_MANY_POINTS = 1004
    OUT_OF_RANGE = 1005
    INVALID_FIELD = 1006
    RATE_LIMITED = 1007
    UNKNOWN_STROKE = 1008
    PAGE_LIMIT = 1009
    DUPLICATE_STROKE = 1010
    UNKNOWN_PAGE = 1011
    STROKE_LIMIT = 1012
    NOT_JOINED = 1013
    ALREADY_JOINED = 1014
    STROKE_GAP = 1015
    BAD_SDP = 1016
    TOO_MANY_CANDIDATES = 1017
    BAD_CANDIDATE = 1018
    RTC_FAILED = 1019
    FORBIDDEN = 1020  # the sender's role has no right to this op or to publish audio
    ROOM_INK_LIMIT = 1021  # the room holds max_room_ink_bytes of ink already
    NOTHING_TO_RESTORE = 1022  # a Restore of a page that has no cleared layer left
    AUTH_FAILED = 2001
    TOKEN_EXPIRED = 2002
    WRONG_SESSION = 2003
    WRONG_SEAT = 2004
    UNSUPPORTED_VERSION = 2005
    JOIN_TIMEOUT = 2006
    SESSION_ENDED = 2007  # the session has ended: no join, no op
    TOO_MANY_JOINS = 2008  # more than max_joins_per_minute joins of this participant
    ROOM_FULL = 2009  # the room holds as many participants of this role as it may
    MOVED = 2010  # the room lives on another node: ``message`` is the URL to join it at (close 4013)
    SERVER_BUSY = 2011  # the server is overloaded: retry in N s, as the message says (close 4014)
    REPLACED = 3001
    TOO_MANY_ERRORS = 3003
    INTERNAL_ERROR = 3004  # a fault in the server; the client resumes (close 1011)


class CloseCode(IntEnum):
    """WebSocket close codes (4000-4999) used when a connection must end."""

    PROTOCOL_VIOLATION = 4000
    AUTH_FAILED = 4001
    TOKEN_EXPIRED = 4002
    FORBIDDEN = 4003
    UNSUPPORTED_VERSION = 4004
    JOIN_TIMEOUT = 4005
    SESSION_ENDED = 4006
    TOO_MANY_JOINS = 4007
    RATE_LIMITED = 4008
    REPLACED = 4009
    SLOW_CONSUMER = 4010
    FRAME_TOO_LARGE = 4011
    ROOM_FULL = 4012
    MOVED = 4013  # after Error 2010: join again at the URL it names
    SERVER_BUSY = 4014  # after Error 2011: reconnect after the N s the message names


NORMAL_CLOSE = 1000  # a side really left, or the session ended for it
INTERNAL_CLOSE = 1011  # RFC 6455: the server met an unexpected condition; clients resume


class ProtocolError(Exception):
    """The peer sent something the protocol refuses; the frame is dropped, the link stays."""

    def __init__(self, code: ErrorCode, message: str, ref: int = 0) -> None:
        super().__init__(f"{code.name} ({int(code)}): {message}")
        self.code = code
        self.message = message
        self.ref = ref  # the client sequence number of the refused op, 0 when unknown


class FatalProtocolError(ProtocolError):
    """A refusal after which the connection is closed with ``close_code``."""

    def __init__(self, code: ErrorCode, message: str, close_code: CloseCode, ref: int = 0) -> None:
        super().__init__(code, message, ref)
        self.close_code = close_code
