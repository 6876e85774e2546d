"""Which endings are final for a client and which it resumes from: the one table of them.

A client never gives up on a network failure. It stops only when the server has said that
trying again cannot help (the token, the role or the version is refused, or another connection
took the participant) or that the session is over for it.
"""

from __future__ import annotations

from ..errors import NORMAL_CLOSE, CloseCode, ErrorCode
from .states import ClientState

# An Error with one of these codes in place of the Welcome (or just before a close) ends it.
FAILED_ERRORS = frozenset({
    ErrorCode.AUTH_FAILED, ErrorCode.TOKEN_EXPIRED, ErrorCode.WRONG_SESSION, ErrorCode.WRONG_SEAT,
    ErrorCode.UNSUPPORTED_VERSION, ErrorCode.REPLACED,
})
ENDED_ERRORS = frozenset({ErrorCode.SESSION_ENDED})

FAILED_CLOSES = frozenset({
    CloseCode.AUTH_FAILED, CloseCode.TOKEN_EXPIRED, CloseCode.FORBIDDEN, CloseCode.UNSUPPORTED_VERSION,
    CloseCode.REPLACED,
})
ENDED_CLOSES = frozenset({NORMAL_CLOSE, CloseCode.SESSION_ENDED})


def error_outcome(code: int) -> ClientState:
    """Where an Error with ``code`` in place of a Welcome leads: FAILED, CLOSED or BACKOFF."""
    if code in FAILED_ERRORS:
        return ClientState.FAILED
    if code in ENDED_ERRORS:
        return ClientState.CLOSED
    return ClientState.BACKOFF


def close_outcome(code: int | None, last_error: int | None = None) -> ClientState:
    """Where the end of a link with close ``code`` (``None``: no close frame, the transport
    failed) leads, given the code of the last Error the server sent on it. Every close not
    named above, 1006 (no close frame), 1011 and 1012 (server fault or restart), 4008 (rate
    limit), 4010 (slow consumer) among them, leads to BACKOFF and a resume."""
    if last_error is not None and error_outcome(last_error) is not ClientState.BACKOFF:
        return error_outcome(last_error)  # e.g. Error 3001 then a reset before close 4009 arrived
    if code in FAILED_CLOSES:
        return ClientState.FAILED
    if code in ENDED_CLOSES:
        return ClientState.CLOSED
    return ClientState.BACKOFF
