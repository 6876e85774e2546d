"""The server's WebRTC leg against plain aiortc client peers, all on 127.0.0.1 in one event loop,
SDP handed across directly. Opus goes through the leg untouched: aiortc's Opus encoder and decoder
are counted and must not run on the server."""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import inspect
import itertools
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aioice import Connection, stun
from aioice.utils import random_string
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import opus as aiortc_opus
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from sessionserver.media.leg import LegState, RtcLeg
from sessionserver.media.passthrough import HeldTrack, MediaTimeline
from sessionserver.media.rtc_config import (
    IceServer,
    RemoteAddressPolicy,
    RtcConfig,
    RtcError,
    RtcErrorCode,
    parse_candidate,
)
from tests.audiokit import (
    FRAME,
    PacketLog,
    ToneTrack,
    accept_answer,
    audio_packets,
    collect_pcm,
    decode_opus,
    dominant_frequency,
    encode_tone,
    loopback_peer,
    make_offer,
    on_track,
    play,
    strip_candidates,
    wait_connected,
)

pytestmark = pytest.mark.timeout(30)


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class CodecCalls:
    encodes: int = 0
    decodes: int = 0


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[CodecCalls]:
    """Counts every call of aiortc's Opus encoder and decoder, in this process, client included."""
    calls = CodecCalls()
    encode, decode = aiortc_opus.OpusEncoder.encode, aiortc_opus.OpusDecoder.decode

    def counted_encode(self: aiortc_opus.OpusEncoder, *args: Any, **kwargs: Any) -> Any:
        calls.encodes += 1
        return encode(self, *args, **kwargs)

    def counted_decode(self: aiortc_opus.OpusDecoder, *args: Any, **kwargs: Any) -> Any:
        calls.decodes += 1
        return decode(self, *args, **kwargs)

    monkeypatch.setattr(aiortc_opus.OpusEncoder, "encode", counted_encode)
    monkeypatch.setattr(aiortc_opus.OpusDecoder, "decode", counted_decode)
    yield calls


@dataclass
class Peers:
    """Legs and client peers made by a test, all closed at its end."""

    legs: list[RtcLeg] = field(default_factory=list)
    clients: list[RTCPeerConnection] = field(default_factory=list)

    def leg(
        self, config: RtcConfig | None = None, on_state: Callable[[LegState], None] | None = None
    ) -> tuple[RtcLeg, PacketLog]:
        log = PacketLog()
        leg = RtcLeg(config or RtcConfig(), log, on_state=on_state)
        self.legs.append(leg)
        return leg, log

    def client(self) -> RTCPeerConnection:
        pc = loopback_peer()
        self.clients.append(pc)
        return pc

    async def close(self) -> None:
        for leg in self.legs:
            await leg.close()
        for pc in self.clients:
            await pc.close()


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    made = Peers()
    try:
        yield made
    finally:
        await made.close()


async def connect(leg: RtcLeg, pc: RTCPeerConnection) -> str:
    """Offer from ``pc``, answer from ``leg``, wait until ``pc`` is connected; the answer."""
    answer = await leg.handle_offer(await make_offer(pc))
    await accept_answer(pc, answer)
    await wait_connected(pc)
    return answer


def answer_port(answer: str) -> int:
    media = SessionDescription.parse(answer).media[0]
    return media.ice_candidates[0].port


def server_receivers(leg: RtcLeg) -> list[RTCRtpReceiver]:
    return leg._pc.getReceivers()


def decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "audio-decoder"]


# -- the private API the leg relies on ---------------------------------------------------------


