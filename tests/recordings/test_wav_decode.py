"""The WAV export's decoder on packets near clock 0: whatever of a track lies before 0 (the
pre-skip of a stream that starts in the session's first milliseconds) is decoded for the
decoder's state and dropped, never written at a negative index."""

from __future__ import annotations

import numpy as np

from recordings.exports.model import AudioTrack
from recordings.exports.wav import decode_track
from tests.audiokit import encode_tone


def test_packets_ending_before_clock_zero_are_dropped_and_the_rest_lands_in_place() -> None:
    first, second, third = encode_tone(440.0, 3)  # 20 ms packets, 960 samples each
    # the first ends 72 samples before clock 0, the second reaches across it, the third follows
    track = AudioTrack(1, [(first, -72), (second, 888), (third, 1848)])
    pcm = decode_track(track, 2000)
    assert len(pcm) == 2000
    assert np.any(pcm[:888] != 0) and np.any(pcm[888:1848] != 0)
    assert not np.any(pcm[1848:])


def test_a_track_entirely_before_clock_zero_is_silence() -> None:
    (packet,) = encode_tone(440.0, 1)
    assert not np.any(decode_track(AudioTrack(1, [(packet, -10)]), 480))
