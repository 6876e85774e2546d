"""The worked vendor adapter of docs/pen-adapters.md runs as written: its packets become the
samples, losses and page turns the gateway expects (bleak stood in for by a small fake that
delivers notifications, since there is no Bluetooth here)."""

from __future__ import annotations

import asyncio
import re
import struct
import sys
import types
from pathlib import Path
from typing import Any

from pen_gateway.device import Loss, PageTurn, Phase, Sample

DOC = Path(__file__).resolve().parents[2] / "docs" / "pen-adapters.md"


class FakeBleakClient:
    def __init__(self, address: str) -> None:
        self.address = address
        self.is_connected = False
        self.callback: Any = None
        self.subscribed = asyncio.Event()

    async def connect(self) -> None:
        self.is_connected = True

    async def start_notify(self, char: str, callback: Any) -> None:
        self.callback = callback
        self.subscribed.set()

    async def disconnect(self) -> None:
        self.is_connected = False


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return str(blocks[0])


async def test_the_smartpen_example() -> None:
    code = example_code()
    assert 40 <= len(code.strip().splitlines()) <= 70  # "about 50 lines"
    sys.modules["bleak"] = types.SimpleNamespace(BleakClient=FakeBleakClient)  # type: ignore[assignment]
    try:
        namespace: dict[str, Any] = {"__name__": "smartpen_example"}
        exec(compile(code, str(DOC), "exec"), namespace)
    finally:
        del sys.modules["bleak"]
    pen = namespace["SmartPen"]("AA:BB")
    events = pen.events()
    pack = struct.Struct("<HIHHHH").pack
    packets = [pack(1, 1000, 3, 10, 10, 0), pack(2, 1008, 3, 12, 11, 300), pack(3, 1016, 3, 14, 12, 320),
               pack(5, 1032, 3, 18, 14, 0), pack(6, 1040, 4, 20, 15, 200)]
    first = asyncio.ensure_future(anext(events))  # connects, subscribes, waits for a notification
    await pen.client.subscribed.wait()
    for data in packets[1:]:
        pen.client.callback(None, bytearray(data))
    await pen.close()
    out = [await first]
    async for e in events:
        out.append(e)
    kinds = [type(e).__name__ if not isinstance(e, Sample) else e.phase.value for e in out]
    assert kinds == ["down", "move", "Loss", "up", "PageTurn", "down"]
    assert isinstance(out[2], Loss) and "1 packets lost" in out[2].reason
    assert isinstance(out[4], PageTurn) and out[4].page == 4
    samples = [e for e in out if isinstance(e, Sample)]
    assert [s.device_ms for s in samples] == [1008, 1016, 1032, 1040]
    assert abs(samples[1].host_s - samples[0].host_s - 0.008) < 1e-9  # the pen's clock, not arrival
    assert samples[0].phase is Phase.DOWN