def test_private_hooks_are_as_pinned() -> None:
    """If this fails, aiortc or aioice changed: re-verify rtc.py against the new version before
    moving the pin (aiortc==1.16.0, aioice==0.13.0)."""
    assert importlib.metadata.version("aiortc") == "1.16.0"
    assert importlib.metadata.version("aioice") == "0.13.0"
    # The receive tap replaces this method on the instance; the DTLS transport calls it by keyword.
    params = list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters)
    assert params == ["self", "packet", "arrival_time_ms"]
    assert inspect.iscoroutinefunction(RTCRtpReceiver._handle_rtp_packet)
    assert "_handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in inspect.getsource(RTCDtlsTransport)
    # Gathering is taken over per connection; ICE restart swaps credentials on it.
    params = list(inspect.signature(Connection.get_component_candidates).parameters)
    assert params == ["self", "component", "addresses", "timeout"]
    gatherer = RTCIceGatherer(iceServers=[])
    transport = RTCIceTransport(gatherer)
    connection = transport._connection
    assert gatherer._remote_candidates_end is False
    for name in ("_protocols", "_local_username", "_local_password", "_remote_candidates_end", "_remote_candidates"):
        assert hasattr(connection, name), name
    assert connection.local_username == connection._local_username
    # The remote track's queue is the one a decoder would fill.
    assert "_queue" in vars(RemoteStreamTrack("audio"))
    # The forwarder sends on the sender's own SRTP session and ICE pair, keeps its sender-report
    # counters, and learns the parameters from the pc's call of send() on the instance.
    assert "await transceiver.sender.send(self.__localRtp(transceiver))" in inspect.getsource(RTCPeerConnection)
    dtls_source = inspect.getsource(RTCDtlsTransport)
    assert "self._tx_srtp = Session(tx_policy)" in dtls_source
    assert "if self._state != State.CONNECTED:" in dtls_source
    assert "active_pair = self._nominated.get(component)" in inspect.getsource(Connection)
    sender_source = inspect.getsource(RTCRtpSender)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__packet_count", "__octet_count"):
        assert f"self.{name} = " in sender_source, name
        assert f"{name}" in inspect.getsource(RTCRtpSender._run_rtcp), name
    assert "self._ssrc = random32()" in sender_source


# -- audio in both directions ------------------------------------------------------------------


async def test_browser_tone_reaches_on_packet_undecoded(peers: Peers, codec_calls: CodecCalls) -> None:
    states: list[LegState] = []
    leg, log = peers.leg(on_state=states.append)
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    await connect(leg, pc)

    await log.wait_for(60)
    assert dominant_frequency(decode_opus(log.payloads[20:60])) == pytest.approx(440, abs=5)
    seqs = [seq for _, seq, _ in log.packets[:60]]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))  # loopback: no loss
    stamps = [ts for _, _, ts in log.packets[:60]]
    assert all((b - a) % (1 << 32) == FRAME for a, b in itertools.pairwise(stamps))

    assert codec_calls.encodes > 0  # the client encoded its tone ...
    assert codec_calls.decodes == 0  # ... and nobody decoded it
    receiver = server_receivers(leg)[0]
    assert isinstance(receiver.track, RemoteStreamTrack)
    assert receiver.track._queue.qsize() == 0  # the unread remote track does not fill up
    assert leg.stats.packets_in == len(log.packets)
    assert leg.state is LegState.CONNECTED
    assert states[-1] is LegState.CONNECTED


async def test_leg_audio_reaches_the_client(peers: Peers, codec_calls: CodecCalls) -> None:
    leg, _ = peers.leg()
    pc = peers.client()
    pc.addTransceiver("audio", direction="recvonly")  # the client sends nothing, so encodes are the server's
    track = on_track(pc)
    answer = await connect(leg, pc)
    assert "a=sendrecv" in answer or "a=sendonly" in answer

    player = asyncio.create_task(play(leg, audio_packets(encode_tone(660, 150))))
    try:
        pcm = await collect_pcm(await track, 60)
    finally:
        player.cancel()
    assert dominant_frequency(pcm[20 * FRAME :]) == pytest.approx(660, abs=5)
    assert codec_calls.encodes == 0  # the leg only packetized
    assert leg.stats.packets_out >= 60
    assert leg.stats.packets_dropped == 0


async def test_trickled_candidates_connect(peers: Peers) -> None:
    leg, log = peers.leg()
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    offer, candidates = strip_candidates(await make_offer(pc))
    assert candidates
    await accept_answer(pc, await leg.handle_offer(offer))
    for candidate in candidates:
        await leg.add_candidate(candidate, "0", 0)
    await leg.add_candidate("", "0", 0)
    await wait_connected(pc)
    await log.wait_for(10)
    assert leg.stats.candidates == len(candidates)


