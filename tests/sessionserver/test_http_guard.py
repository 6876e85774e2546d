"""Slow HTTP clients (slowloris) against a real server process: one that sends its request
headers a byte at a time is answered 408 and closed after TUTORWIRE_HEADER_TIMEOUT_S, also on a
kept-alive connection's second request; past TUTORWIRE_MAX_CONNECTIONS a connection gets 503 at
once; a refused client that keeps sending still reads its whole answer (a lingering close); the
server's file descriptors come back and it serves normally throughout."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tests.sessionserver.test_session_bounds import ServerProcess, serving

SLOW = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def fds(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


async def answer_of(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), within)


async def healthz(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await answer_of(reader, 10)
    writer.close()
    return data


async def trickle(writer: asyncio.StreamWriter, stop: asyncio.Event, start: bytes = b"") -> None:
    """``start``, then a header byte every 0.2 s until told to stop or the server closes."""
    data = start or b"x"
    while not stop.is_set() and not writer.is_closing():
        try:
            writer.write(data)
            await writer.drain()
        except ConnectionError:
            return
        data = b"x"
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass


async def test_slow_headers_are_cut_and_the_connection_limit_holds(tmp_path: Path) -> None:
    async with serving(tmp_path, header_timeout_s=1.5, max_connections=40) as server:
        assert (await healthz(server.port)).startswith(b"HTTP/1.1 200")
        before = fds(server)
        stop = asyncio.Event()
        slow = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(60)]
        started = time.monotonic()
        tricklers = [asyncio.create_task(trickle(w, stop, SLOW)) for _, w in slow]
        answers = await asyncio.gather(*(answer_of(r, 10) for r, _ in slow))
        took = time.monotonic() - started
        stop.set()
        await asyncio.gather(*tricklers)
        timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(timed_out) + len(refused) == 60, [a[:40] for a in answers]
        assert 30 <= len(timed_out) <= 40, "the limit counts every open connection (40)"
        assert refused and all(b"retry-after: 5" in a for a in refused)
        assert took < 6, f"the slow clients were cut after {took:.1f} s, not about 1.5 s"
        for _, w in slow:
            w.close()
        assert (await healthz(server.port)).startswith(b"HTTP/1.1 200")
        for _ in range(50):  # the server closed them; the descriptors go back
            if fds(server) <= before + 2:
                break
            await asyncio.sleep(0.1)
        assert fds(server) <= before + 2, (before, fds(server))
        assert any("connection limit" in line for line in server.log)


async def test_a_kept_alive_connection_s_second_request_has_its_own_bound(tmp_path: Path) -> None:
    async with serving(tmp_path, header_timeout_s=1.0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"}"), 5)  # the JSON body of the first answer
        assert first.startswith(b"HTTP/1.1 200")
        stop = asyncio.Event()
        trickler = asyncio.create_task(trickle(writer, stop, SLOW))
        second = await answer_of(reader, 5)
        stop.set()
        await trickler
        assert second.startswith(b"HTTP/1.1 408"), second[:60]
        writer.close()


async def upgrade_status(port: int, path: str, origin: str | None) -> bytes:
    """The status line a WebSocket upgrade of ``path`` from ``origin`` gets."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return status.strip()


async def test_websocket_upgrades_from_other_origins_are_refused(tmp_path: Path) -> None:
    async with serving(tmp_path, allowed_origins="https://school.example, http://localhost:9") as server:
        port = server.port
        for path in ("/ws/session/s1", "/ws/matcher"):
            assert await upgrade_status(port, path, "http://evil.example") == b"HTTP/1.1 403 Forbidden", path
            assert await upgrade_status(port, path, f"http://127.0.0.1:{port + 1}") == b"HTTP/1.1 403 Forbidden"
            assert await upgrade_status(port, path, "null") == b"HTTP/1.1 403 Forbidden"  # a sandboxed page
            for fine in (None, f"http://127.0.0.1:{port}", "https://school.example", "http://localhost:9"):
                assert (await upgrade_status(port, path, fine)).startswith(b"HTTP/1.1 101"), (path, fine)
        assert (await healthz(port)).startswith(b"HTTP/1.1 200")  # plain HTTP is not an upgrade: untouched


async def test_a_refused_client_that_keeps_sending_still_reads_its_whole_answer(tmp_path: Path) -> None:
    # The server closes a refused connection only after it has ended its side and dropped what
    # the client still sends (a lingering close): closing with unread data would send a reset,
    # which can destroy the answer before the client reads it.
    async with serving(tmp_path, max_connections=1) as server:
        _, holder = await asyncio.open_connection("127.0.0.1", server.port)  # takes the one place
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"x" * 60_000)
            await asyncio.sleep(0.05)  # the client, not the test, takes its time: the answer is already sent
            writer.write(b"x" * 60_000)
            answer = await answer_of(reader, 5)
            assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"retry shortly\n"), answer[:60]
            writer.close()
        holder.close()
