"""Linux tablets and pen displays through the kernel's input events (python-evdev): the thin
I/O shell around ``evdev_parser``.

* The device's event clock is switched to ``CLOCK_MONOTONIC`` (``EVIOCSCLOCKID``), so event
  times are on the gateway's clock and never jump with the wall clock.
* ``SYN_DROPPED``: the parser discards to the next report; this shell then reads the device's
  current axes and keys and hands them to ``resync``.
* Hot-unplug: a read that fails with ``ENODEV`` yields ``DeviceGone``; the shell looks for a
  device of the same name every ``rescan_s`` and yields ``DeviceBack`` when it is there again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from .adapters import PenAdapter
from .device import DeviceBack, DeviceGone, Loss, PenEvent
from .errors import DeviceError
from .evdev_parser import ContactRule, EvdevParser, PenCaps
from .evemu import AbsAxis

EVIOCSCLOCKID = 0x400445A0  # _IOW('E', 0xa0, int)
CLOCK_MONOTONIC = 1
INPUT_GROUP_FIX = ("add your user to the 'input' group (sudo usermod -aG input $USER, then log in again) "
                   "or install the udev rule of docs/pen-gateway.md")


def _evdev() -> Any:
    try:
        import evdev
    except ImportError:
        raise DeviceError("python-evdev is not installed",
                          "pip install 'tutorwire[pen]' (Linux only; elsewhere use --device replay:FILE)") from None
    return evdev


def caps_of(device: Any) -> PenCaps:
    ev = _evdev()
    caps = device.capabilities(absinfo=True)
    axes = {code: AbsAxis(a.min, a.max, a.fuzz, a.flat, a.resolution) for code, a in caps.get(ev.ecodes.EV_ABS, [])}
    return PenCaps(device.name, axes, frozenset(caps.get(ev.ecodes.EV_KEY, [])))


def list_pens() -> list[tuple[str, str]]:
    """``(path, name)`` of every input device that is a pen; ``DeviceError`` when none can be
    read (none there, or not permitted)."""
    ev = _evdev()
    paths = ev.list_devices()
    found: list[tuple[str, str]] = []
    denied = 0
    for path in paths:
        try:
            dev = ev.InputDevice(path)
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue
        try:
            if caps_of(dev).is_pen():
                found.append((path, dev.name))
        finally:
            dev.close()
    if not found:
        if denied or (not paths and os.path.isdir("/dev/input") and not os.access("/dev/input", os.R_OK)):
            raise DeviceError(f"no pen device could be opened ({denied} input devices not permitted)", INPUT_GROUP_FIX)
        raise DeviceError("no pen tablet or pen display is connected",
                          "plug the writing pad in (check `ls /dev/input`), or use --device synthetic or "
                          "--device replay:FILE")
    return found


class EvdevAdapter(PenAdapter):
    def __init__(self, path_or_name: str | None = None, *, contact: ContactRule = ContactRule.TOUCH,
                 pressure_threshold: int = 0, rescan_s: float = 1.0) -> None:
        self.want = path_or_name
        self.contact = contact
        self.pressure_threshold = pressure_threshold
        self.rescan_s = rescan_s
        self._device: Any = None
        self._closed = False
        self._open()

    def _find(self) -> str:
        pens = list_pens()
        for path, name in pens:
            if self.want in (None, path, name):
                return path
        raise DeviceError(f"no pen device {self.want!r}", f"pick one of: {', '.join(n for _, n in pens)}")

    def _open(self) -> None:
        ev = _evdev()
        path = self._find()
        try:
            dev = ev.InputDevice(path)
        except PermissionError:
            raise DeviceError(f"{path} is not permitted", INPUT_GROUP_FIX) from None
        with contextlib.suppress(OSError):  # kernels before 4.4 keep the realtime clock
            fcntl.ioctl(dev.fd, EVIOCSCLOCKID, struct.pack("i", CLOCK_MONOTONIC))
        self._device = dev
        self.name = dev.name
        self.parser = EvdevParser(caps_of(dev), contact=self.contact, pressure_threshold=self.pressure_threshold)
        self.info = self.parser.info

    async def events(self) -> AsyncIterator[PenEvent]:
        while not self._closed:
            dev = self._device
            try:
                async for e in dev.async_read_loop():
                    for out in self.parser.feed(e.sec, e.usec, e.type, e.code, e.value):
                        yield out
                        if isinstance(out, Loss):
                            now = time.monotonic()
                            sec, usec = int(now), int((now % 1) * 1e6)
                            absv = {code: dev.absinfo(code).value for code in self.parser.abs}
                            for back in self.parser.resync(absv, frozenset(dev.active_keys()), sec, usec):
                                yield back
            except OSError as exc:
                if self._closed:
                    return
                if exc.errno not in (errno.ENODEV, errno.EIO, errno.EBADF):
                    raise
            if self._closed:
                return
            yield DeviceGone(time.monotonic(), "the pen device was unplugged")
            with contextlib.suppress(OSError):
                dev.close()
            while not self._closed:
                await asyncio.sleep(self.rescan_s)  # polling for a re-plug: udev is not always there
                try:
                    self._open()
                except DeviceError:
                    continue
                yield DeviceBack(time.monotonic(), self.info)
                break

    async def close(self) -> None:
        self._closed = True
        if self._device is not None:
            with contextlib.suppress(OSError):
                self._device.close()