# -- renegotiation and restart -----------------------------------------------------------------


async def test_renegotiation_with_a_re_added_track(peers: Peers) -> None:
    """Like a browser that removed its track and added a new one: the old m-line turns recvonly,
    a new one sends; the leg taps the new receiver and keeps sending on the first."""
    leg, log = peers.leg()
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    incoming = on_track(pc)
    await connect(leg, pc)
    await log.wait_for(20)
    player = asyncio.create_task(play(leg, audio_packets(encode_tone(660, 400))))
    try:
        first: RTCRtpTransceiver = pc.getTransceivers()[0]
        first.sender.replaceTrack(None)
        first.direction = "recvonly"
        pc.addTransceiver(ToneTrack(880), direction="sendonly")
        answer = await leg.handle_offer(await make_offer(pc))
        assert len(SessionDescription.parse(answer).media) == 2
        await accept_answer(pc, answer)

        before = len(log.packets)
        await log.wait_for(before + 60)
        assert dominant_frequency(decode_opus(log.payloads[-40:])) == pytest.approx(880, abs=5)
        assert len(server_receivers(leg)) == 2
        # The leg's own audio still reaches the client on the first m-line.
        pcm = await collect_pcm(await incoming, 50)
        assert dominant_frequency(pcm[10 * FRAME :]) == pytest.approx(660, abs=5)
    finally:
        player.cancel()
    for receiver in server_receivers(leg):
        assert isinstance(receiver.track, RemoteStreamTrack)
        assert receiver.track._queue.qsize() == 0


async def test_ice_restart_takes_new_credentials(peers: Peers) -> None:
    """aiortc clients cannot restart ICE, so the client's side is done by hand: new credentials in
    its offer, the leg's new ones taken from the answer. The leg must answer with new credentials,
    accept checks made with them, refuse the old ones, and keep the media flowing."""
    leg, log = peers.leg()
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    first_answer = await connect(leg, pc)
    await log.wait_for(10)

    client: Connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    client._local_username, client._local_password = random_string(4), random_string(22)
    offer = await make_offer(pc)
    assert f"a=ice-ufrag:{client.local_username}" in offer
    answer = await leg.handle_offer(offer)
    old = SessionDescription.parse(first_answer).media[0].ice
    new = SessionDescription.parse(answer).media[0].ice
    assert old is not None and new is not None
    assert (new.usernameFragment, new.password) != (old.usernameFragment, old.password)
    await accept_answer(pc, answer)
    client.remote_username, client.remote_password = new.usernameFragment, new.password

    pair = client._nominated[1]
    request = client.build_request(pair, nominate=False)
    response, _ = await pair.protocol.request(request, pair.remote_addr, integrity_key=str(new.password).encode())
    assert response.message_class == stun.Class.RESPONSE

    stale = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    stale.attributes["USERNAME"] = f"{old.usernameFragment}:{client.local_username}"
    stale.attributes["PRIORITY"] = 1
    stale.attributes["ICE-CONTROLLING"] = 1
    stale.add_message_integrity(str(old.password).encode())  # signed here, so the unsigned 401 is read
    with pytest.raises(stun.TransactionFailed) as unauthenticated:
        await pair.protocol.request(stale, pair.remote_addr, retransmissions=0)
    assert unauthenticated.value.response.error_code == 401

    before = len(log.packets)
    await log.wait_for(before + 25)
    assert leg.state is LegState.CONNECTED


