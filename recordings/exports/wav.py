"""The speakers' audio decoded and mixed into one mono WAV on the session timeline.

Each speaker's packets are decoded in order with one opuslib decoder (mono, 48 kHz) and each
decoded packet is placed so that it ends at its granule position: sample ``n`` of the output is
session time ``n / 48`` ms. Losses were filled with silence packets by the recorder, so nothing
here conceals anything. The mix is the sum of the tracks; if that sum peaks above full scale
the whole mix is scaled down by one factor (never clipped sample by sample), so the
loudness ratio between speakers is kept.

Needs opuslib and the system libopus (imported on first use, so importing this module does not).
"""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np
import numpy.typing as npt

from .model import AudioTrack, RecordingData

RATE = 48_000
_MAX_PACKET_SAMPLES = 5760  # 120 ms, the longest Opus packet
FULL_SCALE = 32767

Pcm = npt.NDArray[np.int16]


def decode_track(track: AudioTrack, length: int | None = None) -> Pcm:
    """One speaker's audio as mono s16 at 48 kHz from session clock 0, ``length`` samples long
    (default: up to the last packet's end; longer pads with silence, shorter cuts)."""
    import opuslib  # type: ignore[import-untyped]

    end = max((g for _, g in (*track.packets, *track.late)), default=0)
    out = np.zeros(max(end, length or 0), dtype=np.int16)
    _decode_into(opuslib.Decoder(RATE, 1), track.packets, out)
    if track.late:  # its own stream and decoder; the live stream is silent where it is not
        late = np.zeros_like(out)
        _decode_into(opuslib.Decoder(RATE, 1), track.late, late)
        out = np.clip(out.astype(np.int32) + late, -FULL_SCALE - 1, FULL_SCALE).astype(np.int16)
    return out if length is None else out[:length]


def _decode_into(decoder: Any, packets: list[tuple[bytes, int]], out: Pcm) -> None:
    for packet, granule in packets:
        pcm = np.frombuffer(bytes(decoder.decode(packet, _MAX_PACKET_SAMPLES)), dtype=np.int16)
        if granule <= 0:
            continue  # decoded for the decoder's state only: it all lies before clock 0 (pre-skip)
        start = granule - len(pcm)
        if start < 0:  # the part of a first packet that reaches before clock 0 is pre-skip
            pcm, start = pcm[-start:], 0
        out[start:granule] = pcm


def session_samples(data: RecordingData) -> int:
    """The mix's length: the whole session, or the longest track if that runs on past it."""
    ends = [g for track in data.audio.values() for _, g in (*track.packets, *track.late)]
    return max(data.duration_ms * RATE // 1000, *ends, 0)


def mix(data: RecordingData) -> Pcm:
    """All speakers summed on the session timeline (see the module docstring for the scaling)."""
    length = session_samples(data)
    total = np.zeros(length, dtype=np.int32)
    for track in data.audio.values():
        total += decode_track(track, length)
    peak = int(np.max(np.abs(total))) if length else 0
    if peak <= FULL_SCALE:
        return total.astype(np.int16)
    scaled = np.round(total * (FULL_SCALE / peak))
    return np.clip(scaled, -FULL_SCALE, FULL_SCALE).astype(np.int16)


def wav_bytes(pcm: Pcm, rate: int = RATE) -> bytes:
    """``pcm`` (mono s16) as a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def mixed_wav(data: RecordingData) -> bytes:
    """The mix as a 16-bit mono 48 kHz WAV covering the whole session."""
    return wav_bytes(mix(data))
