"""Link-adaptive ink batching in the client machine: nothing held on a good link, longer batches
as the ack delay or the backlog grows (never past ``max_batch_s``), and a simulated 32 kbit/s
link that carries 240 Hz pen input without a growing backlog once the batches lengthen."""

from __future__ import annotations

import random
from collections import deque

from tests.wire.test_session_machine_client import ops_in, presence, welcome
from wire import encode
from wire import messages as m
from wire.ink import Point
from wire.session import ClientConfig, ClientSession
from wire.session.batching import BatchPolicy, LinkBatcher
from wire.session.timers import earliest

FRAME_OVERHEAD = 6 + 52  # a client frame's WebSocket header with its mask key, and TCP/IP over Ethernet


def test_the_hold_follows_the_ack_delay_and_the_backlog() -> None:
    batcher = LinkBatcher(BatchPolicy())
    assert batcher.hold_s() == 0.0  # nothing known: nothing held
    for _ in range(50):
        batcher.observe_ack(0.120)  # a good link: 80 ms round trip plus the server's 40 ms
    assert batcher.hold_s() == 0.0
    for _ in range(50):
        batcher.observe_ack(0.330)
    assert 0.06 < batcher.hold_s() < 0.075  # (330 - 40 - 150) / 2 = 70 ms
    assert batcher.hold_s(oldest_in_flight_s=5.0) == 0.100  # an ack long overdue: the maximum
    assert LinkBatcher(BatchPolicy()).hold_s(oldest_in_flight_s=0.25) == 0.030  # (250 - 190) / 2
    assert LinkBatcher(BatchPolicy()).hold_s(oldest_in_flight_s=0.2) == 0.0  # 5 ms: below one pen batch
    assert LinkBatcher(BatchPolicy(max_batch_s=0)).hold_s(9.0) == 0.0  # off


def drive(link_bytes_per_s: float, rtt_s: float, seconds: float, policy: BatchPolicy) -> tuple[list[int], int]:
    """A tutor writing at 240 Hz (the app hands the machine each 16 ms of points) over a link of
    ``link_bytes_per_s`` each way and ``rtt_s``; the server acks each frame at once. Returns the
    points of each frame sent and the ops not yet acknowledged at the end."""
    c = ClientSession("tok", m.Role.TUTOR, ClientConfig(batching=policy), rng=random.Random(1))
    c.connect(0.0)
    c.connection_made(0.0)
    c.data_to_send()
    c.receive_frame(welcome(rate=200, burst=400), 0.0)
    c.receive_frame(presence(1), 0.0)
    c.data_to_send()
    stroke = c.begin_stroke(0.0)
    assert stroke is not None
    wire_free = 0.0  # when the uplink has sent everything queued on it
    acks: deque[tuple[float, int]] = deque()  # (when its Ack is back, cseq)
    sizes: list[int] = []
    now, next_pen, sample = 0.0, 0.0, 0
    while now < seconds:
        if now >= next_pen:  # 16 ms of 240 Hz pen: 3 or 4 points
            count = round((next_pen + 0.016) * 240) - sample
            points = [Point(20_000 + 3 * (sample + i), 30_000 + (sample + i) % 5, 4 * (sample + i), 800)
                      for i in range(count)]
            sample += count
            c.add_points(now, stroke, points)
            next_pen += 0.016
        for frame in c.data_to_send():
            for op in ops_in([frame]):
                if isinstance(op, m.StrokePoints):
                    sizes.append(op.count)
                wire_free = max(wire_free, now) + (len(frame) + FRAME_OVERHEAD) / link_bytes_per_s
                acks.append((wire_free + rtt_s, op.cseq))
        while acks and acks[0][0] <= now:  # the server acks each op as it has it
            _, cseq = acks.popleft()
            c.receive_frame(encode(m.Ack(cseq, 0)), now)
        timer = earliest(c.get_timer(), next_pen, acks[0][0] if acks else None)
        now = max(now + 1e-4, timer if timer is not None else now + 0.001)
        if c.get_timer() is not None and now >= c.get_timer():  # type: ignore[operator]
            c.handle_timer(now)
    backlog = c.outbox.waiting + c.outbox.in_flight
    return sizes, backlog


def test_a_32_kbit_link_carries_240_hz_ink_without_backlog_once_batches_lengthen() -> None:
    slow = 32_000 / 8
    fixed, fixed_backlog = drive(slow, 0.3, 20.0, BatchPolicy(max_batch_s=0))
    adaptive, adaptive_backlog = drive(slow, 0.3, 20.0, BatchPolicy())
    assert fixed_backlog > 50  # 16 ms frames: the link falls further behind all the time
    assert adaptive_backlog < 20  # the machine batched longer: the link keeps up
    late = adaptive[len(adaptive) // 2:]
    assert sum(late) / len(late) > 2 * sum(fixed) / len(fixed)  # batches of several pen windows
    fast, _ = drive(10_000_000, 0.02, 5.0, BatchPolicy())
    assert max(fast) <= 4  # a good link: each 16 ms of pen goes as it comes
