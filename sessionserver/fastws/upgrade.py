"""The hand-off at the upgrade: uvicorn's HTTP protocol parses a WebSocket upgrade request and
builds ``config.ws_protocol_class``; ours looks at the request's path and passes the connection
either to picows (the session path) or to uvicorn's own WebSocket protocol (any other path, so
ASGI WebSocket endpoints such as the matcher's push channel keep working).

uvicorn calls ``connection_made(transport)``, sets the transport's protocol to ours, then calls
``data_received`` with the upgrade request re-serialised; we build the chosen protocol, give it
the transport, make it the transport's protocol and feed it the request. picows's protocol is an
``asyncio.BufferedProtocol``: it is fed through ``get_buffer``/``buffer_updated``, and it answers
the handshake (101) itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from picows import WSAutoPingStrategy, WSUpgradeRequest
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in picows's stubs
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

from .link import Session, SessionLink

log = logging.getLogger("tutorwire.fastws")
_picows_log = logging.getLogger("tutorwire.fastws.picows")
_picows_log.setLevel(logging.WARNING)  # picows logs every accepted connection at info


# What one read may take from the socket. picows doubles its read buffer whenever a read fills
# it past 90 %, and never shrinks it: offered all its free space, a client that sends faster than
# the server reads would grow it to the kernel's receive buffer (megabytes a connection). Offered
# at most this much a read, it grows only to about twice this or twice the largest frame.
READ_CHUNK_BYTES = 32 * 1024


_picows_get_buffer = WSProtocol.get_buffer


class _SessionProtocol(WSProtocol):  # type: ignore[misc]
    def get_buffer(self, size_hint: int) -> memoryview:
        view: memoryview = _picows_get_buffer(self, size_hint)  # not super(): this runs on every read
        return view if len(view) <= READ_CHUNK_BYTES else view[:READ_CHUNK_BYTES]


@dataclass(frozen=True, slots=True)
class SessionRoute:
    """The session WebSocket: ``prefix`` + a session id; ``make(session_id, link)`` builds the
    connection for a handshake to that path."""

    prefix: str
    make: Callable[[str, SessionLink], Session]
    max_frame_bytes: int  # the transport's frame cap (close 1009 past it)
    close_grace_s: float


def upgrade_protocol(route: SessionRoute) -> type[asyncio.Protocol]:
    """The class to pass as uvicorn's ``Config(ws=...)``."""
    prefix = route.prefix.encode()

    class SessionUpgrade(asyncio.Protocol):
        def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                     _loop: asyncio.AbstractEventLoop | None = None) -> None:
            self._config = config
            self._server_state = server_state
            self._app_state = app_state
            self._transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._transport = cast(asyncio.Transport, transport)

        def data_received(self, data: bytes) -> None:
            transport = self._transport
            assert transport is not None
            target = data[: data.find(b"\r\n")].split(b" ")
            path = target[1].split(b"?", 1)[0] if len(target) > 1 else b""
            if path.startswith(prefix):
                self._to_picows(transport, data)
            else:
                assert AutoWebSocketsProtocol is not None
                other = AutoWebSocketsProtocol(config=self._config, server_state=self._server_state,
                                               app_state=self._app_state)
                other.connection_made(transport)
                transport.set_protocol(other)
                other.data_received(data)

        def _to_picows(self, transport: asyncio.Transport, request: bytes) -> None:
            registry: set[object] = self._server_state.connections

            def listener(upgrade: WSUpgradeRequest) -> SessionLink:
                session_id = upgrade.path.split(b"?", 1)[0][len(prefix):].decode("utf-8", "replace")
                return SessionLink(lambda link: route.make(session_id, link), registry, route.max_frame_bytes,
                                   route.close_grace_s)

            protocol = _SessionProtocol(None, None, False, listener, _picows_log, True, None,
                                        False, 20, 20, WSAutoPingStrategy.PING_WHEN_IDLE, True,
                                        route.max_frame_bytes, None, 16 * 1024)
            protocol.connection_made(transport)
            transport.set_protocol(protocol)
            view = memoryview(request)
            while view:
                buffer = protocol.get_buffer(len(view))
                n = min(len(buffer), len(view))
                buffer[:n] = view[:n]
                protocol.buffer_updated(n)
                view = view[n:]

    return SessionUpgrade
