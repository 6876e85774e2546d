"""No disk I/O on the event loop of a live session: with a file system that takes a second for
every write, fsync, open and mkdir, a join into a new room (which starts its recording) and the
ink of another room go on at loopback speed, and the loop's own thread never touches the disk."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import StartServer
from tests.inkdata import draw, finished, handwriting
from wire import Role

pytestmark = pytest.mark.timeout(90)
SLOW_S = 1.0
CALLS = ("write", "fsync", "open", "mkdir", "replace", "rename")


@contextmanager
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every disk call named in ``CALLS`` sleeps ``SLOW_S`` first, while the block runs; yields
    the (call, thread id) of each."""
    calls: list[tuple[str, int]] = []
    on = [True]

    def slowed(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kw: Any) -> Any:
            if on[0]:
                calls.append((name, threading.get_ident()))
                time.sleep(SLOW_S)  # the slow disk itself, not synchronisation
            return original(*args, **kw)

        return call

    for name in CALLS:
        monkeypatch.setattr(os, name, slowed(name, getattr(os, name)))
    try:
        yield calls
    finally:
        on[0] = False


async def test_a_slow_disk_delays_neither_joins_nor_ink_in_another_room(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = await start_server(ack_delay_ms=0)
    assert server.hub.archiver is not None
    tutor_b, student_b = await server.pair("disk-b")
    await draw(tutor_b, handwriting(20, 0))
    await student_b.wait_for(lambda: len(finished(student_b, Role.TUTOR)) == 1)
    loop_thread = threading.get_ident()
    with slow_disk(monkeypatch) as calls:
        started = time.monotonic()
        tutor_a, student_a = await server.pair("disk-a")  # a new room: its recording starts now
        join_s = time.monotonic() - started
        latencies = []
        for seed in range(1, 16):
            await draw(tutor_a, handwriting(40, 100 + seed))  # room A's recording has ever more to write
            points = handwriting(40, seed)
            sent = time.monotonic()
            await draw(tutor_b, points)
            await student_b.wait_for(lambda: finished(student_b, Role.TUTOR)[-1] == points)  # noqa: B023
            latencies.append(time.monotonic() - sent)
        await student_a.wait_for(lambda: len(finished(student_a, Role.TUTOR)) == 15)
        assert calls, "the recordings were written meanwhile (slowly)"
        on_loop = [name for name, thread in calls if thread == loop_thread]
    assert on_loop == [], f"disk calls on the event loop: {on_loop}"
    # One disk call on the loop would cost a whole SLOW_S; the median is held to 100 ms, and every
    # single figure to half of SLOW_S, so that a loaded machine's scheduling is not mistaken for it.
    assert join_s < SLOW_S / 2, f"joining a new room took {join_s * 1000:.0f} ms"
    assert statistics.median(latencies) < 0.1, f"ink took {statistics.median(latencies) * 1000:.0f} ms (median)"
    assert max(latencies) < SLOW_S / 2, f"ink took up to {max(latencies) * 1000:.0f} ms"
    for client in (tutor_a, student_a, tutor_b, student_b):
        await client.close()
