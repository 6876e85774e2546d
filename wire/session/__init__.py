"""The session machine of both ends of a connection, sans-I/O (websockets' Protocol and
aioquic's connection are the models): frames in with ``receive_frame(data, now)``, frames out
with ``data_to_send()``, what happened with ``events()``, and ``get_timer()`` /
``handle_timer(now)`` for every timeout. Only the I/O shells (the server's connection, the
Python client helper, the pen gateway) touch sockets or read a clock.

Modules: ``states`` (the lifecycles and their transition tables), ``closes`` (which endings are
final for a client), ``client`` (``ClientSession``), ``server`` (``ServerSession``), ``outbox``
(unacknowledged ops, bounded and coalesced), ``pacing``, ``backoff``, ``timers``, ``events``.
"""

from . import events
from .backoff import Backoff, BackoffPolicy
from .client import ClientConfig, ClientSession
from .closes import close_outcome, error_outcome
from .outbox import Outbox
from .pacing import Pacer
from .server import ServerConfig, ServerSession
from .states import (
    CLIENT_TRANSITIONS,
    SERVER_TRANSITIONS,
    ClientState,
    IllegalTransition,
    ServerState,
    SessionMisuse,
)
from .timers import FAST_START_S, PingSchedule

__all__ = [
    "CLIENT_TRANSITIONS", "FAST_START_S", "SERVER_TRANSITIONS", "Backoff", "BackoffPolicy", "ClientConfig",
    "ClientSession", "ClientState", "IllegalTransition", "Outbox", "Pacer", "PingSchedule", "ServerConfig",
    "ServerSession", "ServerState", "SessionMisuse", "close_outcome", "error_outcome", "events",
]
