"""The lifecycles of a connection's two ends, with their legal transitions in one place.

Hierarchy of the errors raised here (the "you misused me" side; the peer's mistakes are
``wire.ProtocolError``)::

    SessionMisuse          the application or shell called the machine out of turn
    └── IllegalTransition  a state change the transition table does not allow
"""

from __future__ import annotations

from enum import Enum
from typing import Generic, TypeVar


class SessionMisuse(RuntimeError):
    """The caller used a session machine wrongly (a bug in the caller, not in the peer)."""


class IllegalTransition(SessionMisuse):
    """A transition the machine's table does not allow: ``source`` -> ``target``."""

    def __init__(self, source: Enum, target: Enum, why: str = "") -> None:
        super().__init__(f"{type(source).__name__}: {source.name} -> {target.name} is not allowed"
                         + (f" ({why})" if why else ""))
        self.source = source
        self.target = target


class ClientState(Enum):
    IDLE = "idle"  # made, never connected
    CONNECTING = "connecting"  # the shell is opening a transport
    JOINING = "joining"  # transport open, Join sent, waiting for Welcome
    LIVE = "live"  # joined: ops flow, acks come back
    BACKOFF = "backoff"  # the link failed; waiting before the next attempt
    CLOSED = "closed"  # ended normally: the application left, the server closed 1000, the session ended
    FAILED = "failed"  # the server refused this client for good (token, role, version, replaced)


class ServerState(Enum):
    AWAITING_JOIN = "awaiting_join"
    JOINED = "joined"
    CLOSING = "closing"  # a last Error (if any) is queued; the shell closes after sending it
    CLOSED = "closed"


_C = ClientState
CLIENT_TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    _C.IDLE: frozenset({_C.CONNECTING, _C.CLOSED}),
    _C.CONNECTING: frozenset({_C.JOINING, _C.BACKOFF, _C.CLOSED}),
    _C.JOINING: frozenset({_C.LIVE, _C.BACKOFF, _C.FAILED, _C.CLOSED}),
    _C.LIVE: frozenset({_C.BACKOFF, _C.FAILED, _C.CLOSED}),
    _C.BACKOFF: frozenset({_C.CONNECTING, _C.CLOSED}),
    _C.CLOSED: frozenset(),
    _C.FAILED: frozenset(),
}

_S = ServerState
SERVER_TRANSITIONS: dict[ServerState, frozenset[ServerState]] = {
    _S.AWAITING_JOIN: frozenset({_S.JOINED, _S.CLOSING, _S.CLOSED}),
    _S.JOINED: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}

E = TypeVar("E", bound=Enum)


class Lifecycle(Generic[E]):
    """The current state and the table that says where it may go next."""

    __slots__ = ("state", "table")

    def __init__(self, initial: E, table: dict[E, frozenset[E]]) -> None:
        self.state = initial
        self.table = table

    def to(self, target: E, why: str = "") -> E:
        """Move to ``target``; ``IllegalTransition`` if the table does not allow it. Returns the
        state left."""
        source = self.state
        if target not in self.table[source]:
            raise IllegalTransition(source, target, why)
        self.state = target
        return source

    def can(self, target: E) -> bool:
        return target in self.table[self.state]
