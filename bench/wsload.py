"""A minimal WebSocket client for load generation: an asyncio ``Protocol`` speaking RFC 6455 by hand.

Why not a library: at 200 rooms the generator sends and receives about 12,500 frames a second each
way, and a general client costs several times the server's own work per frame. This one does only
what the benchmark needs: the HTTP Upgrade handshake, binary frames out (masked with the all-zero
key, which RFC 6455 allows and which makes masking a no-op), unmasked frames in, Pong for Ping and
an immediate close. It does not reassemble fragmented messages (neither server under test sends
any) and treats one as a protocol failure.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import time
from collections.abc import Callable
from typing import cast

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK = b"\0\0\0\0"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA

MessageHandler = Callable[[bytes, float], None]
"""Called with each binary message's payload and the monotonic time its bytes were read."""


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one client frame (FIN set, masked with the zero key) for ``length`` bytes."""
    if length < 126:
        return bytes((0x80 | opcode, 0x80 | length)) + _ZERO_MASK
    if length < 1 << 16:
        return bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big") + _ZERO_MASK
    return bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big") + _ZERO_MASK


def _ignore(payload: bytes, now: float) -> None:
    pass


class WsClient(asyncio.Protocol):
    """One client connection. ``await opened`` before sending; set ``on_message`` to receive."""

    def __init__(self, host: str, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16))
        self._request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self._transport: asyncio.Transport | None = None
        self._upgraded = False
        self._buf = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_message: MessageHandler = _ignore
        self.close_code: int | None = None  # the server's close code, if it closed first

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self._upgraded:
            data = self._handshake(data)
            if not data:
                return
        n = len(data)
        pos = 0
        while n - pos >= 2:
            length = data[pos + 1]  # server frames are never masked
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            head = data[pos]
            pos = end
            if head == 0x80 | OP_BINARY:
                self.on_message(data[start:end], now)
            else:
                self._control(head, data[start:end])
        if pos < n:
            self._buf = data[pos:]

    # --- sending -------------------------------------------------------------------------------

    def send(self, payload: bytes) -> int:
        """Send one binary message; returns the bytes it takes on the wire (header included)."""
        header = frame_header(OP_BINARY, len(payload))
        if self._transport is not None:
            self._transport.write(header + payload)
        return len(header) + len(payload)

    def close(self, code: int = 1000) -> None:
        """Send a close frame and drop the connection without waiting for the server's answer."""
        if self._transport is not None:
            self._transport.write(frame_header(OP_CLOSE, 2) + code.to_bytes(2, "big"))
            self._transport.close()

    # --- internals -----------------------------------------------------------------------------

    def _handshake(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self._buf = data
            return b""
        head = data[:end].split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in head[1:])}
        if not head[0].startswith(b"HTTP/1.1 101") or headers.get(b"sec-websocket-accept") != self._accept:
            self.opened.set_exception(ConnectionError(f"upgrade refused: {head[0].decode(errors='replace')}"))
            assert self._transport is not None
            self._transport.close()
            return b""
        self._upgraded = True
        self.opened.set_result(None)
        return data[end + 4 :]

    def _control(self, head: int, payload: bytes) -> None:
        opcode = head & 0x0F
        if opcode == OP_PING:
            if self._transport is not None:
                self._transport.write(frame_header(OP_PONG, len(payload)) + payload)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close(self.close_code if 1000 <= self.close_code < 5000 else 1000)
        elif opcode == OP_PONG:
            pass
        else:  # text, continuation or an unfragmented-but-not-final frame: not used by either server
            self.close_code = 1002
            self.close(1002)


async def connect(host: str, port: int, path: str) -> WsClient:
    """An open connection to ``ws://host:port/path``."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WsClient(host, port, path), host, port)
    await client.opened
    return client
