"""The audio packet as a room and a recording see it, and RTP sequence extension."""

from __future__ import annotations

from typing import NamedTuple


class AudioPacket(NamedTuple):
    """Immutable, and a tuple: made for every packet on the live path, where a frozen
    dataclass's construction costs about three times as much."""

    pid: int  # who spoke (the participant id)
    seq: int  # the sender's packet number (u32, wraps): loss and reordering show as gaps
    capture_ts: int  # the sender's device clock at capture, ms (0 when unknown)
    session_ms: int  # the session clock when the server received it
    samples: int  # 48 kHz samples the packet decodes to (from its TOC)
    payload: bytes  # the Opus packet, as it arrived
    dev: str = ""  # which of the speaker's devices sent it ("" its first; docs/protocol.md 3.6)


def extend_rtp_seq(last: int, rtp_seq: int) -> int:
    """A 16-bit RTP sequence number as a 32-bit one, given the last extended one (-1: none yet):
    the nearest value either way, so wraps count up and late packets stay behind."""
    if last < 0:
        return rtp_seq
    delta = (rtp_seq - (last & 0xFFFF) + 0x8000) % 0x10000 - 0x8000
    return (last + delta) & 0xFFFFFFFF