async def test_a_fresh_leg_after_close(peers: Peers) -> None:
    leg, log = peers.leg()
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    port = answer_port(await connect(leg, pc))
    await log.wait_for(10)

    await leg.close()
    await leg.close()  # idempotent
    await pc.close()
    assert leg.state is LegState.CLOSED
    leg.send_audio(audio_packets([b"\xfc\xff\xfe"])[0])  # ignored, does not raise
    with pytest.raises(RtcError) as refused:
        await leg.handle_offer("v=0\r\n")
    assert refused.value.code is RtcErrorCode.RTC_FAILED
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # the leg's ICE socket is gone
    assert decoder_threads() == []

    again, log2 = peers.leg()
    pc2 = peers.client()
    pc2.addTrack(ToneTrack(523))
    await connect(again, pc2)
    await log2.wait_for(60)
    assert dominant_frequency(decode_opus(log2.payloads[20:60])) == pytest.approx(523, abs=5)


async def test_the_client_hanging_up_closes_the_leg(peers: Peers) -> None:
    closed = asyncio.Event()

    def state_changed(state: LegState) -> None:
        if state is LegState.CLOSED:
            closed.set()

    leg, log = peers.leg(on_state=state_changed)
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    await connect(leg, pc)
    await log.wait_for(5)
    await pc.close()
    await closed.wait()
    assert leg.state is LegState.CLOSED


# -- refusals ----------------------------------------------------------------------------------


async def offer_from(pc: RTCPeerConnection) -> str:
    return await make_offer(pc)


async def test_bad_offers_are_refused_and_the_leg_stays_usable(peers: Peers) -> None:
    leg, log = peers.leg(RtcConfig(max_sdp_bytes=4096))

    audio = peers.client()
    audio.addTrack(ToneTrack(440))
    good = await offer_from(audio)

    video = peers.client()
    video.addTransceiver("video")
    video_only = await offer_from(video)

    both = peers.client()
    both.addTransceiver("audio")
    both.addTransceiver("video")
    audio_and_video = await offer_from(both)

    pcmu = peers.client()
    transceiver = pcmu.addTransceiver("audio")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
    )
    no_opus = await offer_from(pcmu)
    assert "opus" not in no_opus.lower()

    bad: list[object] = [
        "",
        "hello",
        b"v=0\r\n",
        123,
        "v=0\r\n" + "a=x\r\n" * 2000,  # too long
        good[: good.index("m=audio")],  # no media at all
        good.replace("a=ice-ufrag", "a=x-ice-ufrag"),  # no ICE credentials
        good.replace("a=fingerprint", "a=x-fingerprint"),  # no DTLS fingerprint
        video_only,
        audio_and_video,
        no_opus,
        re.sub(r"m=audio \d+", "m=audio x", good),  # does not parse
    ]
    for sdp in bad:
        with pytest.raises(RtcError) as refused:
            await leg.handle_offer(sdp)  # type: ignore[arg-type]
        assert refused.value.code is RtcErrorCode.BAD_SDP, sdp
        assert refused.value.message
        assert leg.state is LegState.NEW

    await accept_answer(audio, await leg.handle_offer(good))
    await wait_connected(audio)
    await log.wait_for(10)


