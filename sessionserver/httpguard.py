"""uvicorn's HTTP protocol with the bounds it lacks: a header timeout, a connection limit, and
an Origin allow-list for WebSocket upgrades.

uvicorn cuts an idle keep-alive connection, but a client that sends its request headers a byte at
a time is never cut (data keeps cancelling the keep-alive timer), and ``limit_concurrency`` is
only checked once the headers are complete, which such a client never reaches. So a few hundred
slow clients could hold the server's file descriptors for ever (slowloris).

* ``header_timeout_s``: from the connection's start, and from the start of each later request on
  a kept-alive connection, its headers must be complete within this long; otherwise it gets
  ``408 Request Timeout`` and is closed.
* ``allowed_origins``: a WebSocket upgrade (the session WebSocket and ``/ws/matcher``) from a
  browser page of another origin is refused with ``403`` before it reaches the app; the page's
  own origin and the listed ones may (harmless without cookies today, and safe when they come).
* ``max_connections``: a connection beyond this many open ones (HTTP, WebSockets and session
  WebSockets together: uvicorn's ``server_state.connections``) gets ``503 Service Unavailable``
  with ``Retry-After`` at once and is closed, before a byte of it is read.

Each of these answers is followed by a lingering close, as nginx's ``lingering_close``: the
server ends its side (FIN) and reads and drops what the client still sends, for at most
``LINGER_S``, before it closes (no longer counted against ``max_connections``). A client that
keeps sending (a slow client is always mid-request) would otherwise meet a reset that can destroy
the answer in its receive buffer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("tutorwire.http")

RETRY_AFTER_S = 5
LINGER_S = 1.0


def _answer(status: str, body: str, extra: str = "") -> bytes:
    data = body.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(data)}\r\n"
            f"{extra}connection: close\r\n\r\n").encode() + data


TIMEOUT_ANSWER = _answer("408 Request Timeout", "request headers took too long\n")
FULL_ANSWER = _answer("503 Service Unavailable", "the server is at its connection limit; retry shortly\n",
                      f"retry-after: {RETRY_AFTER_S}\r\n")


_LOG_EVERY_S = 10.0
_refusals = {"count": 0, "logged_at": -_LOG_EVERY_S}


def _refused(limit: int) -> None:
    """Count a refusal; log at most every 10 s (a flood must not flood the log too)."""
    _refusals["count"] += 1
    now = time.monotonic()
    if now - _refusals["logged_at"] >= _LOG_EVERY_S:
        log.warning("refused %d connections at the connection limit (%d open, TUTORWIRE_MAX_CONNECTIONS)",
                    _refusals["count"], limit)
        _refusals["count"], _refusals["logged_at"] = 0, now


FORBIDDEN_ORIGIN = _answer("403 Forbidden", "this origin may not open a WebSocket here (TUTORWIRE_ALLOWED_ORIGINS)\n")


def origin_allowed(headers: list[tuple[bytes, bytes]], allowed: frozenset[str]) -> bool:
    """May a WebSocket upgrade with these (lower-cased) request headers go on? One without an
    ``Origin`` (not a browser: the pen gateway, a script) may; a browser's may when its origin is
    this server's own (its host and port are the ``Host`` it asked for) or in ``allowed``
    (``scheme://host[:port]`` exactly, or ``*`` for any)."""
    origin = host = None
    for name, value in headers:
        if name == b"origin":
            origin = value.decode("latin-1").strip()
        elif name == b"host":
            host = value.decode("latin-1").strip().lower()
    if origin is None or "*" in allowed or origin in allowed:
        return True
    scheme, sep, rest = origin.lower().partition("://")
    return bool(sep) and scheme in ("http", "https") and host is not None and rest == host


def guarded_protocol(header_timeout_s: float, max_connections: int,
                     allowed_origins: frozenset[str] = frozenset()) -> type[HttpToolsProtocol]:
    """uvicorn's ``http`` protocol class with these bounds (see the module's text)."""

    class GuardedHttp(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _lingering = False
        _counted = False  # uvicorn's protocol was set up (not refused at the limit)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= max_connections:
                _refused(max_connections)
                self.transport = transport
                self._answer_and_close(FULL_ANSWER)
                return
            super().connection_made(transport)
            self._counted = True
            self._arm_header_timer()

        def _answer_and_close(self, answer: bytes) -> None:
            """``answer``, then a lingering close (see the module's text)."""
            transport = self.transport
            transport.write(answer)
            if not transport.can_write_eof():
                transport.close()
                return
            transport.write_eof()
            self._lingering = True
            self.connections.discard(self)  # a lingering connection no longer counts against the limit
            self.loop.call_later(LINGER_S, transport.close)

        def data_received(self, data: bytes) -> None:
            if not self._lingering:  # while lingering, what the client still sends is dropped
                super().data_received(data)

        def _arm_header_timer(self) -> None:
            if self._header_timer is None and header_timeout_s > 0:
                self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing() and not self._lingering:
                self._answer_and_close(TIMEOUT_ANSWER)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_header_timer()  # a later request on a kept-alive connection: its own bound

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            if self.parser.should_upgrade() and not origin_allowed(self.headers, allowed_origins):
                self._answer_and_close(FORBIDDEN_ORIGIN)
                return
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            if self._counted:
                super().connection_lost(exc)

    return GuardedHttp
