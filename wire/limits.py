"""Every limit of the wire protocol, as one frozen record with documented defaults.

The session server builds a ``Limits`` from its settings (``TUTORWIRE_MAX_*`` environment
variables, see the README) and checks each limit before it allocates anything for a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

PRESSURE_MAX = 4095  # 12-bit pressure, 0 = no contact
TILT_MAX = 90  # degrees, both axes in [-90, 90]
# Cleared layers a page keeps for ``Restore`` (the undo of a ``Clear``); a Clear past them drops
# the oldest layer for good. Every side keeps the same number, so a snapshot's layers are theirs.
CLEAR_LAYERS_KEPT = 8


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 65_536
    max_points_per_message: int = 512
    max_coordinate: int = 65_535
    max_pages: int = 200
    max_strokes_per_page: int = 20_000
    max_points_per_stroke: int = 50_000
    max_token_bytes: int = 4_096
    max_string_bytes: int = 256
    max_sdp_bytes: int = 16_384
    rate_messages_per_s: float = 200.0
    rate_burst: int = 400

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"limit {name} must be positive")
