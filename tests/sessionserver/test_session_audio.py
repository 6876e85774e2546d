"""Live audio through the real server: Opus over the session WebSocket and over WebRTC (aiortc
peers on loopback only), forwarded without transcoding, both ways between the transports; mute;
a peer that drops and renegotiates; hostile signalling harms nobody else."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import opus as aiortc_opus

from sessionserver.client import SessionClient
from sessionserver.media.burst import later
from sessionserver.media.packets import AudioPacket, relay_frame
from tests.audiokit import (
    FRAME,
    ToneTrack,
    accept_answer,
    collect_pcm,
    decode_opus,
    dominant_frequency,
    encode_tone,
    loopback_peer,
    make_offer,
    wait_connected,
)
from tests.conftest import RunningServer, StartServer
from wire import ErrorCode, Limits, Point, Role, decode_frame, encode
from wire import messages as m
from wire.audio import extend_rtp_seq

pytestmark = pytest.mark.timeout(60)


async def stream_ws_tone(client: SessionClient, freq: float, packets: int, first_seq: int = 0) -> None:
    """Send a tone as 20 ms Opus packets over the WebSocket, in real time (a speaker's pace)."""
    start = time.monotonic()
    for i, payload in enumerate(encode_tone(freq, packets)):
        delay = start + i * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing like a microphone, not synchronisation
        await client.send_audio(first_seq + i, payload, capture_ts=1_000_000 + 20 * i)


async def relayed(client: SessionClient, count: int) -> list[m.AudioRelay]:
    return [await asyncio.wait_for(client.audio.get(), 10) for _ in range(count)]


@asynccontextmanager
async def rtc_peer(client: SessionClient, freq: float | None) -> AsyncIterator[RTCPeerConnection]:
    """An aiortc peer that signals through ``client``'s session WebSocket (sending a tone if
    ``freq`` is given, receiving in any case)."""
    pc = loopback_peer()
    if freq is not None:
        pc.addTrack(ToneTrack(freq))
    else:
        pc.addTransceiver("audio", direction="recvonly")
    try:
        await client.send_signal(m.RtcOffer(await make_offer(pc)))
        await accept_answer(pc, await asyncio.wait_for(client.rtc_answers.get(), 10))
        await asyncio.wait_for(wait_connected(pc), 10)
        yield pc
    finally:
        await pc.close()


async def test_websocket_to_websocket_tone_and_fields(server: RunningServer) -> None:
    tutor, student = await server.pair("audio-ws")
    await stream_ws_tone(tutor, 440.0, 50)
    got = await relayed(student, 50)
    assert [r.seq for r in got] == list(range(50)) and {r.pid for r in got} == {tutor.pid}
    assert [r.capture_ts for r in got] == [1_000_000 + 20 * i for i in range(50)]
    assert all(b.session_ms >= a.session_ms for a, b in itertools.pairwise(got))
    assert [r.payload for r in got] == encode_tone(440.0, 50)  # byte for byte: never transcoded
    assert abs(dominant_frequency(decode_opus([r.payload for r in got])[FRAME * 5:]) - 440.0) < 5
    assert tutor.audio.empty()  # nobody hears themselves
    await tutor.close()
    await student.close()


async def test_webrtc_speaker_heard_over_websocket(server: RunningServer) -> None:
    tutor, student = await server.pair("audio-rtc-ws")
    async with rtc_peer(tutor, 523.0):
        got = await relayed(student, 60)
    assert {r.pid for r in got} == {tutor.pid} and all(r.capture_ts == 0 for r in got)
    pcm = decode_opus([r.payload for r in got[20:]])
    assert abs(dominant_frequency(pcm) - 523.0) < 5
    await tutor.close()
    await student.close()


async def test_websocket_speaker_heard_over_webrtc_without_transcoding(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"encode": 0, "decode": 0}
    for name, cls in (("encode", aiortc_opus.OpusEncoder), ("decode", aiortc_opus.OpusDecoder)):
        original: Callable[..., object] = getattr(cls, name)

        def counted(self: object, *args: object, _original: Callable[..., object] = original,
                    _name: str = name) -> object:
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(cls, name, counted)
    tutor, student = await server.pair("audio-ws-rtc")
    async with rtc_peer(student, None) as pc:
        track = pc.getReceivers()[0].track
        sender = asyncio.create_task(stream_ws_tone(tutor, 660.0, 150))
        decoded_before = calls["decode"]
        pcm = await asyncio.wait_for(collect_pcm(track, 60), 20)
        sender.cancel()
    assert abs(dominant_frequency(pcm[FRAME * 20:]) - 660.0) < 5
    # The student's aiortc decoded (that is the listener); the server encoded nothing at all.
    assert calls["encode"] == 0 and calls["decode"] > decoded_before
    await tutor.close()
    await student.close()


async def test_webrtc_to_webrtc(server: RunningServer) -> None:
    tutor, student = await server.pair("audio-rtc-rtc")
    async with rtc_peer(student, None) as listener:
        track = listener.getReceivers()[0].track
        async with rtc_peer(tutor, 330.0):
            pcm = await asyncio.wait_for(collect_pcm(track, 80), 20)
    assert abs(dominant_frequency(pcm[FRAME * 40:]) - 330.0) < 5
    await tutor.close()
    await student.close()


async def test_mute_and_unmute(server: RunningServer) -> None:
    tutor, student = await server.pair("audio-mute")
    await tutor.mute(True)
    await student.wait_for(lambda: student.replica.muted[tutor.pid])
    await stream_ws_tone(tutor, 440.0, 10)
    # Barriers, not sleeps: the server handles the tutor's frames in order, so once the student
    # has the page the tutor added after the audio, and then the pong to its own later ping,
    # everything the server sent it about that audio has arrived.
    await tutor.add_page(1)
    await student.wait_for(lambda: len(student.replica.pages) == 2)
    await student.ping()
    await student.wait_for(lambda: student.clock_sync.samples > 0)
    assert student.audio.empty()
    await tutor.mute(False)
    await student.wait_for(lambda: not student.replica.muted[tutor.pid])
    await stream_ws_tone(tutor, 440.0, 10, first_seq=10)
    got = await relayed(student, 10)
    assert [r.seq for r in got] == list(range(10, 20))
    late = SessionClient(server.url("audio-mute"), server.token("audio-mute", Role.STUDENT), Role.STUDENT)
    await tutor.mute(True)
    await student.close()
    welcome = await late.connect()  # a participant who joins later learns the mute from Welcome
    assert [(e.role, e.muted) for e in welcome.roster] == [(Role.TUTOR, True), (Role.STUDENT, False)]
    await tutor.close()
    await late.close()


async def test_dropped_peer_renegotiates_and_hears_again(server: RunningServer) -> None:
    tutor, student = await server.pair("audio-redo")
    sender = asyncio.create_task(stream_ws_tone(tutor, 440.0, 400))
    try:
        async with rtc_peer(student, None) as first:
            pcm = await asyncio.wait_for(collect_pcm(first.getReceivers()[0].track, 20), 20)
            assert np.abs(pcm).max() > 0
        # The browser's peer is gone (network change, page reload): a brand-new one renegotiates.
        async with rtc_peer(student, None) as second:
            pcm = await asyncio.wait_for(collect_pcm(second.getReceivers()[0].track, 60), 20)
        assert abs(dominant_frequency(pcm[FRAME * 30:]) - 440.0) < 5
    finally:
        sender.cancel()
    await tutor.close()
    await student.close()


async def test_hostile_signalling_hurts_nobody_else(server: RunningServer) -> None:
    tutor, student = await server.pair("audio-hostile")
    video_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    for bad in ("garbage", "v=0\r\n" * 5, video_only):
        await student.send_signal(m.RtcOffer(bad))
    await student.wait_for(lambda: sum(e.code == ErrorCode.BAD_SDP for e in student.errors) == 3)
    await student.send_signal(m.RtcCandidate("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0))
    await student.wait_for(lambda: any(e.code == ErrorCode.BAD_CANDIDATE for e in student.errors))
    # The tutor's ink and audio carry on meanwhile.
    stroke = await tutor.begin_stroke()
    await tutor.add_points(stroke, [Point(10 + i, 20, t=8 * i, pressure=300) for i in range(4)])
    await tutor.end_stroke(stroke)
    await student.wait_for(lambda: any(s.ended for s in student.replica.strokes(tutor.pid)))
    await stream_ws_tone(tutor, 440.0, 5)
    assert len(await relayed(student, 5)) == 5
    assert tutor.errors == []
    await tutor.close()
    await student.close()


async def test_candidate_flood_is_refused(start_server: StartServer) -> None:
    srv = await start_server(rtc_max_candidates=4)
    tutor, student = await srv.pair("audio-flood")
    pc = loopback_peer()
    pc.addTransceiver("audio", direction="recvonly")
    try:
        await student.send_signal(m.RtcOffer(await make_offer(pc)))
        await asyncio.wait_for(student.rtc_answers.get(), 10)
        for port in range(20):
            await student.send_signal(m.RtcCandidate(f"candidate:{port} 1 udp 1 127.0.0.1 {40000 + port} typ host",
                                                     "0", 0))
        await student.wait_for(lambda: any(e.code == ErrorCode.TOO_MANY_CANDIDATES for e in student.errors))
        await student.wait_for(lambda: student.connected)
        assert tutor.errors == []
    finally:
        await pc.close()
    await tutor.close()
    await student.close()


def test_rtp_sequence_numbers_extend_across_wraps() -> None:
    heard: list[int] = []
    last = -1
    for rtp in (65533, 65534, 65535, 0, 2, 1, 3):  # a wrap, a lost packet and one reordered
        last = extend_rtp_seq(last, rtp)
        heard.append(last)
    assert heard == [65533, 65534, 65535, 65536, 65538, 65537, 65539]
    assert extend_rtp_seq(0xFFFFFFFF, 0) == 0  # the 32-bit seq wraps too, as the protocol says


def test_relay_frames_are_encoded_once_as_the_codec_encodes_them() -> None:
    first = AudioPacket(2, 7, 1_000_140, 350, FRAME, encode_tone(440, 1)[0])
    second = AudioPacket(2, 0xFFFFFFFF, 0, 2**40, FRAME, b"\xfc\x00")
    frame = relay_frame(first)
    assert frame == encode(m.AudioRelay(2, 7, 1_000_140, 350, first.payload))
    assert relay_frame(first) is frame  # every listener of a packet gets the same bytes
    assert decode_frame(relay_frame(second), Limits()) == m.AudioRelay(2, 0xFFFFFFFF, 0, 2**40, b"\xfc\x00")
    assert relay_frame(AudioPacket(*first)) == frame  # an equal packet: encoded again, the same


async def test_audio_writes_wait_for_the_end_of_the_loop_iteration_in_order() -> None:
    sent: list[int] = []

    def fails(item: int) -> None:
        raise RuntimeError("a listener's fault")

    for i in range(3):
        later(sent.append, i)
    later(fails, -1)  # logged; the others still go
    later(sent.append, 3)
    assert sent == []  # nothing yet: the iteration's input comes first
    await asyncio.sleep(0)
    assert sent == [0, 1, 2, 3]
    later(sent.append, 4)
    await asyncio.sleep(0)
    assert sent == [0, 1, 2, 3, 4]
