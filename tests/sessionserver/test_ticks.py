"""sessionserver.ticks: connections' wakes share one loop timer per 5 ms tick, never early, at
most a tick late, and a wake asked for while its tick runs goes to the next one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sessionserver.ticks import Ticker, ticker


async def test_wakes_share_a_tick_and_are_never_early() -> None:
    loop = asyncio.get_running_loop()
    t = Ticker(loop, time.monotonic, tick_s=0.005)
    now = time.monotonic()
    fired: list[tuple[str, int, float]] = []
    done = asyncio.Event()
    dues = {"a": now + 0.020, "b": now + 0.0201, "c": now + 0.041}

    def firing(name: str) -> Callable[[int], None]:
        def fire(tick: int) -> None:
            fired.append((name, tick, time.monotonic()))
            if len(fired) == 3:
                done.set()
        return fire

    ticks = {name: t.wake(due, name, firing(name)) for name, due in dues.items()}
    assert ticks["a"] == ticks["b"] != ticks["c"], "a and b fall in one tick"
    assert t.pending() == 3
    await asyncio.wait_for(done.wait(), 2)
    assert [name for name, _, _ in fired] == ["a", "b", "c"]
    for name, tick, at in fired:
        assert tick == ticks[name]
        assert at >= dues[name] - 0.002, f"{name} early by {dues[name] - at:.4f} s"  # the loop's ms clock
    assert t.pending() == 0


async def test_a_wake_for_the_running_tick_goes_to_the_next() -> None:
    loop = asyncio.get_running_loop()
    t = Ticker(loop, time.monotonic, tick_s=0.005)
    seen: list[int] = []
    done = asyncio.Event()

    def again(tick: int) -> None:
        seen.append(tick)
        if len(seen) < 3:
            t.wake(time.monotonic() - 1.0, "x", again)  # already due: still not this tick
        else:
            done.set()

    t.wake(time.monotonic(), "x", again)
    await asyncio.wait_for(done.wait(), 2)
    assert seen == [seen[0], seen[0] + 1, seen[0] + 2]


async def test_one_ticker_a_loop_and_clock() -> None:
    assert ticker(time.monotonic) is ticker(time.monotonic)
    other = ticker(time.perf_counter)
    assert other is not ticker(time.monotonic)


async def test_a_cancelled_wake_is_not_run_and_not_kept() -> None:
    loop = asyncio.get_running_loop()
    t = Ticker(loop, time.monotonic, tick_s=0.005)
    fired: list[str] = []
    done = asyncio.Event()
    due = time.monotonic() + 0.01
    def kept(_: int) -> None:
        fired.append("kept")
        done.set()

    tick = t.wake(due, "gone", lambda _: fired.append("gone"))
    t.wake(due, "kept", kept)
    t.cancel(tick, "gone")
    assert t.pending() == 1
    lone = t.wake(due + 1.0, "lone", lambda _: fired.append("lone"))
    t.cancel(lone, "lone")  # its tick's only wake: the loop timer goes too
    assert t.pending() == 1 and len(t._buckets) == 1
    await asyncio.wait_for(done.wait(), 2)
    assert fired == ["kept"]
