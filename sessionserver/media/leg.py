"""The server's WebRTC leg for one participant (aiortc): the browser's Opus packets in, other
participants' Opus packets out, never decoded or re-encoded.

Receiving: each receiver's ``_handle_rtp_packet`` is replaced on the instance by a tap that hands
the Opus payload to ``on_packet`` and returns, so aiortc's jitter buffer and decoder never see a
packet (its decoder thread idles, the remote track's queue stays empty). Side effects: no
inbound-rtp stats and no receiver reports upstream. Sending: ``RtpForwarder`` sends each
packet itself (an RTP header from a template, one SRTP protect, one ``sendto``); aiortc's sender
idles on a ``HeldTrack`` and sends only RTCP (see ``passthrough``).

Offers are checked by ``sdp`` before aiortc sees them; ``ice`` binds the leg's sockets, guards
them and restarts ICE.

Private aiortc API used here, so aiortc is pinned exactly (aiortc==1.16.0) and
``tests/sessionserver/test_rtc_leg.py::test_private_hooks_are_as_pinned`` fails when it changes:
``RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms)``; ``passthrough`` lists the
sending side's; also ``RTCRtpTransceiver._get_mline_index()`` (for trickled candidates; not
checked by that test).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from wire.errors import ProtocolError
from wire.opus import packet_samples

from .ice import IceGathering, aiortc_ice_servers, restart_ice
from .packets import AudioPacket
from .passthrough import HeldTrack, RtpForwarder
from .rtc_config import RemoteAddressPolicy, RtcConfig, RtcError, RtcErrorCode, parse_candidate
from .sdp import check_offer, filter_offer, opus_payload_types

__all__ = ["LegState", "LegStats", "OnPacket", "RtcLeg"]

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
    packets_out: int  # outgoing packets sent
    packets_dropped: int  # outgoing packets dropped: the leg's queue or its socket was full, or no ICE pair
    queued: int  # outgoing packets waiting for the leg to connect
    candidates: int  # distinct remote candidates accepted
    candidates_dropped: int  # candidates left out of offers (malformed, mDNS, refused address)
    datagrams_refused: int  # UDP datagrams from addresses the policy refuses


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
        self._track = HeldTrack()
        self._ice = IceGathering(config, self._policy)
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=aiortc_ice_servers(config.ice_servers)))
        # The outgoing track exists before the first offer, so the offer's first audio m-line takes
        # this transceiver and the answer is sendrecv.
        self._out = RtpForwarder(self._pc.addTrack(self._track), config.queue_packets, clock=clock)
        self._pc.on("connectionstatechange", self._pc_state_changed)
        self._lock = asyncio.Lock()
        self._tapped: list[RTCRtpReceiver] = []
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
            packets_out=self._out.packets_out,
            packets_dropped=self._out.packets_dropped,
            queued=self._out.queued,
            candidates=len(self._remote_keys),
            candidates_dropped=self._candidates_dropped,
            datagrams_refused=self._ice.datagrams_refused,
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
            filtered = filter_offer(sdp, self._config, self._policy)
            self._candidates_dropped += filtered.candidates_dropped  # counted even if the offer is refused
            offer = check_offer(filtered, self._config, known_keys=self._remote_keys, known_mids=self._mids)
            try:
                if self._remote_ice is not None and offer.ice_credentials != self._remote_ice:
                    restart_ice(self._pc, offer.ice_credentials)
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
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
            self._remote_ice = offer.ice_credentials
            self._mids = offer.mids
            self._remote_keys |= offer.candidate_keys
            self._opus_types = opus_payload_types(local)
            self._pc_state_changed()
            return answer

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
        """Send ``packet`` to the browser; never blocks (see ``RtpForwarder``)."""
        if not self._closed:
            self._out.send(packet)

    def _prepare_transports(self) -> None:
        """Tap every receiver and take over gathering on every ICE connection not seen yet."""
        for transceiver in self._pc.getTransceivers():
            receiver = transceiver.receiver
            if not any(r is receiver for r in self._tapped):
                receiver._handle_rtp_packet = self._make_tap()  # type: ignore[method-assign,assignment]
                self._tapped.append(receiver)
            self._ice.take_over(receiver.transport.transport)

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

    # -- end ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop sending and receiving and free the sockets, tasks and decoder threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._out.stop()
        self._track.stop()
        await self._pc.close()
        self._tapped.clear()
        self._ice.release()
        self._set_state(LegState.CLOSED)