async def test_candidates_are_checked_and_bounded(peers: Peers) -> None:
    leg, _ = peers.leg(RtcConfig(max_candidates=3))
    with pytest.raises(RtcError) as early:
        await leg.add_candidate("candidate:1 1 udp 2122260223 127.0.0.1 40001 typ host", "0", 0)
    assert early.value.code is RtcErrorCode.BAD_CANDIDATE

    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    offer = await make_offer(pc)
    # Candidates in an offer that the leg would refuse are left out, not fatal.
    extra = (
        "a=candidate:2 1 udp 2122194687 abcd-1234.local 50000 typ host\r\n"
        "a=candidate:3 1 udp 1686052607 198.51.100.7 50001 typ srflx raddr 0.0.0.0 rport 0\r\n"
        "a=candidate:4 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n"
        "a=candidate:garbage\r\n"
    )
    offer = offer.replace("a=end-of-candidates", extra + "a=end-of-candidates", 1)
    await leg.handle_offer(offer)
    assert leg.stats.candidates == 1
    assert leg.stats.candidates_dropped == 4

    refused = {
        "candidate:5 1 udp 2122194687 abcd-1234.local 50000 typ host": "mDNS",
        "candidate:6 1 udp 2122194687 10.1.2.3 50000 typ host": "not loopback",
        "candidate:7 1 tcp 2122194687 127.0.0.1 50000 typ host tcptype passive": "tcp",
        "candidate:8 1 udp 2122194687 127.0.0.1 50000 typ prflx": "prflx",
        "candidate:9 2 udp 2122194687 127.0.0.1 50000 typ host": "component 2",
        "candidate:garbage": "malformed",
        "127.0.0.1 50000": "malformed",
        "candidate:10 1 udp 2122194687 127.0.0.1 70000 typ host": "port",
    }
    for line, why in refused.items():
        with pytest.raises(RtcError) as bad:
            await leg.add_candidate(line, "0", 0)
        assert bad.value.code is RtcErrorCode.BAD_CANDIDATE, why
    with pytest.raises(RtcError) as nowhere:
        await leg.add_candidate("candidate:11 1 udp 2122194687 127.0.0.1 40001 typ host", "7", None)
    assert nowhere.value.code is RtcErrorCode.BAD_CANDIDATE
    with pytest.raises(RtcError) as unnamed:
        await leg.add_candidate("candidate:11 1 udp 2122194687 127.0.0.1 40001 typ host", None, None)
    assert unnamed.value.code is RtcErrorCode.BAD_CANDIDATE

    # A flood: the offer's candidate plus two more fill the limit of three.
    for port in (40001, 40002, 40002):  # the repeat is the same candidate, not a new one
        await leg.add_candidate(f"candidate:12 1 udp 2122194687 127.0.0.1 {port} typ host", "0", None)
    with pytest.raises(RtcError) as flood:
        for port in range(40003, 40100):
            await leg.add_candidate(f"candidate:12 1 udp 2122194687 127.0.0.1 {port} typ host", None, 0)
    assert flood.value.code is RtcErrorCode.TOO_MANY_CANDIDATES
    assert leg.stats.candidates == 3

    # The same limit holds for candidates carried in an offer.
    crowded_leg, _ = peers.leg(RtcConfig(max_candidates=3))
    lines = "".join(f"a=candidate:13 1 udp 2122194687 127.0.0.1 {41000 + i} typ host\r\n" for i in range(3))
    with pytest.raises(RtcError) as crowded:
        await crowded_leg.handle_offer(offer.replace("a=end-of-candidates", lines + "a=end-of-candidates", 1))
    assert crowded.value.code is RtcErrorCode.TOO_MANY_CANDIDATES
    assert crowded_leg.state is LegState.NEW


def test_address_policy() -> None:
    loopback = RemoteAddressPolicy(RtcConfig())
    assert loopback.allows_host("127.0.0.1")
    for host in ("127.0.0.2", "10.0.0.1", "8.8.8.8", "::1", "not-an-ip"):
        assert not loopback.allows_host(host), host

    lan = RemoteAddressPolicy(RtcConfig(remote_networks=("192.168.0.0/16",)))
    assert lan.allows_host("192.168.4.5") and not lan.allows_host("10.0.0.1")

    public = RemoteAddressPolicy(RtcConfig(ice_servers=(IceServer(("stun:stun.example.org:3478",)),)))
    for host in ("8.8.8.8", "192.168.1.10", "10.2.3.4", "2001:4860:4860::8888", "127.0.0.1"):
        assert public.allows_host(host), host  # 127.0.0.1 only as one of host_addresses
    for host in ("127.0.0.2", "169.254.1.1", "224.0.0.1", "0.0.0.0", "::1", "fe80::1", "240.0.0.1"):
        assert not public.allows_host(host), host


def test_candidate_parsing() -> None:
    parsed = parse_candidate("a=candidate:842163049 1 UDP 1677729535 192.0.2.4 3478 typ srflx raddr 0.0.0.0 rport 0")
    assert (str(parsed.address), parsed.port, parsed.type, parsed.priority) == ("192.0.2.4", 3478, "srflx", 1677729535)
    assert parsed.related_port == 0
    assert parse_candidate("candidate:1 1 udp 1 ::1 9 typ host generation 0 ufrag abcd").key == ("::1", 9)
    for text in ("", "x" * 600, "candidate:1 1 udp 1 1.2.3.4 9 host host", "candidate:-- 1 udp 1 1.2.3.4 9 typ host"):
        with pytest.raises(RtcError):
            parse_candidate(text)


