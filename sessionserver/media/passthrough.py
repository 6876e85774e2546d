"""The outgoing side of a WebRTC leg: Opus packets sent as they are, never encoded, and without
aiortc's per-packet path.

``MediaTimeline`` decides each packet's media time (the RTP timestamp, 48 kHz); it is pure and
takes ``now``. ``RtpForwarder`` sends each packet as the room hands it over (with the loop
iteration's other audio writes, see ``burst``): an RTP header built from a per-leg template, one
SRTP protect, one ``sendto`` on the selected ICE pair's socket. No task, future, ``av.Packet``
or ``RtpPacket`` per packet: aiortc's sender (a task per leg woken for every packet, an
``RtpPacket`` serialised with its header extensions, three awaited layers down to the socket)
cost several times as much per packet as all of this.

aiortc still owns the peer connection, the SDP, ICE, DTLS, the SRTP keys and RTCP: the leg's
track is a ``HeldTrack`` whose ``recv()`` never returns, so aiortc's sender task idles, and its
RTCP task keeps sending sender reports, from the counters the forwarder keeps up to date on the
sender. The forwarder learns the negotiated payload type, SSRC and header extensions from the
sender's ``send(parameters)``, which it wraps on the instance.

Private aiortc API used here (pinned: aiortc==1.16.0; checked by
``tests/sessionserver/test_rtc_leg.py::test_private_hooks_are_as_pinned``): ``RTCRtpSender._ssrc``
and its name-mangled sender-report counters (``__ntp_timestamp``, ``__rtp_timestamp``,
``__packet_count``, ``__octet_count``), ``RTCDtlsTransport._state`` and ``._tx_srtp``,
``RTCIceTransport._connection``, and aioice's ``Connection._nominated``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aioice.ice import CandidatePair
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from aiortc.utils import random16, random32

from ..metrics import COUNTS
from .burst import later
from .packets import AudioPacket

__all__ = ["HeldTrack", "MediaTimeline", "RtpForwarder", "rtp_header_template"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
_SEQ_MOD = 1 << 32
_NTP_OFFSET = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970 (time.time's)
_HEAD = struct.Struct("!HHII")  # V/P/X/CC + M/PT, sequence number, timestamp, SSRC
# the URIs whose values are the same in every packet of a leg (the template carries them)
CONSTANT_EXTENSIONS = frozenset({"urn:ietf:params:rtp-hdrext:sdes:mid"})
_CONNECTED = DtlsState.CONNECTED


class MediaTimeline:
    """Media time for forwarded packets, as a listener's jitter buffer wants it.

    While a speaker talks, packets follow each other (``seq`` + 1 from the same participant): each starts
    where the previous one ended, however late or bunched it arrives, so network jitter upstream
    stays jitter and is not baked into the timestamps. Anything else (a silence, DTX, packets lost
    upstream, another speaker, a sender that restarted) advances by the real time that passed since
    the previous packet, as a browser's own sender does across a silence: the listener sees a gap in
    time with contiguous RTP sequence numbers (the forwarder numbers them), which it treats as a pause
    and not as a delay spike, so its buffer does not grow. Time never goes backwards.
    """

    def __init__(self) -> None:
        self._last: tuple[int, int, float] | None = None
        self._last_pts = 0
        self._next_pts = 0

    def stamp(self, pid: int, seq: int, samples: int, now: float) -> int:
        """The media time (48 kHz samples since the first packet) of a packet arriving at ``now``
        (seconds, monotonic)."""
        if self._last is None:
            pts = 0
        else:
            last_pid, last_seq, last_now = self._last
            if pid == last_pid and seq == (last_seq + 1) % _SEQ_MOD:
                pts = self._next_pts
            else:
                elapsed = round((now - last_now) * SAMPLE_RATE)
                pts = max(self._next_pts, self._last_pts + elapsed)
        self._last = (pid, seq, now)
        self._last_pts = pts
        self._next_pts = pts + samples
        return pts


class HeldTrack(MediaStreamTrack):
    """The leg's outgoing audio track as aiortc sees it: it makes the answer ``sendrecv`` and gives
    the sender its SSRC, but ``recv()`` returns nothing until the track stops (then it raises
    ``MediaStreamError``), so aiortc's sender task waits once and sends nothing itself."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._stopped: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        if self.readyState == "live":
            if self._stopped is None:
                self._stopped = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._stopped)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)


def rtp_header_template(parameters: RTCRtpSendParameters, ssrc: int) -> bytes:
    """The RTP header aiortc's sender would put on every packet of these parameters (sequence
    number and timestamp 0, marker set as aiortc sets it on every audio packet), header
    extensions included, serialised by aiortc itself. ``ValueError`` when the parameters
    negotiate an extension whose value changes per packet."""
    variable = {e.uri for e in parameters.headerExtensions} - CONSTANT_EXTENSIONS
    # aiortc sets abs-send-time on every packet (serialised only when negotiated) and the audio
    # level only for frames it encodes: neither is negotiated for audio by aiortc 1.16, but the
    # audio level URI is offered, and is harmless as no value is ever set.
    variable.discard("urn:ietf:params:rtp-hdrext:ssrc-audio-level")
    if variable:
        raise ValueError(f"header extensions with per-packet values: {sorted(variable)}")
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    payload_type = parameters.codecs[0].payloadType
    if payload_type is None:
        raise ValueError("the negotiated codec has no payload type")
    packet = RtpPacket(payload_type=payload_type, marker=1, sequence_number=0,
                       timestamp=0, ssrc=ssrc)
    packet.extensions.mid = parameters.muxId
    return packet.serialize(extensions)


