"""WebRTC signalling for one participant over its session WebSocket: offers, answers and
candidates go through a small bounded queue, one at a time, to that participant's ``RtcLeg``.

The leg is created with the first offer and closed on ``RtcClose``, when it fails, or when the
participant leaves. It becomes where the participant listens once it has connected (ICE and
DTLS up), not at the answer: a leg that never connects (UDP blocked, no TURN) must not swallow
the audio the participant still hears over its WebSocket (the browser's voice via relay). Errors
go back to this client alone as ``Error`` frames (1016-1019); the room and the other participant
go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from wire import ErrorCode, ProtocolError
from wire import messages as m

from .leg import LegState, RtcLeg
from .rtc_config import RtcConfig, RtcError, RtcErrorCode

log = logging.getLogger("tutorwire.signalling")
MAX_PENDING = 16  # signalling messages waiting for the leg; past it: error 1019

_CODES = {
    RtcErrorCode.BAD_SDP: ErrorCode.BAD_SDP,
    RtcErrorCode.TOO_MANY_CANDIDATES: ErrorCode.TOO_MANY_CANDIDATES,
    RtcErrorCode.BAD_CANDIDATE: ErrorCode.BAD_CANDIDATE,
    RtcErrorCode.RTC_FAILED: ErrorCode.RTC_FAILED,
}
Signal = m.RtcOffer | m.RtcCandidate | m.RtcClose


class Signalling:
    def __init__(
        self, config: RtcConfig, send: Callable[[m.Message], None], refuse: Callable[[ProtocolError], None],
        on_packet: Callable[[bytes, int, int], None], on_leg: Callable[[RtcLeg | None], None],
    ) -> None:
        self.config = config
        self._send = send
        self._refuse = refuse
        self._on_packet = on_packet
        self._on_leg = on_leg  # the leg to listen on from now (None: back to the WebSocket)
        self.leg: RtcLeg | None = None
        self._queue: asyncio.Queue[Signal] = asyncio.Queue(MAX_PENDING)
        self._worker: asyncio.Task[None] | None = None
        self._dropping: asyncio.Task[None] | None = None

    def submit(self, signal: Signal) -> None:
        """Queue a signalling message; never blocks."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())
        try:
            self._queue.put_nowait(signal)
        except asyncio.QueueFull:
            raise ProtocolError(ErrorCode.RTC_FAILED,
                                f"more than {MAX_PENDING} signalling messages waiting; slow down") from None

    async def _work(self) -> None:
        while True:
            signal = await self._queue.get()
            try:
                await self._handle(signal)
            except RtcError as exc:
                error = ProtocolError(_CODES[exc.code], exc.message)
                if exc.code is RtcErrorCode.BAD_CANDIDATE:
                    # Browsers routinely trickle candidates we refuse (mDNS, TCP): tell the
                    # client, but do not spend its error budget on them.
                    self._send(m.Error(error.code, error.message))
                else:
                    self._refuse(error)
                if exc.code is RtcErrorCode.RTC_FAILED:
                    await self._drop_leg()
            except Exception as exc:  # aiortc can raise anything on hostile SDP: this client alone pays
                log.warning("WebRTC signalling failed: %r", exc)
                self._refuse(ProtocolError(ErrorCode.RTC_FAILED, f"WebRTC failed: {type(exc).__name__}"))
                await self._drop_leg()

    async def _handle(self, signal: Signal) -> None:
        if isinstance(signal, m.RtcClose):
            await self._drop_leg()
            return
        if isinstance(signal, m.RtcCandidate):
            if self.leg is None:
                raise RtcError(RtcErrorCode.BAD_CANDIDATE, "send an offer before candidates")
            await self.leg.add_candidate(signal.candidate, signal.sdp_mid or None, signal.sdp_mline_index)
            return
        if self.leg is None:
            self.leg = RtcLeg(self.config, self._on_packet, on_state=self._state_changed)
        answer = await self.leg.handle_offer(signal.sdp)
        self._send(m.RtcAnswer(answer))
        if self.leg.state is LegState.CONNECTED:  # a new offer on a leg that is up: it stays the path
            self._on_leg(self.leg)

    def _state_changed(self, state: LegState) -> None:
        if state is LegState.CONNECTED and self.leg is not None:
            self._on_leg(self.leg)  # from now on the participant listens on the leg
        if state in (LegState.FAILED, LegState.CLOSED) and self.leg is not None:
            if state is LegState.FAILED:
                self._send(m.Error(ErrorCode.RTC_FAILED, "the WebRTC connection failed; audio goes over this "
                                   "WebSocket until you send a new offer"))
            self._dropping = asyncio.get_running_loop().create_task(self._drop_leg())

    async def _drop_leg(self) -> None:
        leg, self.leg = self.leg, None
        if leg is not None:
            self._on_leg(None)
            await leg.close()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._drop_leg()