def test_config_is_checked() -> None:
    for bad in (
        {"host_addresses": ()},
        {"host_addresses": ("localhost",)},
        {"udp_port_min": 5000, "udp_port_max": 4000},
        {"udp_port_min": 80, "udp_port_max": 90},
        {"udp_port_min": 5000},
        {"max_candidates": 0},
        {"queue_packets": 0},
        {"remote_networks": ("nonsense",)},
    ):
        with pytest.raises(ValueError):
            RtcConfig(**bad)
    with pytest.raises(ValueError):
        IceServer(("http://example.org",))


async def test_datagrams_from_refused_addresses_are_dropped(peers: Peers) -> None:
    """The leg's socket ignores sources the policy refuses (here 127.0.0.2: the default policy is
    127.0.0.1 only). A STUN request without credentials gets a 400 from 127.0.0.1, nothing from
    127.0.0.2; loopback delivers in order, so the 400 also means the first datagram was seen."""
    leg, _ = peers.leg()
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    port = answer_port(await leg.handle_offer(await make_offer(pc)))
    loop = asyncio.get_running_loop()
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as local,
    ):
        stranger.bind(("127.0.0.2", 0))
        local.bind(("127.0.0.1", 0))
        local.setblocking(False)
        stranger.sendto(bytes(request), ("127.0.0.1", port))
        local.sendto(bytes(request), ("127.0.0.1", port))
        data, _ = await loop.sock_recvfrom(local, 2048)
        stranger.setblocking(False)
        with pytest.raises(BlockingIOError):
            stranger.recvfrom(2048)
    assert stun.parse_message(data).error_code == 400
    assert leg.stats.datagrams_refused == 1


# -- ports -------------------------------------------------------------------------------------


def free_udp_range(size: int) -> int:
    """The first port of ``size`` consecutive free UDP ports on loopback."""
    for base in range(42000, 60000, 97):
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free UDP port range")


async def test_ice_ports_stay_in_the_configured_range(peers: Peers) -> None:
    base = free_udp_range(3)
    config = RtcConfig(udp_port_min=base, udp_port_max=base + 2)
    leg, log = peers.leg(config)
    pc = peers.client()
    pc.addTrack(ToneTrack(440))
    assert base <= answer_port(await connect(leg, pc)) <= base + 2
    await log.wait_for(5)

    # A range with no free port: the leg cannot answer and says so.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        full, _ = peers.leg(RtcConfig(udp_port_min=port, udp_port_max=port))
        other = peers.client()
        other.addTrack(ToneTrack(440))
        with pytest.raises(RtcError) as refused:
            await full.handle_offer(await make_offer(other))
    assert refused.value.code is RtcErrorCode.RTC_FAILED
    assert full.state is LegState.CLOSED


# -- a slow leg and the media timeline ---------------------------------------------------------


async def test_a_slow_leg_drops_its_oldest_packets_and_never_blocks(peers: Peers) -> None:
    leg, _ = peers.leg(RtcConfig(queue_packets=10))
    packets = audio_packets(encode_tone(660, 5) * 200)
    started = time.monotonic()
    for packet in packets:  # nobody reads: the leg is not even connected
        leg.send_audio(packet)
    assert time.monotonic() - started < 0.5
    assert leg.stats.queued == 10
    assert leg.stats.packets_dropped == len(packets) - 10

    # Connected, far faster than real time: bounded as well, and the newest packets get through.
    pc = peers.client()
    pc.addTransceiver("audio", direction="recvonly")
    track = on_track(pc)
    busy, _ = peers.leg(RtcConfig(queue_packets=10))
    await connect(busy, pc)
    for packet in audio_packets(encode_tone(660, 300)):
        busy.send_audio(packet)
        assert busy.stats.queued <= 10
    assert busy.stats.packets_dropped >= 290 - busy.stats.packets_out
    frames = await collect_pcm(await track, 5)
    assert len(frames) == 5 * FRAME