class RtpForwarder:
    """Sends a leg's outgoing Opus packets (see the module docstring). ``send`` never blocks:
    until the sender is started (DTLS up, parameters known) packets wait in a queue of ``limit``
    that drops its oldest; after, each goes out at once, or is dropped when the socket already
    holds ``limit`` packets' worth of bytes it could not send."""

    def __init__(self, sender: RTCRtpSender, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._sender = sender
        self._limit = limit
        self._limit_bytes = limit * 1500
        self._clock = clock
        self._timeline = MediaTimeline()
        self._pending: deque[tuple[int, bytes]] = deque()
        self._first_two = 0  # the template's first two bytes (flags, marker, payload type)
        self._tail = b""  # the template after the SSRC: its header extensions
        self._ssrc = 0
        self._seq = random16() % 32768  # as aiortc: the lower half, far from an SRTP rollover
        self._origin = random32()
        self._ready = False
        self._stopped = False
        self._dtls: RTCDtlsTransport = sender.transport
        self._nominated: dict[int, CandidatePair] = {}
        self._pair: CandidatePair | None = None  # the ICE pair sent on last, its socket and address
        self._udp: Any = None  # asyncio's and uvloop's datagram transports have get_write_buffer_size
        self._addr: tuple[str, int] = ("", 0)
        self._failed = False
        self.packets_out = 0
        self.packets_dropped = 0
        self.octets_out = 0
        start = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            await start(parameters)
            self._start(parameters)

        sender.send = send  # type: ignore[method-assign]

    @property
    def queued(self) -> int:
        return len(self._pending)

    def send(self, packet: AudioPacket) -> None:
        """Send ``packet`` now (or queue it while the sender is not started); stamps its media time
        on arrival, so a dropped packet leaves a hole the listener conceals like a lost one."""
        if self._stopped:
            return
        pts = self._timeline.stamp(packet.pid, packet.seq, packet.samples, self._clock())
        if self._ready:
            later(self._out, (pts, packet.payload))  # with the loop iteration's other audio writes
            return
        if len(self._pending) >= self._limit:
            self._pending.popleft()
            self.packets_dropped += 1
            COUNTS.audio_dropped += 1
        self._pending.append((pts, packet.payload))

    def stop(self) -> None:
        self._stopped = True
        self._ready = False
        self._pending.clear()

    def _start(self, parameters: RTCRtpSendParameters) -> None:
        if self._ready or self._stopped:
            return
        self._ssrc = self._sender._ssrc
        # the leg's one transport (every section is bundled on it), fixed once the sender starts
        self._dtls = self._sender.transport
        self._nominated = self._dtls.transport._connection._nominated
        header = rtp_header_template(parameters, self._ssrc)
        self._first_two = (header[0] << 8) | header[1]
        self._tail = header[12:]
        self._ready = True
        pending, self._pending = self._pending, deque()
        for item in pending:
            self._out(item)

    def _out(self, item: tuple[int, bytes]) -> None:
        if not self._ready:
            return  # stopped since
        pts, payload = item
        dtls = self._dtls
        pair = self._nominated.get(1)
        if dtls._state is not _CONNECTED or pair is None:
            self.packets_dropped += 1
            COUNTS.audio_dropped += 1  # between ICE pairs, or closing: lost, as on the network
            return
        if pair is not self._pair:  # the first packet, or ICE moved to another pair
            self._pair, self._udp, self._addr = pair, pair.protocol.transport, pair.remote_addr
        udp = self._udp
        if udp.get_write_buffer_size() > self._limit_bytes:
            self.packets_dropped += 1
            COUNTS.audio_dropped += 1
            return
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        timestamp = (self._origin + pts) & 0xFFFFFFFF
        try:
            data = dtls._tx_srtp.protect(_HEAD.pack(self._first_two, seq, timestamp, self._ssrc) + self._tail
                                         + payload)
            udp.sendto(data, self._addr)
        except Exception:
            self.packets_dropped += 1
            COUNTS.audio_dropped += 1
            if not self._failed:  # never let a leg's fault reach the speaker; say so once per leg
                self._failed = True
                logger.exception("RtpForwarder could not send")
            return
        self.packets_out += 1
        self.octets_out += len(payload)
        # what aiortc's RTCP task puts in its sender reports, as its own sending loop keeps it
        sender = self._sender
        sender._RTCRtpSender__ntp_timestamp = int((time.time() + _NTP_OFFSET) * 4294967296.0)  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count = self.packets_out  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count = self.octets_out  # type: ignore[attr-defined]
