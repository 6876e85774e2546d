"""The evdev shell without a kernel device (there is no /dev/input here): python-evdev stood in
for by a fake that replays a real tablet recording, then vanishes (ENODEV), is missing for a
while, comes back and overflows once (SYN_DROPPED). The adapter reports each and goes on; a
device that may not be opened says to join the input group."""

from __future__ import annotations

import errno
import os
import sys
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pen_gateway import evcodes as c
from pen_gateway.device import DeviceBack, DeviceGone, Loss, Phase, Sample
from pen_gateway.errors import DeviceError

from .evemu_data import load

NAME = "UC-LOGIC Tablet WP5540U Pen.events"


@dataclass
class AbsInfo:
    value: int
    min: int
    max: int
    fuzz: int
    flat: int
    resolution: int


@dataclass
class Event:
    sec: int
    usec: int
    type: int
    code: int
    value: int


class World:
    """What the fake kernel has: which devices exist and what each open one will read."""

    def __init__(self) -> None:
        caps, events = load(NAME)
        self.caps, self.events = caps, events
        self.present = True
        self.denied = False
        self.opens = 0
        self.reads = 0  # read loops started: one per opening of the pad by the adapter
        self.scans_missing = 0

    def device(self, path: str) -> FakeDevice:
        if self.denied:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        self.opens += 1
        return FakeDevice(self)


class FakeDevice:
    def __init__(self, world: World) -> None:
        self.world = world
        self.name = world.caps.name
        self.fd = os.open(os.devnull, os.O_RDONLY)  # the clock ioctl fails on it (ENOTTY): suppressed

    def capabilities(self, absinfo: bool = True) -> dict[int, list[Any]]:
        axes = [(code, AbsInfo(0, a.minimum, a.maximum, a.fuzz, a.flat, a.resolution))
                for code, a in self.world.caps.axes.items()]
        return {c.EV_ABS: axes, c.EV_KEY: sorted(self.world.caps.keys)}

    async def async_read_loop(self) -> AsyncIterator[Event]:
        events = self.world.events
        self.world.reads += 1
        if self.world.reads == 1:
            for e in events[: len(events) // 2]:  # half the recording: mid-stroke, then unplugged
                yield Event(e.sec, e.usec, e.type, e.code, e.value)
            self.world.present = False
            raise OSError(errno.ENODEV, "No such device")
        yield Event(9, 0, c.EV_SYN, c.SYN_DROPPED, 0)
        yield Event(9, 1, c.EV_SYN, c.SYN_REPORT, 0)
        for e in events[len(events) // 2 :]:
            yield Event(e.sec + 10, e.usec, e.type, e.code, e.value)

    def absinfo(self, code: int) -> AbsInfo:
        return AbsInfo(123, 0, 0, 0, 0, 0)

    def active_keys(self) -> list[int]:
        return [c.BTN_TOUCH]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World()

    def list_devices() -> list[str]:
        if not w.present:
            w.scans_missing += 1
            if w.scans_missing >= 2:
                w.present = True  # plugged back in
            return []
        return ["/dev/input/event7"]

    fake = types.SimpleNamespace(list_devices=list_devices, InputDevice=w.device,
                                 ecodes=types.SimpleNamespace(EV_ABS=c.EV_ABS, EV_KEY=c.EV_KEY))
    monkeypatch.setitem(sys.modules, "evdev", fake)
    yield w


async def test_unplug_replug_and_overflow(world: World) -> None:
    from pen_gateway.evdev_adapter import EvdevAdapter

    adapter = EvdevAdapter(rescan_s=0.001)
    assert adapter.info.name == "UC-LOGIC Tablet WP5540U Pen" and adapter.info.pressure_max == 1023
    out = []
    async for e in adapter.events():
        out.append(e)
        if world.reads == 2 and isinstance(e, Sample) and e.phase is Phase.UP:
            break
    await adapter.close()
    kinds = [type(e).__name__ for e in out]
    gone, back, loss = kinds.index("DeviceGone"), kinds.index("DeviceBack"), kinds.index("Loss")
    assert gone < back < loss
    assert isinstance(out[gone], DeviceGone) and isinstance(out[back], DeviceBack) and isinstance(out[loss], Loss)
    assert world.scans_missing >= 2  # it looked for the pad until it was back
    after = [e for e in out[loss:] if isinstance(e, Sample)]
    # resynchronised from the device's state: a new stroke (the gateway ended the old one when the pad went)
    assert after[0].x == 123 and after[0].phase is Phase.DOWN
    assert after[-1].phase is Phase.UP


def test_not_permitted_says_join_the_input_group(world: World) -> None:
    from pen_gateway.evdev_adapter import list_pens

    world.denied = True
    with pytest.raises(DeviceError) as err:
        list_pens()
    assert "not permitted" in err.value.message and "input' group" in err.value.fix
