"""Kernel input events of a tablet's pen node in, pen samples out: sans-I/O.

Feed every ``input_event`` as ``feed(sec, usec, type, code, value)``; a ``SYN_REPORT`` closes a
report and yields at most one ``Sample`` (plus a ``PageTurn`` for a page key). Rules:

* **Proximity**: ``BTN_TOOL_PEN`` / ``BTN_TOOL_RUBBER`` (the eraser end: tool ``ERASER``). A
  device without tool keys is in proximity while it reports.
* **Contact**: ``BTN_TOUCH`` where the device has it (tablets send pressure 1 or 2 while the pen
  merely hovers close), else ``ABS_PRESSURE`` above ``pressure_threshold``; where BTN_TOUCH is
  unreliable (cheap pads send it late, early or never) ``ContactRule`` PRESSURE or EITHER says so.
* **Leaving proximity** ends a contact at the last position: many drivers zero X/Y in the
  report that clears the tool key, and that position is never a point.
* **SYN_DROPPED**: the kernel's buffer overflowed. Everything up to the next ``SYN_REPORT`` is
  discarded, a ``Loss`` is reported, and the state is taken again from ``resync`` (the shell
  reads the device's current axes and keys) or from the reports that follow.
* Reports without an axis or key event (only ``MSC_SERIAL``, say) yield nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from enum import Enum

from . import evcodes as c
from .device import DeviceInfo, Loss, PageTurn, PenEvent, PenTool, Phase, Sample, TiltKind
from .evemu import AbsAxis


class ContactRule(Enum):
    TOUCH = "touch"
    PRESSURE = "pressure"
    EITHER = "either"


@dataclass(frozen=True, slots=True)
class PenCaps:
    """What the pen node declares: its absolute axes and the keys it has."""

    name: str
    axes: Mapping[int, AbsAxis]
    keys: Set[int] = field(default_factory=frozenset)

    def is_pen(self) -> bool:
        return c.ABS_X in self.axes and c.ABS_Y in self.axes and (
            bool(self.keys & c.TOOL_KEYS) or c.ABS_PRESSURE in self.axes or c.BTN_TOUCH in self.keys)

    def info(self, nominal_rate_hz: float = 133.0) -> DeviceInfo:
        ax, ay = self.axes[c.ABS_X], self.axes[c.ABS_Y]
        pressure = self.axes.get(c.ABS_PRESSURE)
        tilt = TiltKind.DEGREES if c.ABS_TILT_X in self.axes and c.ABS_TILT_Y in self.axes else TiltKind.NONE
        return DeviceInfo(self.name, ax.minimum, ax.maximum, ay.minimum, ay.maximum,
                          float(ax.resolution), float(ay.resolution),
                          pressure.maximum if pressure else 0, tilt, nominal_rate_hz)


def _tilt_degrees(value: int, axis: AbsAxis | None) -> int:
    if axis is None:
        return 0
    if axis.resolution > 0:  # the kernel's unit for tilt is units per radian
        deg = math.degrees(value / axis.resolution)
    else:
        deg = float(value)
    return max(-90, min(90, round(deg)))


class EvdevParser:
    """One pen node's state across reports. ``page_keys``: keys that turn to the next page."""

    def __init__(self, caps: PenCaps, *, contact: ContactRule = ContactRule.TOUCH, pressure_threshold: int = 0,
                 page_keys: frozenset[int] = frozenset({c.BTN_0, c.KEY_PAGEDOWN})) -> None:
        self.caps = caps
        self.info = caps.info()
        self.contact_rule = contact if c.BTN_TOUCH in caps.keys or contact is ContactRule.PRESSURE \
            else ContactRule.PRESSURE
        self.pressure_threshold = pressure_threshold
        self.page_keys = page_keys
        self._implicit_proximity = not (caps.keys & c.TOOL_KEYS)
        self.abs: dict[int, int] = {code: 0 for code in caps.axes}
        self.tool_keys: set[int] = set()
        self.touch = False
        self._dirty = False
        self._dropping = False
        self._pages = 0
        self._was_touching = False
        self._was_near = False
        self._last_xy = (0, 0)
        self._last_tool = PenTool.PEN
        self.seq = 0
        self.losses = 0
        self.ignored = 0  # events of types or codes a pen does not use

    # --- input ------------------------------------------------------------------------------

    def feed(self, sec: int, usec: int, ev_type: int, code: int, value: int) -> list[PenEvent]:
        now = sec + usec / 1e6
        if ev_type == c.EV_SYN:
            if code == c.SYN_DROPPED:
                self._dropping = True
                return []
            if code != c.SYN_REPORT:
                return []
            if self._dropping:
                self._dropping = False
                self.losses += 1
                out: list[PenEvent] = [Loss(now, "the kernel dropped events (SYN_DROPPED)")]
                out.extend(self._report(now))
                return out
            return self._report(now)
        if self._dropping:
            return []
        if ev_type == c.EV_ABS:
            if code in self.abs:
                self.abs[code] = value  # even an unchanged value: the kernel reported a point
                self._dirty = True
            else:
                self.ignored += 1
        elif ev_type == c.EV_KEY:
            self._key(code, value)
        elif ev_type != c.EV_MSC:
            self.ignored += 1
        return []

    def resync(self, abs_values: Mapping[int, int], keys: Set[int], sec: int, usec: int) -> list[PenEvent]:
        """After a ``Loss``: the device's state as read from it now (``EVIOCGABS``/``EVIOCGKEY``)."""
        for code in self.abs:
            if code in abs_values:
                self.abs[code] = abs_values[code]
        self.tool_keys = set(keys & c.TOOL_KEYS)
        self.touch = c.BTN_TOUCH in keys
        self._dirty = True
        return self._report(sec + usec / 1e6)

    def _key(self, code: int, value: int) -> None:
        down = value != 0
        if code in c.TOOL_KEYS:
            if down:
                self.tool_keys.add(code)
            else:
                self.tool_keys.discard(code)
            self._dirty = True
        elif code == c.BTN_TOUCH:
            self.touch = down
            self._dirty = True
        elif code in self.page_keys:
            if value == 1:  # press, not the auto-repeat (2) nor the release (0)
                self._pages += 1
        else:
            self.ignored += 1

    # --- a report -----------------------------------------------------------------------------

    def _contact(self) -> bool:
        pressed = self.abs.get(c.ABS_PRESSURE, 0) > self.pressure_threshold
        if self.contact_rule is ContactRule.TOUCH:
            return self.touch
        if self.contact_rule is ContactRule.PRESSURE:
            return pressed
        return self.touch or pressed

    def _report(self, now: float) -> list[PenEvent]:
        out: list[PenEvent] = []
        while self._pages:
            self._pages -= 1
            out.append(PageTurn(now))
        if not self._dirty:
            return out
        self._dirty = False
        near = self._implicit_proximity or bool(self.tool_keys)
        tool = PenTool.ERASER if c.BTN_TOOL_RUBBER in self.tool_keys else PenTool.PEN
        touching = near and self._contact()
        if not near:
            if self._was_touching:
                out.append(self._sample(now, Phase.UP, self._last_xy, self._last_tool))
            self._was_touching = self._was_near = False
            return out
        xy = (self.abs[c.ABS_X], self.abs[c.ABS_Y])
        if touching:
            phase = Phase.MOVE if self._was_touching else Phase.DOWN
        else:
            phase = Phase.UP if self._was_touching else Phase.HOVER
        out.append(self._sample(now, phase, xy, tool))
        self._was_touching, self._was_near = touching, True
        self._last_xy, self._last_tool = xy, tool
        return out

    def _sample(self, now: float, phase: Phase, xy: tuple[int, int], tool: PenTool) -> Sample:
        axes = self.caps.axes
        pressure = self.abs.get(c.ABS_PRESSURE, 0) if phase in (Phase.DOWN, Phase.MOVE) else 0
        sample = Sample(self.seq, now, xy[0], xy[1], max(0, pressure), phase, tool,
                        _tilt_degrees(self.abs.get(c.ABS_TILT_X, 0), axes.get(c.ABS_TILT_X)),
                        _tilt_degrees(self.abs.get(c.ABS_TILT_Y, 0), axes.get(c.ABS_TILT_Y)))
        self.seq += 1
        return sample


def caps_from_evemu(name: str, axes: Mapping[int, AbsAxis], key_bits: bytes | bytearray | None) -> PenCaps:
    """``PenCaps`` from an evemu description's axes and its EV_KEY bitmask."""
    keys = frozenset(i for i in range(len(key_bits or b"") * 8) if key_bits and key_bits[i // 8] >> (i % 8) & 1)
    return PenCaps(name, dict(axes), keys)
