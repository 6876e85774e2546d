"""One session WebSocket on picows: frames in to its ``Connection``, frames out without awaits.

Outgoing messages are framed here (server frames are never masked) and written straight to the
underlying transport. A frame fanned out to several participants is framed once: ``ws_frame``
remembers the last payload it framed, and a room delivers one payload to all its receivers in a
row. Control frames (the close) go through picows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

log = logging.getLogger("tutorwire.fastws")

_BINARY, _TEXT, _CONT, _CLOSE = WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION, WSMsgType.CLOSE
_last_payload: bytes = b""
_last_frame: bytes = b"\x82\x00"


def ws_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked binary WebSocket frame (RFC 6455 5.2), header and all."""
    global _last_payload, _last_frame
    if payload is _last_payload:
        return _last_frame
    n = len(payload)
    if n < 126:
        frame = bytes((0x82, n)) + payload
    elif n < 65_536:
        frame = b"\x82\x7e" + n.to_bytes(2, "big") + payload
    else:
        frame = b"\x82\x7f" + n.to_bytes(8, "big") + payload
    _last_payload, _last_frame = payload, frame
    return frame


class Session(Protocol):
    """What the link drives: ``sessionserver.connection.Connection``."""

    def opened(self) -> None: ...

    def frame_received(self, data: bytes) -> None: ...

    def text_received(self) -> None: ...

    def resumed(self) -> None: ...

    def peer_closed(self, code: int) -> None: ...

    def lost(self) -> None: ...

    def shutdown(self) -> None: ...


class SessionLink(WSListener):
    """picows's listener for one session WebSocket, and the ``Link`` its connection writes to.

    ``make(link)`` builds the connection once the handshake is done; ``registry`` holds the
    links uvicorn must shut down when it stops (its ``server_state.connections``)."""

    def __init__(self, make: Callable[[SessionLink], Session], registry: set[object], max_message_bytes: int,
                 close_grace_s: float) -> None:
        self._make = make
        self._registry = registry
        self.max_message_bytes = max_message_bytes
        self.close_grace_s = close_grace_s
        self.paused = False
        self.session: Session | None = None
        self._transport: WSTransport | None = None
        self._write: Callable[[bytes], None] = _nowhere
        self._parts: list[bytes] | None = None  # a fragmented message being reassembled
        self._parts_bytes = 0
        self._parts_text = False
        self._closing = False
        self._abort: asyncio.TimerHandle | None = None

    # --- picows -------------------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self._write = transport.underlying_transport.write
        self._registry.add(self)
        self.session = self._make(self)
        self.session.opened()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        session = self.session
        if session is None:
            return
        if kind is _BINARY and frame.fin and self._parts is None:
            session.frame_received(frame.get_payload_as_bytes())  # the hot path
        elif kind is _CLOSE:
            self._peer_closed(frame)
        elif kind is _BINARY or kind is _TEXT or kind is _CONT:
            self._fragment(kind, frame, session)
        # PING is answered by picows; PONG needs nothing

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._write = _nowhere
        self._registry.discard(self)
        if self._abort is not None:
            self._abort.cancel()
            self._abort = None
        if self.session is not None:
            self.session.lost()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.session is not None:
            self.session.resumed()

    # --- uvicorn ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """uvicorn is stopping: the connection closes with 1012 (its client resumes later)."""
        if self.session is not None:
            self.session.shutdown()
        self.close(1012, "server restarting")

    # --- Link -----------------------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        self._write(ws_frame(frame))

    def write_many(self, frames: list[bytes]) -> None:
        if len(frames) == 1:
            self._write(ws_frame(frames[0]))
        else:
            self._write(b"".join([ws_frame(f) for f in frames]))

    def close(self, code: int, reason: str) -> None:
        transport = self._transport
        if self._closing or transport is None:
            return
        self._closing = True
        self._write = _nowhere
        transport.send_close(WSCloseCode(code), reason.encode()[:123])
        transport.disconnect(graceful=True)
        if not transport.is_disconnected:  # a peer that takes nothing more is cut after the grace
            self._abort = asyncio.get_running_loop().call_later(self.close_grace_s, transport.disconnect, False)

    # --- internals -----------------------------------------------------------------------------

    def _peer_closed(self, frame: WSFrame) -> None:
        """The peer closed: answer with its code (RFC 6455 5.5.1) and drop the connection."""
        transport = self._transport
        if transport is None or self._closing:
            if transport is not None:
                transport.disconnect(graceful=True)
            return
        self._closing = True
        self._write = _nowhere
        code = frame.get_close_code().value if frame.payload_size >= 2 else 1005  # 1005: no code given
        if self.session is not None:
            self.session.peer_closed(code)
        if code in (1005, 1006, 1015) or not 1000 <= code < 5000:
            code = 1000
        transport.send_close(WSCloseCode(code))
        transport.disconnect(graceful=True)

    def _fragment(self, kind: WSMsgType, frame: WSFrame, session: Session) -> None:
        """A frame of a fragmented message (RFC 6455 5.4), or a text message."""
        if kind is not _CONT:
            if self._parts is not None:  # a new message inside a fragmented one
                self._protocol_error("a new message began inside a fragmented one")
                return
            self._parts, self._parts_bytes, self._parts_text = [], 0, kind is _TEXT
        elif self._parts is None:
            self._protocol_error("a continuation frame outside a fragmented message")
            return
        self._parts_bytes += frame.payload_size
        if self._parts_bytes > self.max_message_bytes:
            self._parts = None
            self.close(1009, "message too big")
            return
        if not self._parts_text:
            self._parts.append(frame.get_payload_as_bytes())
        if frame.fin:
            parts, self._parts = self._parts, None
            if self._parts_text:
                session.text_received()
            else:
                session.frame_received(b"".join(parts))

    def _protocol_error(self, why: str) -> None:
        log.info("closing a session WebSocket with 1002: %s", why)
        self.close(1002, why)


def _nowhere(data: bytes) -> None:
    """Where writes go once the link is closing: nowhere."""
