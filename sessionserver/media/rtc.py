"""The server's WebRTC leg for one participant (aiortc): the browser's Opus packets in, other
participants' Opus packets out, never decoded or re-encoded.

Receiving: each receiver's ``_handle_rtp_packet`` is replaced on the instance by a tap that hands
the Opus payload to ``on_packet`` and returns, so aiortc's jitter buffer and decoder never see a
packet (its decoder thread idles, the remote track's queue stays empty). Side effects: no
inbound-rtp stats and no receiver reports upstream. Sending: ``PassthroughTrack`` hands aiortc
``av.Packet``s, which its sender only packetizes (``OpusEncoder.pack``).

Private aiortc/aioice API used, so both are pinned exactly (aiortc==1.16.0, aioice==0.13.0) and
``tests/test_rtc_leg.py::test_private_hooks_are_as_pinned`` fails when any of it changes:
``RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms)``, ``RTCIceTransport._connection``,
``RTCIceGatherer._remote_candidates_end``, and on aioice's ``Connection``:
``get_component_candidates`` (replaced per instance), ``_protocols``, ``_local_username``,
``_local_password``, ``_remote_candidates_end``, ``_remote_candidates``.

ICE gathering, per leg and without touching module globals: the leg replaces its ICE connection's
``get_component_candidates`` with one that binds exactly ``RtcConfig.host_addresses`` (aioice
would scan every interface and skip 127.0.0.1), inside ``udp_port_min``..``udp_port_max`` when set
(aioice 0.13 binds port 0 only; see aiortc/aioice#47), with sockets that drop datagrams from
addresses the ``RemoteAddressPolicy`` refuses. STUN and TURN candidates are gathered as aioice does.

ICE restart: aiortc cannot restart ICE. When an offer brings new ICE credentials the leg swaps the
credentials on its aioice connection (and answers with new ones of its own), re-opens it to remote
candidates, and lets the browser's checks move the selected pair: aioice, as the controlled agent,
learns the new pair from the browser's checks and switches to it once nominated. DTLS and SRTP
carry on. A leg whose connection already failed cannot be restarted (``RTC_FAILED``); the client
then gets a new leg.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aioice import Candidate, Connection, stun, turn
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, relayed_candidate, server_reflexive_candidate
from aioice.utils import random_string
from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtp import RtpPacket
from aiortc.sdp import MediaDescription, SessionDescription

from wire.errors import ProtocolError
from wire.opus import packet_samples

from .packets import AudioPacket
from .passthrough import PassthroughTrack
from .rtc_config import (
    IceServer,
    RemoteAddressPolicy,
    RtcConfig,
    RtcError,
    RtcErrorCode,
    parse_candidate,
)

__all__ = ["IceServer", "LegState", "LegStats", "OnPacket", "RtcConfig", "RtcError", "RtcErrorCode", "RtcLeg"]

logger = logging.getLogger(__name__)

OnPacket = Callable[[bytes, int, int], None]  # (opus_payload, rtp_seq, rtp_timestamp)


class LegState(enum.Enum):
    """A leg's lifecycle, following its peer connection: NEW until the first answer, CONNECTING,
    CONNECTED; FAILED when ICE or DTLS gave up (close the leg; the client needs a new one);
    CLOSED after ``close()`` or when the client closed its peer connection (DTLS close_notify)."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


_PC_STATES = {
    "new": LegState.NEW,
    "connecting": LegState.CONNECTING,
    "connected": LegState.CONNECTED,
    "failed": LegState.FAILED,
    "closed": LegState.CLOSED,
}


@dataclass(frozen=True)
class LegStats:
    state: LegState
    packets_in: int  # Opus packets from the browser handed to on_packet
    packets_ignored: int  # RTP packets not handed on: another payload type, empty, not Opus
    packets_out: int  # outgoing packets handed to aiortc's sender
    packets_dropped: int  # outgoing packets dropped because the leg's queue was full
    queued: int  # outgoing packets waiting
    candidates: int  # distinct remote candidates accepted
    candidates_dropped: int  # candidates left out of offers (malformed, mDNS, refused address)
    datagrams_refused: int  # UDP datagrams from addresses the policy refuses


