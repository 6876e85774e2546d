"""Microphone sources behind one interface, and the 20 ms Opus encoder (opuslib).

A source yields ``Frame``s of ``FRAME_MS`` (20) of 16-bit mono PCM at ``rate`` Hz, each with
its capture time on ``time.monotonic()``. ``WavSource`` reads a WAV file (paced at ``speed``
times real time); ``DeviceSource`` a live microphone through sounddevice (the ``pen-mic``
extra); ``open_source`` picks one, and says clearly when there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MicrophoneError

FRAME_MS = 20
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@dataclass(frozen=True, slots=True)
class Frame:
    capture_s: float  # monotonic time of the first sample
    pcm: bytes  # int16 mono, FRAME_MS long


class AudioSource:
    rate: int = 48000
    name: str = ""

    def frames(self) -> AsyncIterator[Frame]:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop capturing; ``frames()`` ends."""


def _to_mono16(raw: bytes, width: int, channels: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.int64) >> 16
    else:
        raise MicrophoneError(f"WAV samples of {width} bytes are not supported",
                              "convert it to 16-bit PCM (sox in.wav -b 16 out.wav)")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return np.clip(data, -32768, 32767).astype(np.int16)


class WavSource(AudioSource):
    def __init__(self, path: str | Path, *, speed: float = 1.0, loops: int = 1) -> None:
        try:
            with wave.open(str(path), "rb") as w:
                rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
                raw = w.readframes(w.getnframes())
        except (OSError, wave.Error, EOFError) as exc:
            raise MicrophoneError(f"cannot read the WAV file {path}: {exc}",
                                  "give a PCM .wav file to --audio") from None
        if rate not in OPUS_RATES:
            raise MicrophoneError(f"{path} is sampled at {rate} Hz",
                                  "resample it to 48000 Hz (sox in.wav -r 48000 out.wav)")
        self.rate = rate
        self.name = f"WAV {Path(path).name}"
        self.pcm = _to_mono16(raw, width, channels)
        self.speed = speed
        self.loops = loops
        self._closed = False

    async def frames(self) -> AsyncIterator[Frame]:
        n = self.rate * FRAME_MS // 1000
        start = time.monotonic()
        k = 0
        for _ in range(self.loops):
            for i in range(0, len(self.pcm) - n + 1, n):
                if self._closed:
                    return
                capture = start + k * FRAME_MS / 1000 / self.speed
                # a frame is there once it has been captured whole
                wait = capture + FRAME_MS / 1000 / self.speed - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the microphone's pace: this is the input
                yield Frame(capture, self.pcm[i : i + n].tobytes())
                k += 1

    async def close(self) -> None:
        self._closed = True


class DeviceSource(AudioSource):
    """A live microphone through sounddevice (PortAudio), 48 kHz mono."""

    def __init__(self, device: str | int | None = None, rate: int = 48000, queue_frames: int = 50) -> None:
        sd = _sounddevice()
        try:
            info = sd.query_devices(device, "input")
        except Exception as exc:  # PortAudio reports a missing device as many kinds of error
            raise MicrophoneError(f"no microphone{f' {device!r}' if device is not None else ''}: {exc}",
                                  "plug one in, pick one from --list-devices, or give --audio FILE.wav "
                                  "or --audio none") from None
        self.rate = rate
        self.name = str(info["name"])
        self._sd = sd
        self._device = device
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(queue_frames)
        self._stream: Any = None

    async def frames(self) -> AsyncIterator[Frame]:
        loop = asyncio.get_running_loop()
        n = self.rate * FRAME_MS // 1000

        def callback(indata: Any, frames: int, t: Any, status: Any) -> None:
            frame = Frame(time.monotonic() - frames / self.rate, bytes(indata))
            loop.call_soon_threadsafe(self._put, frame)

        self._stream = self._sd.RawInputStream(samplerate=self.rate, blocksize=n, device=self._device, channels=1,
                                               dtype="int16", callback=callback)
        self._stream.start()
        while self._stream is not None:
            yield await self._queue.get()

    def _put(self, frame: Frame) -> None:
        if self._queue.full():
            self._queue.get_nowait()  # a stalled consumer loses the oldest 20 ms, never memory
        self._queue.put_nowait(frame)

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.stop()
                stream.close()


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise MicrophoneError(f"no microphone support here ({exc})",
                              "pip install 'tutorwire[pen-mic]' (and PortAudio: apt-get install libportaudio2), "
                              "or give --audio FILE.wav, or --audio none") from None
    return sounddevice


def list_microphones() -> list[str]:
    try:
        sd = _sounddevice()
        return [str(d["name"]) for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]
    except Exception:  # no PortAudio, no devices: nothing to list
        return []


def open_source(spec: str | None, *, speed: float = 1.0) -> AudioSource | None:
    """``none``: no audio; a path ending in ``.wav``: that file; ``mic`` or a device name: a
    live microphone; ``None``: the default microphone, or a ``MicrophoneError`` saying there is
    none."""
    if spec == "none":
        return None
    if spec is not None and spec.lower().endswith(".wav"):
        return WavSource(spec, speed=speed)
    return DeviceSource(None if spec in (None, "mic") else spec)


class OpusEncoder:
    """20 ms frames in, Opus packets out (voice, mono)."""

    def __init__(self, rate: int = 48000, bitrate: int = 24000) -> None:
        try:
            import opuslib  # type: ignore[import-untyped]
        except Exception as exc:  # opuslib raises a plain Exception when libopus is missing
            raise MicrophoneError(f"Opus is not available ({exc})",
                                  "apt-get install libopus0; pip install opuslib") from None
        self._enc = opuslib.Encoder(rate, 1, opuslib.APPLICATION_VOIP)
        self._enc.bitrate = bitrate
        self.samples = rate * FRAME_MS // 1000

    def encode(self, pcm: bytes) -> bytes:
        return bytes(self._enc.encode(pcm, self.samples))
