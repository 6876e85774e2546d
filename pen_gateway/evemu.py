"""The evemu text format (``evemu-record``), sans-I/O: a device description and its events.

Lines: ``N:`` name, ``I:`` bus vendor product version, ``P:`` properties, ``B: TT bytes...``
capability bitmasks of event type ``TT`` (8 bytes a line, in order), ``A: code min max fuzz flat
resolution``, ``E: seconds.micros type code value`` (type and code in hex, value decimal, a
trailing ``# ...`` comment allowed); ``#`` lines are comments. A line that fits none of these
is counted in ``bad_lines`` and skipped: a damaged recording replays what it can.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AbsAxis:
    minimum: int
    maximum: int
    fuzz: int = 0
    flat: int = 0
    resolution: int = 0


@dataclass(frozen=True, slots=True)
class RawEvent:
    sec: int
    usec: int
    type: int
    code: int
    value: int

    @property
    def time_s(self) -> float:
        return self.sec + self.usec / 1e6


@dataclass(slots=True)
class EvemuDevice:
    name: str = ""
    ids: tuple[int, int, int, int] = (0, 0, 0, 0)
    axes: dict[int, AbsAxis] = field(default_factory=dict)
    bits: dict[int, bytearray] = field(default_factory=dict)  # event type -> capability bitmask
    bad_lines: int = 0

    def has(self, ev_type: int, code: int) -> bool:
        mask = self.bits.get(ev_type)
        return mask is not None and code // 8 < len(mask) and bool(mask[code // 8] >> (code % 8) & 1)


def _int(text: str, base: int = 10) -> int:
    return int(text, base)


def parse_line(line: str, device: EvemuDevice) -> RawEvent | None:
    """One line: an event, or ``None`` (a description line, taken into ``device``, a comment,
    or a bad line, counted in ``device.bad_lines``)."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    tag, _, rest = line.partition(":")
    parts = rest.split()
    try:
        if tag == "E" and len(parts) == 4:
            sec_text, _, usec_text = parts[0].partition(".")
            usec = _int(usec_text.ljust(6, "0")[:6]) if usec_text else 0
            event = RawEvent(_int(sec_text), usec, _int(parts[1], 16), _int(parts[2], 16), _int(parts[3]))
            if event.type > 0x1F or event.code > 0x2FF or event.sec < 0 or not -2**31 <= event.value < 2**31:
                raise ValueError("out of range")
            return event
        if tag == "N":
            device.name = rest.strip()
        elif tag == "I" and len(parts) == 4:
            a, b, c, d = (_int(p, 16) for p in parts)
            device.ids = (a, b, c, d)
        elif tag == "A" and len(parts) >= 5:
            nums = [_int(p) for p in parts[1:6]]
            device.axes[_int(parts[0], 16)] = AbsAxis(*nums)
        elif tag == "B" and len(parts) >= 2:
            device.bits.setdefault(_int(parts[0], 16), bytearray()).extend(_int(p, 16) for p in parts[1:])
        elif tag in ("P", "S"):
            pass
        else:
            raise ValueError("unknown line")
    except ValueError:
        device.bad_lines += 1
    return None


def read(lines: Iterable[str], device: EvemuDevice | None = None) -> tuple[EvemuDevice, list[RawEvent]]:
    """A whole recording: its description (into ``device`` if given: a separate ``.desc``) and
    its events in order."""
    dev = device if device is not None else EvemuDevice()
    return dev, list(iter_events(lines, dev))


def iter_events(lines: Iterable[str], device: EvemuDevice) -> Iterator[RawEvent]:
    for line in lines:
        event = parse_line(line, device)
        if event is not None:
            yield event
