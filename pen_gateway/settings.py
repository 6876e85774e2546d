"""The gateway's settings: every limit and delay named, with a default, from ``PEN_GATEWAY_*``
environment variables (the README's pen gateway table lists them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import GatewayError


def default_spool_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "tutorwire" / "pen-gateway")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    spool_dir: str = ""  # empty: default_spool_dir()
    spool_max_bytes: int = 256 << 20  # about 10 hours of 240 Hz ink and voice
    spool_warn_fraction: float = 0.8  # the status line warns from this share of spool_max_bytes
    fsync_ms: float = 100.0  # appended records reach the disk within this
    batch_ms: float = 16.0  # ink batches at most this long
    late_audio_s: float = 2.0  # audio older than this is not played live, only uploaded for the recording
    late_packets_per_s: float = 50.0  # late audio upload rate (packets; 25 a frame)
    backoff_initial_s: float = 0.1  # reconnect: full jitter in [0, min(cap, initial * 2^n))
    backoff_cap_s: float = 1.0
    pace_rate_factor: float = 0.5  # ops at this share of the server's rate, leaving room for audio
    audio_bitrate: int = 24000
    audio_confirm_ms: float = 200.0  # a Ping after sent audio at most this often (its Pong confirms it)
    status_interval_s: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and value <= 0:
                raise GatewayError(f"PEN_GATEWAY_{f.name.upper()} must be positive, not {value}",
                                   "unset it to take the default")
        if self.spool_warn_fraction > 1 or self.backoff_initial_s > self.backoff_cap_s or self.pace_rate_factor > 1:
            raise GatewayError("spool_warn_fraction and pace_rate_factor are at most 1, backoff_initial_s at most "
                               "backoff_cap_s", "fix the PEN_GATEWAY_* variables")

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_dir or default_spool_dir())

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewaySettings:
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = source.get(f"PEN_GATEWAY_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = type(getattr(cls(), f.name))
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise GatewayError(f"PEN_GATEWAY_{f.name.upper()}={raw!r} is not a {kind.__name__}",
                                   "give a number, or unset it") from None
        return cls(**values)  # type: ignore[arg-type]
