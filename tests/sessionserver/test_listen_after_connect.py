"""Where a participant listens (docs/protocol.md 11.3): on its WebSocket until its WebRTC leg has
connected, not from the answer. A leg that never connects (UDP blocked, no TURN server: the
browser then falls back to voice via relay) takes none of the other side's voice away from the
WebSocket; once a leg connects, the voice goes there and no longer over the WebSocket."""

from __future__ import annotations

import asyncio
import time

import pytest

from sessionserver.client import SessionClient
from tests.audiokit import accept_answer, encode_tone, loopback_peer, make_offer, strip_candidates, wait_connected
from tests.conftest import RunningServer
from wire import messages as m

pytestmark = pytest.mark.timeout(60)


async def speak(client: SessionClient, packets: int, first_seq: int = 0) -> None:
    start = time.monotonic()
    for i, payload in enumerate(encode_tone(440.0, packets)):
        delay = start + i * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # a microphone's pace, not synchronisation
        await client.send_audio(first_seq + i, payload)


async def test_a_leg_that_never_connects_leaves_the_voice_on_the_websocket(server: RunningServer) -> None:
    tutor, student = await server.pair("listen-unconnected")
    pc = loopback_peer()
    pc.addTransceiver("audio", direction="recvonly")
    try:
        sdp, _ = strip_candidates(await make_offer(pc))  # no candidate: the server can never reach it
        await student.send_signal(m.RtcOffer(sdp))
        await asyncio.wait_for(student.rtc_answers.get(), 10)  # answered, never connected
        await speak(tutor, 40)
        got = [await asyncio.wait_for(student.audio.get(), 5) for _ in range(40)]
        assert [r.seq for r in got] == list(range(40)) and {r.pid for r in got} == {tutor.pid}
    finally:
        await pc.close()
    await tutor.close()
    await student.close()


async def test_a_connected_leg_takes_the_voice_from_the_websocket(server: RunningServer) -> None:
    tutor, student = await server.pair("listen-connected")
    pc = loopback_peer()
    pc.addTransceiver("audio", direction="recvonly")
    try:
        await student.send_signal(m.RtcOffer(await make_offer(pc)))
        await accept_answer(pc, await asyncio.wait_for(student.rtc_answers.get(), 10))
        await asyncio.wait_for(wait_connected(pc), 10)
        await speak(tutor, 40)
        await asyncio.sleep(0.2)  # the last packets' way to the WebSocket, had they gone there
        assert student.audio.empty(), "a participant listening on a connected leg also got AudioRelay frames"
    finally:
        await pc.close()
    await tutor.close()
    await student.close()