async def test_a_leg_keeps_the_newest_packets_until_it_connects(peers: Peers) -> None:
    now = [0.0]
    leg = RtcLeg(RtcConfig(queue_packets=4), PacketLog(), clock=lambda: now[0])
    peers.legs.append(leg)
    for packet in audio_packets([b"\xfc\x00"] * 10):
        leg.send_audio(packet)
        now[0] += 0.02
    assert leg.stats.packets_dropped == 6
    assert [pts for pts, _ in leg._out._pending] == [FRAME * i for i in range(6, 10)]


async def test_held_track_returns_nothing_until_stopped() -> None:
    track = HeldTrack()
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert not waiting.done()
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_forwarded_rtp_is_what_aiortc_would_send(peers: Peers) -> None:
    """Header fields as negotiated (payload type, SSRC, mid), numbers contiguous, the sender
    reports' counters kept, and nothing sent by aiortc's own sender loop."""
    leg, _ = peers.leg()
    pc = peers.client()
    transceiver = pc.addTransceiver("audio", direction="recvonly")
    seen: list[RtpPacket] = []
    all_in = asyncio.Event()
    receiver = transceiver.receiver
    handle = receiver._handle_rtp_packet

    async def tap(packet: RtpPacket, arrival_time_ms: int) -> None:
        seen.append(packet)
        if len(seen) >= 20:
            all_in.set()
        await handle(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = tap  # type: ignore[method-assign]
    answer = await connect(leg, pc)
    payloads = encode_tone(440, 20)
    await play(leg, audio_packets(payloads), interval=0.005)
    await all_in.wait()  # loopback: nothing lost (the test's timeout bounds the wait)
    media = SessionDescription.parse(answer).media[0]
    sender = leg._pc.getTransceivers()[0].sender
    assert [p.payload for p in seen] == payloads
    assert {p.payload_type for p in seen} == {media.rtp.codecs[0].payloadType}
    assert media.rtp.codecs[0].mimeType.lower() == "audio/opus"
    assert {p.ssrc for p in seen} == {sender._ssrc}
    assert {p.extensions.mid for p in seen} == {media.rtp.muxId}
    assert all((b.sequence_number - a.sequence_number) % 65536 == 1 for a, b in itertools.pairwise(seen))
    assert all((b.timestamp - a.timestamp) % (1 << 32) == FRAME for a, b in itertools.pairwise(seen))
    assert sender._RTCRtpSender__packet_count == leg.stats.packets_out == 20  # type: ignore[attr-defined]
    assert sender._RTCRtpSender__octet_count == sum(map(len, payloads))  # type: ignore[attr-defined]
    assert sender._RTCRtpSender__rtp_timestamp == seen[-1].timestamp  # type: ignore[attr-defined]


def test_media_timeline() -> None:
    timeline = MediaTimeline()
    stamp = timeline.stamp
    # Continuous speech: contiguous, however the packets arrive (late, bunched).
    assert [stamp(1, s, FRAME, t) for s, t in ((7, 0.0), (8, 0.02), (9, 0.2), (10, 0.2))] == [
        0,
        960,
        1920,
        2880,
    ]
    # One packet lost upstream, the next on time: a 20 ms hole.
    assert stamp(1, 12, FRAME, 0.24) == 2880 + 2 * FRAME
    # Three seconds of silence: the timestamps advance by the silence.
    last = stamp(1, 13, FRAME, 0.26)
    after = stamp(1, 200, FRAME, 3.26)
    assert after == last + 3 * 48000
    # Another speaker, arriving early: never backwards.
    assert stamp(2, 0, FRAME, 3.26) == after + FRAME
    # Sequence numbers wrap.
    t2 = MediaTimeline()
    assert t2.stamp(1, 0xFFFFFFFF, FRAME, 0.0) == 0
    assert t2.stamp(1, 0, FRAME, 5.0) == FRAME
