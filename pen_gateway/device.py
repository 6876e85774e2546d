"""What a pen adapter declares once (``DeviceInfo``) and what it yields (``Sample`` and a few
notices), whatever the device: a tablet through evdev, a replayed file, a vendor SDK."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TiltKind(Enum):
    NONE = "none"
    DEGREES = "degrees"  # tilt_x/tilt_y in whole degrees, -90..90


class Phase(Enum):
    HOVER = "hover"  # in proximity, not touching
    DOWN = "down"  # first sample of a contact
    MOVE = "move"  # touching
    UP = "up"  # contact ended (position of the last report)


class PenTool(Enum):
    PEN = "pen"
    ERASER = "eraser"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Declared once per device. Coordinates run ``x_min..x_max`` and ``y_min..y_max`` in device
    units; ``units_per_mm`` converts them to millimetres (0 when unknown)."""

    name: str
    x_min: int
    x_max: int
    y_min: int
    y_max: int
    units_per_mm_x: float = 0.0
    units_per_mm_y: float = 0.0
    pressure_max: int = 0  # 0: no pressure axis
    tilt: TiltKind = TiltKind.NONE
    nominal_rate_hz: float = 133.0
    has_device_clock: bool = False  # samples carry the device's own time
    has_pages: bool = False  # the device reports page turns (a smartpen's paper pages)
    kind: str = "pen-gateway"

    def __post_init__(self) -> None:
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            raise ValueError(f"{self.name}: the device area is empty")


@dataclass(frozen=True, slots=True)
class Sample:
    """One pen report. ``seq`` counts the adapter's samples from 0; ``device_ms`` is the
    device's own clock when it has one; ``host_s`` is the host's monotonic clock when the
    report was read (for evdev: the kernel's event time, switched to the monotonic clock)."""

    seq: int
    host_s: float
    x: int
    y: int
    pressure: int
    phase: Phase
    tool: PenTool = PenTool.PEN
    tilt_x: int = 0
    tilt_y: int = 0
    device_ms: int | None = None

    @property
    def touching(self) -> bool:
        return self.phase in (Phase.DOWN, Phase.MOVE)


@dataclass(frozen=True, slots=True)
class Loss:
    """Reports were lost (the kernel's SYN_DROPPED, a gap in a vendor's sequence): the state
    was resynchronised at ``host_s``."""

    host_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class PageTurn:
    """Go to the next page (a pad button, a key, a smartpen's new paper page)."""

    host_s: float
    page: int | None = None  # a smartpen's own page number; None: the next page


@dataclass(frozen=True, slots=True)
class DeviceGone:
    """The device vanished (unplugged); the adapter looks for it again."""

    host_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceBack:
    host_s: float
    info: DeviceInfo


PenEvent = Sample | Loss | PageTurn | DeviceGone | DeviceBack
