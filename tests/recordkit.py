"""Recording test helpers: real Opus packets from opuslib, decoding an Ogg Opus file's packets back
onto the session timeline, and the outside judges: ``assert_players_accept(path)`` runs
``opusinfo`` (opus-tools) and ``ffprobe`` (ffmpeg) on a file and fails on any warning or error.
Call it on every Ogg file a test writes. ``scripts/setup-env`` installs both tools.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import opuslib  # type: ignore[import-untyped]

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
SAMPLES_PER_MS = RATE // 1000

Pcm = npt.NDArray[np.int16]


def tone(freq: float, samples: int, *, start: int = 0, amplitude: float = 0.3) -> Pcm:
    """Mono s16 sine at ``freq`` Hz from sample ``start`` (so consecutive chunks join up)."""
    t = (np.arange(samples) + start) / RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def opus_packets(pcm: Pcm, frame: int = FRAME) -> list[bytes]:
    """``pcm`` (mono, 48 kHz, a whole number of frames) as Opus packets from one libopus encoder."""
    if len(pcm) % frame:
        raise ValueError(f"{len(pcm)} samples are not a whole number of {frame}-sample frames")
    encoder = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_AUDIO)
    return [bytes(encoder.encode(pcm[i : i + frame].tobytes(), frame)) for i in range(0, len(pcm), frame)]


def decode_timeline(packets: Sequence[tuple[bytes, int]], pre_skip: int) -> Pcm:
    """Decode ``(payload, granule end)`` packets in order with one decoder, as a player would,
    each at its granule position, then drop ``pre_skip`` samples: index i is session sample i."""
    decoder = opuslib.Decoder(RATE, 1)
    end = packets[-1][1] if packets else 0
    out = np.zeros(max(end, 0), dtype=np.int16)
    for payload, granule in packets:
        pcm = np.frombuffer(bytes(decoder.decode(payload, 5760)), dtype=np.int16)
        out[granule - len(pcm) : granule] = pcm
    return out[pre_skip:]


def rms(pcm: Pcm) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed (scripts/setup-env installs opus-tools and ffmpeg)")
    return path


def run_opusinfo(path: Path) -> str:
    """opusinfo's report on ``path``; fails unless it exits 0 without a warning or an error."""
    done = subprocess.run([_tool("opusinfo"), str(path)], capture_output=True, text=True, timeout=60, check=False)
    text = done.stdout + done.stderr
    complaints = [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line.upper()]
    if done.returncode != 0 or complaints:
        raise AssertionError(f"opusinfo refused {path} (exit {done.returncode}):\n{text}")
    return text


def run_ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's view of ``path`` (its JSON); fails unless it exits 0, prints no error and sees one
    mono 48 kHz Opus stream."""
    command = [_tool("ffprobe"), "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or done.stderr.strip():
        raise AssertionError(f"ffprobe refused {path} (exit {done.returncode}):\n{done.stderr}")
    info: dict[str, Any] = json.loads(done.stdout)
    streams = info.get("streams", [])
    if len(streams) != 1 or streams[0].get("codec_name") != "opus":
        raise AssertionError(f"ffprobe does not see one Opus stream in {path}: {streams}")
    if int(streams[0].get("sample_rate", 0)) != RATE or int(streams[0].get("channels", 0)) != 1:
        raise AssertionError(f"ffprobe does not see mono 48 kHz in {path}: {streams[0]}")
    return info


def assert_players_accept(path: Path) -> dict[str, Any]:
    """Run both judges on ``path``; returns ffprobe's JSON (``["format"]["duration"]`` etc.)."""
    run_opusinfo(path)
    return run_ffprobe(path)


def dominant_frequency(pcm: Pcm) -> float:
    """The strongest frequency in ``pcm`` in Hz (Hann window, rfft peak)."""
    if len(pcm) < 256:
        raise ValueError("need at least 256 samples to tell a frequency")
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * RATE / len(pcm)


def onset(pcm: Pcm, threshold: int = 1000) -> int:
    """Index of the first sample louder than ``threshold`` (-1 if none)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    return int(loud[0]) if len(loud) else -1