class _GuardedStunProtocol(StunProtocol):
    """aioice's socket protocol, dropping datagrams whose source the policy refuses (answers to our
    own STUN transactions excepted: a STUN or TURN server may sit anywhere)."""

    def __init__(self, connection: Connection, leg: RtcLeg) -> None:
        super().__init__(connection)
        self._leg = leg

    def datagram_received(self, data: bytes | str, addr: tuple[object, ...]) -> None:
        host = str(addr[0])
        if not self._leg._policy.allows_host(host) and not self._answers_our_request(data):
            self._leg._datagrams_refused += 1
            return
        super().datagram_received(data, addr)

    def _answers_our_request(self, data: bytes | str) -> bool:
        if not isinstance(data, bytes):
            return False
        try:
            message = stun.parse_message(data)
        except ValueError:
            return False
        return message.transaction_id in self.transactions


async def _bind_udp(
    factory: Callable[[], StunProtocol], address: str, port_min: int, port_max: int
) -> tuple[asyncio.DatagramTransport, StunProtocol]:
    """Bind a UDP socket on ``address``: any port for 0/0, else the first free one in the range,
    starting at a random port so that legs do not all probe the same ones."""
    loop = asyncio.get_running_loop()
    if (port_min, port_max) == (0, 0):
        return await loop.create_datagram_endpoint(factory, local_addr=(address, 0))
    count = port_max - port_min + 1
    start = random.randrange(count)
    for i in range(count):
        port = port_min + (start + i) % count
        try:
            return await loop.create_datagram_endpoint(factory, local_addr=(address, port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
    raise OSError(errno.EADDRINUSE, f"no free UDP port in {port_min}-{port_max} on {address}")


def _to_aiortc(server: IceServer) -> RTCIceServer:
    return RTCIceServer(urls=list(server.urls), username=server.username, credential=server.credential)


def _primary_audio(description: SessionDescription) -> MediaDescription | None:
    """The audio section whose transport the others bundle onto (the first in the BUNDLE group)."""
    bundle = next((g for g in description.group if g.semantic == "BUNDLE" and g.items), None)
    audio = [m for m in description.media if m.kind == "audio"]
    if bundle is not None:
        for media in audio:
            if media.rtp.muxId == str(bundle.items[0]):
                return media
    return audio[0] if audio else None


def _bad_sdp(message: str) -> RtcError:
    return RtcError(RtcErrorCode.BAD_SDP, message)


class RtcLeg:
    """One participant's WebRTC connection. Implements ``AudioSink``.

    Call ``handle_offer`` with each offer the client sends (the first, and any renegotiation or ICE
    restart on the same connection), ``add_candidate`` with each trickled candidate, and ``close``
    when the participant leaves or the leg failed; a client that reconnects gets a new leg.
    ``on_packet(opus_payload, rtp_seq, rtp_timestamp)`` is called in the event loop for every Opus
    packet the browser sends, as it arrives: no jitter buffer, no reordering, and the RTP numbers
    jump when the browser's stream changes (a new track, a new SSRC). ``on_state`` is called on
    every change of ``state``.
    """

    def __init__(
        self,
        config: RtcConfig,
        on_packet: OnPacket,
        *,
        on_state: Callable[[LegState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._policy = RemoteAddressPolicy(config)
        self._on_packet = on_packet
        self._on_state = on_state
        self._track = PassthroughTrack(config.queue_packets, clock=clock)
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[_to_aiortc(s) for s in config.ice_servers]))
        # The outgoing track exists before the first offer, so the offer's first audio m-line takes
        # this transceiver and the answer is sendrecv.
        self._pc.addTrack(self._track)
        self._pc.on("connectionstatechange", self._pc_state_changed)
        self._lock = asyncio.Lock()
        self._tapped: list[RTCRtpReceiver] = []
        self._guarded: list[Connection] = []
        self._remote_ice: tuple[str, str] | None = None
        self._mids: tuple[str, ...] = ()
        self._opus_types: frozenset[int] = frozenset()
        self._remote_keys: set[tuple[str, int]] = set()
        self._state = LegState.NEW
        self._closed = False
        self._tap_failed = False
        self._packets_in = 0
        self._packets_ignored = 0
        self._candidates_dropped = 0
        self._datagrams_refused = 0
        self._prepare_transports()

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> LegState:
        return self._state

    @property
    def stats(self) -> LegStats:
        return LegStats(
            state=self._state,
            packets_in=self._packets_in,
            packets_ignored=self._packets_ignored,
            packets_out=self._track.packets_out,
            packets_dropped=self._track.packets_dropped,
            queued=self._track.queued,
            candidates=len(self._remote_keys),
            candidates_dropped=self._candidates_dropped,
            datagrams_refused=self._datagrams_refused,
        )

    def _set_state(self, state: LegState) -> None:
        if state is self._state or self._state is LegState.CLOSED:
            return
        self._state = state
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                logger.exception("RtcLeg on_state callback failed")

    def _pc_state_changed(self) -> None:
        state = _PC_STATES.get(self._pc.connectionState, LegState.FAILED)
        if state is LegState.NEW and self._remote_ice is not None:
            state = LegState.CONNECTING
        self._set_state(state)

    def _check_open(self) -> None:
        if self._closed:
            raise RtcError(RtcErrorCode.RTC_FAILED, "this media connection is closed; start a new one")

    # -- signalling --------------------------------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        """Apply the client's offer and return the answer SDP, which carries the server's
        candidates (the server does not trickle). ``RtcError``: BAD_SDP, TOO_MANY_CANDIDATES
        (the leg is unchanged), RTC_FAILED (the leg is closed)."""
        async with self._lock:
            self._check_open()
            filtered, offer, keys = self._validate_offer(sdp)
            primary = _primary_audio(offer)
            assert primary is not None and primary.ice is not None  # checked by _validate_offer
            credentials = (str(primary.ice.usernameFragment), str(primary.ice.password))
            try:
                if self._remote_ice is not None and credentials != self._remote_ice:
                    self._restart_ice(credentials)
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=filtered, type="offer"))
                self._prepare_transports()
                await self._pc.setLocalDescription(await self._pc.createAnswer())
                answer = self._pc.localDescription.sdp
                local = SessionDescription.parse(answer)
            except RtcError:
                await self.close()
                raise
            except Exception as exc:
                await self.close()
                raise RtcError(RtcErrorCode.RTC_FAILED, f"the offer could not be applied ({exc})") from exc
            if not any(m.ice_candidates for m in local.media):
                await self.close()
                raise RtcError(RtcErrorCode.RTC_FAILED, "the server could not bind a UDP port for media")
            self._remote_ice = credentials
            self._mids = tuple(str(m.rtp.muxId) for m in offer.media)
            self._remote_keys |= keys
            self._opus_types = frozenset(
                codec.payloadType
                for media in local.media
                for codec in media.rtp.codecs
                if codec.mimeType.lower() == "audio/opus" and codec.payloadType is not None
            )
            self._pc_state_changed()
            return answer

    def _validate_offer(self, sdp: object) -> tuple[str, SessionDescription, set[tuple[str, int]]]:
        """The offer with refused candidates left out, parsed, and the candidates it adds."""
        if not isinstance(sdp, str):
            raise _bad_sdp("the offer must be SDP text")
        if len(sdp.encode("utf-8", "surrogatepass")) > self._config.max_sdp_bytes:
            raise _bad_sdp(f"the offer is longer than {self._config.max_sdp_bytes} bytes")
        if "\x00" in sdp or not sdp.startswith("v=0"):
            raise _bad_sdp("the offer is not SDP")
        lines: list[str] = []
        keys: set[tuple[str, int]] = set()
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                try:
                    candidate = parse_candidate(line)
                except RtcError:
                    self._candidates_dropped += 1
                    continue
                if not self._policy.allows(candidate.address):
                    self._candidates_dropped += 1
                    continue
                keys.add(candidate.key)
            lines.append(line)
        if len(self._remote_keys | keys) > self._config.max_candidates:
            raise RtcError(
                RtcErrorCode.TOO_MANY_CANDIDATES, f"at most {self._config.max_candidates} candidates are accepted"
            )
        filtered = "\r\n".join(lines) + "\r\n"
        try:
            offer = SessionDescription.parse(filtered)
        except Exception as exc:  # aiortc's parser raises whatever the bad line makes it raise
            raise _bad_sdp("the offer does not parse as SDP") from exc
        if any(m.kind != "audio" for m in offer.media):
            raise _bad_sdp("the offer may only hold audio")
        audio = [m for m in offer.media if m.port != 0]
        if not audio:
            raise _bad_sdp("the offer holds no audio")
        if len(offer.media) > self._config.max_audio_sections:
            raise _bad_sdp(f"the offer may hold at most {self._config.max_audio_sections} audio sections")
        for media in offer.media:
            if not media.rtp.muxId:
                raise _bad_sdp("every m-line of the offer needs an a=mid")
            if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
                raise _bad_sdp("the offer is missing its ICE credentials")
            if media.dtls is None or not media.dtls.fingerprints:
                raise _bad_sdp("the offer is missing its DTLS fingerprint")
            if not media.rtcp_mux:
                raise _bad_sdp("the offer must multiplex RTP and RTCP (a=rtcp-mux)")
        for media in audio:
            if not any(c.mimeType.lower() == "audio/opus" and c.clockRate == 48000 for c in media.rtp.codecs):
                raise _bad_sdp("every audio section of the offer must offer Opus at 48 kHz")
        if len(set(self._mids) | {str(m.rtp.muxId) for m in offer.media}) > self._config.max_audio_sections:
            raise _bad_sdp(f"a connection may hold at most {self._config.max_audio_sections} audio sections")
        return filtered, offer, keys

    def _restart_ice(self, credentials: tuple[str, str]) -> None:
        """Take the offer's new ICE credentials on the existing ICE connection (see the module
        docstring) and make new ones of our own for the answer."""
        transport = self._primary_ice_transport()
        connection = transport._connection
        if transport.state in ("failed", "closed") or self._pc.connectionState in ("failed", "closed"):
            raise RtcError(RtcErrorCode.RTC_FAILED, "the media connection has failed; start a new one")
        connection.remote_username, connection.remote_password = credentials
        connection._local_username = random_string(4)
        connection._local_password = random_string(22)
        transport.iceGatherer._remote_candidates_end = False
        connection._remote_candidates_end = False

    def _primary_ice_transport(self) -> RTCIceTransport:
        return self._pc.getTransceivers()[0].receiver.transport.transport

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """Add a trickled remote candidate; ``""`` ends the client's candidates. Refused
        (``RtcError``): malformed, mDNS, TCP or refused addresses (BAD_CANDIDATE), one before the
        offer or naming no section of it (BAD_CANDIDATE), more than ``max_candidates`` distinct
        ones per leg (TOO_MANY_CANDIDATES). All candidates go to the bundled transport."""
        async with self._lock:
            self._check_open()
            if self._remote_ice is None:
                raise RtcError(RtcErrorCode.BAD_CANDIDATE, "a candidate cannot come before the offer")
            if candidate == "":
                await self._pc.addIceCandidate(None)
                return
            parsed = parse_candidate(candidate)
            if not self._policy.allows(parsed.address):
                raise RtcError(RtcErrorCode.BAD_CANDIDATE, f"candidates at {parsed.address} are not accepted")
            if sdp_mid is None and sdp_mline_index is None:
                raise RtcError(RtcErrorCode.BAD_CANDIDATE, "a candidate needs sdpMid or sdpMLineIndex")
            if sdp_mid is not None and sdp_mid not in self._mids:
                raise RtcError(RtcErrorCode.BAD_CANDIDATE, "the candidate's sdpMid names no section of the offer")
            if sdp_mline_index is not None and not 0 <= sdp_mline_index < len(self._mids):
                raise RtcError(RtcErrorCode.BAD_CANDIDATE, "the candidate's sdpMLineIndex is out of range")
            if parsed.key not in self._remote_keys:
                if len(self._remote_keys) >= self._config.max_candidates:
                    raise RtcError(
                        RtcErrorCode.TOO_MANY_CANDIDATES,
                        f"at most {self._config.max_candidates} candidates are accepted",
                    )
                self._remote_keys.add(parsed.key)
            primary = self._pc.getTransceivers()[0]
            await self._pc.addIceCandidate(
                RTCIceCandidate(
                    component=1,
                    foundation=parsed.foundation,
                    ip=str(parsed.address),
                    port=parsed.port,
                    priority=parsed.priority,
                    protocol="udp",
                    type=parsed.type,
                    relatedAddress=parsed.related_address,
                    relatedPort=parsed.related_port,
                    sdpMid=primary.mid,
                    sdpMLineIndex=primary._get_mline_index(),
                )
            )

    # -- media -------------------------------------------------------------------------------

    def send_audio(self, packet: AudioPacket) -> None:
        """Queue ``packet`` for the browser; never blocks (a full queue drops its oldest)."""
        if not self._closed:
            self._track.push(packet)

    def _prepare_transports(self) -> None:
        """Tap every receiver and take over gathering on every ICE connection not seen yet."""
        for transceiver in self._pc.getTransceivers():
            receiver = transceiver.receiver
            if not any(r is receiver for r in self._tapped):
                receiver._handle_rtp_packet = self._make_tap()  # type: ignore[method-assign,assignment]
                self._tapped.append(receiver)
            connection = receiver.transport.transport._connection
            if not any(c is connection for c in self._guarded):
                self._take_over_gathering(connection)
                self._guarded.append(connection)

    def _make_tap(self) -> Callable[[RtpPacket, int], Coroutine[Any, Any, None]]:
        async def tap(packet: RtpPacket, arrival_time_ms: int) -> None:
            payload = packet.payload
            if packet.payload_type not in self._opus_types or not payload:
                self._packets_ignored += 1
                return
            try:
                packet_samples(payload)
            except ProtocolError:
                self._packets_ignored += 1
                return
            self._packets_in += 1
            try:
                self._on_packet(payload, packet.sequence_number, packet.timestamp)
            except Exception:
                # Never let the consumer break aiortc's receive loop; say so once per leg.
                if not self._tap_failed:
                    self._tap_failed = True
                    logger.exception("RtcLeg on_packet failed")

        return tap

    def _take_over_gathering(self, connection: Connection) -> None:
        config = self._config

        def guarded() -> StunProtocol:
            return _GuardedStunProtocol(connection, self)

        async def get_component_candidates(component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:
            # ``addresses`` is aioice's scan of every interface: ignored, we gather on ours only.
            candidates: list[Candidate] = []
            hosts: list[StunProtocol] = []
            for address in config.host_addresses:
                try:
                    transport, protocol = await _bind_udp(guarded, address, config.udp_port_min, config.udp_port_max)
                except OSError as exc:
                    logger.warning("RtcLeg could not bind %s: %s", address, exc)
                    continue
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)
                host, port = transport.get_extra_info("sockname")[:2]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=host,
                    port=port,
                    type="host",
                )
                hosts.append(protocol)
                candidates.append(protocol.local_candidate)
            connection._protocols += hosts

            tasks: list[asyncio.Task[tuple[Candidate, StunProtocol | None]]] = []
            if connection.stun_server:
                for protocol in hosts:
                    if ipaddress.ip_address(protocol.local_candidate.host).version == 4:
                        tasks.append(asyncio.create_task(server_reflexive_candidate(protocol, connection.stun_server)))
            if connection.turn_server:
                tasks.append(
                    asyncio.create_task(
                        relayed_candidate(
                            component=component,
                            hide_related_address=False,
                            protocol_factory=guarded,
                            turn_server=connection.turn_server,
                            turn_username=connection.turn_username,
                            turn_password=connection.turn_password,
                            turn_ssl=connection.turn_ssl,
                            turn_transport=connection.turn_transport,
                        )
                    )
                )
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=timeout)
                for task in done:
                    if task.exception() is None:
                        candidate, relay = task.result()
                        candidates.append(candidate)
                        if relay is not None:
                            connection._protocols.append(relay)
                for task in pending:
                    task.cancel()
            return candidates

        connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]

    # -- end ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop sending and receiving and free the sockets, tasks and decoder threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._track.stop()
        await self._pc.close()
        self._tapped.clear()
        self._guarded.clear()
        self._set_state(LegState.CLOSED)
