"""The session machine's parts on their own: transition tables, backoff, ping cadence, pacing,
the outbox's bound and coalescing. Time is stepped by hand; nothing sleeps."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from wire import HAS_PRESSURE, Point, PointState, encode, encode_points
from wire import messages as m
from wire.session import (
    CLIENT_TRANSITIONS,
    SERVER_TRANSITIONS,
    Backoff,
    BackoffPolicy,
    ClientState,
    IllegalTransition,
    Outbox,
    Pacer,
    PingSchedule,
    ServerState,
    SessionMisuse,
)
from wire.session.states import Lifecycle

# --- states -----------------------------------------------------------------------------------


def test_every_state_has_a_row_and_the_terminal_states_have_no_way_out() -> None:
    assert set(CLIENT_TRANSITIONS) == set(ClientState)
    assert set(SERVER_TRANSITIONS) == set(ServerState)
    assert CLIENT_TRANSITIONS[ClientState.CLOSED] == CLIENT_TRANSITIONS[ClientState.FAILED] == frozenset()
    assert SERVER_TRANSITIONS[ServerState.CLOSED] == frozenset()
    # the reconnect loop is in the table: LIVE -> BACKOFF -> CONNECTING -> JOINING -> LIVE
    cycle = [ClientState.LIVE, ClientState.BACKOFF, ClientState.CONNECTING, ClientState.JOINING, ClientState.LIVE]
    assert all(b in CLIENT_TRANSITIONS[a] for a, b in itertools.pairwise(cycle))
    # BACKOFF is reached only from states that hold or open a link
    assert {s for s, to in CLIENT_TRANSITIONS.items() if ClientState.BACKOFF in to} == {
        ClientState.CONNECTING, ClientState.JOINING, ClientState.LIVE}


def test_an_illegal_transition_raises_the_misuse_error_not_a_protocol_error() -> None:
    life = Lifecycle(ClientState.IDLE, CLIENT_TRANSITIONS)
    with pytest.raises(IllegalTransition) as info:
        life.to(ClientState.LIVE)
    assert isinstance(info.value, SessionMisuse) and not isinstance(info.value, ValueError)
    assert info.value.source is ClientState.IDLE and info.value.target is ClientState.LIVE
    assert "IDLE -> LIVE" in str(info.value)
    assert life.state is ClientState.IDLE  # unchanged
    life.to(ClientState.CLOSED)
    for target in ClientState:
        with pytest.raises(IllegalTransition):
            life.to(target)


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_bounds_double_from_the_initial_delay_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial_s=0.1, cap_s=1.0)
    assert [policy.bound(n) for n in range(7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert policy.bound(10_000) == 1.0  # no overflow however long the outage
    with pytest.raises(ValueError):
        BackoffPolicy(initial_s=2.0, cap_s=1.0)


def test_backoff_is_full_jitter_within_its_bounds() -> None:
    policy = BackoffPolicy()
    draws: dict[int, list[float]] = {n: [] for n in range(6)}
    for seed in range(400):
        backoff = Backoff(policy, random.Random(seed))
        for n in range(6):
            draws[n].append(backoff.next_delay())
    for n, values in draws.items():
        bound = policy.bound(n)
        assert all(0.0 <= v < bound for v in values)
        assert statistics.mean(values) == pytest.approx(bound / 2, rel=0.15)  # uniform over [0, bound)
        assert min(values) < bound * 0.1 and max(values) > bound * 0.9


def test_backoff_after_a_refusal_waits_longer_and_reset_starts_over() -> None:
    backoff = Backoff(BackoffPolicy(refused_retry_s=5.0), random.Random(3))
    refused = [backoff.refused_delay() for _ in range(50)]
    assert all(2.5 <= d <= 5.0 for d in refused)
    assert backoff.failures == 50
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() < 0.1


# --- ping cadence -----------------------------------------------------------------------------


def _fire_all(schedule: PingSchedule, until: float, step: float = 0.01) -> list[float]:
    fired, now = [], 0.0
    while now <= until:
        if schedule.is_due(now):
            fired.append(round(now, 2))
            schedule.fired(now)
        now = round(now + step, 2)
    return fired


def test_pings_start_fast_then_settle_to_the_interval() -> None:
    schedule = PingSchedule(5.0)
    schedule.start(0.0)
    assert _fire_all(schedule, 16.0) == [0.0, 0.1, 0.25, 0.5, 1.0, 6.0, 11.0, 16.0]


def test_a_late_wake_does_not_burst_pings() -> None:
    schedule = PingSchedule(2.0)
    schedule.start(0.0)
    for t in (0.0, 0.1, 0.25, 0.5, 1.0):
        schedule.fired(t)
    assert schedule.due == 3.0
    schedule.fired(30.0)  # the shell slept through many slots
    assert schedule.due == 32.0


def test_an_interval_of_zero_disables_pings() -> None:
    schedule = PingSchedule(0.0)
    schedule.start(0.0)
    assert schedule.due is None and not schedule.is_due(100.0)


# --- pacing -----------------------------------------------------------------------------------


def test_pacing_takes_half_the_burst_and_nine_tenths_of_the_rate() -> None:
    pacer = Pacer.under(rate_per_s=10, rate_burst=8, now=0.0)
    assert (pacer.rate, pacer.burst) == (9.0, 4.0)
    sent = 0
    while pacer.ready(0.0):
        pacer.spend(0.0)
        sent += 1
    assert sent == 4
    assert pacer.ready_at(0.0) == pytest.approx(1 / 9)
    pacer.spend(0.0)  # a Pong: it goes anyway, into debt
    assert pacer.ready_at(0.0) == pytest.approx(2 / 9)
    assert not pacer.ready(0.2) and pacer.ready(0.23)


# --- outbox -----------------------------------------------------------------------------------


def _batches(stroke: int, n_batches: int, per: int = 2, first_cseq: int = 1) -> list[m.StrokePoints]:
    state = PointState()
    ops = []
    for i in range(n_batches):
        pts = [Point(1000 + 3 * (i * per + k), 2000 + (i * per + k), 8 * (i * per + k), 500) for k in range(per)]
        start = state.count
        ops.append(m.StrokePoints(first_cseq + i, stroke, start, per, encode_points(pts, HAS_PRESSURE, state)))
    return ops


def test_the_outbox_refuses_past_either_bound() -> None:
    box = Outbox(max_ops=3, max_bytes=10_000, max_points_per_message=512, max_frame_bytes=65_536)
    for c in range(1, 4):
        frame = encode(m.PageSwitch(c, 0))
        assert box.fits(len(frame))
        box.push(m.PageSwitch(c, 0), frame)
    assert not box.fits(1)
    box = Outbox(max_ops=100, max_bytes=12, max_points_per_message=512, max_frame_bytes=65_536)
    frame = encode(m.PageSwitch(1, 0))
    assert len(frame) == 4 and box.fits(12) and not box.fits(13)
    box.push(m.PageSwitch(1, 0), frame)
    assert box.bytes == 4 and box.fits(8) and not box.fits(9)


def test_waiting_points_of_one_stroke_merge_but_sent_ones_never_do() -> None:
    box = Outbox(1000, 1 << 20, 512, 65_536)
    ops = _batches(7, 4)
    box.push(ops[0], encode(ops[0]))
    assert box.next_to_send() is not None  # in flight now: the server may have it
    for op in ops[1:]:
        box.push(op, encode(op))
    assert len(box) == 2 and box.in_flight == 1 and box.waiting == 1
    merged = box.ops()[1]
    assert isinstance(merged, m.StrokePoints)
    assert (merged.cseq, merged.start, merged.count) == (4, 2, 6)
    assert merged.blob == b"".join(op.blob for op in ops[1:])
    assert box.bytes == sum(len(e.frame) for e in box)


def test_merging_stops_at_another_stroke_a_gap_or_the_points_limit() -> None:
    box = Outbox(1000, 1 << 20, max_points_per_message=5, max_frame_bytes=65_536)
    a, b = _batches(1, 3), _batches(2, 1, first_cseq=10)
    for op in (a[0], a[1], b[0], a[2]):
        box.push(op, encode(op))
    counts = [(op.stroke, op.count) for op in box.ops() if isinstance(op, m.StrokePoints)]
    assert counts == [(1, 4), (2, 2), (1, 2)]  # a[2] follows stroke 2: not merged across it
    box = Outbox(1000, 1 << 20, max_points_per_message=5, max_frame_bytes=65_536)
    for op in _batches(1, 3):  # 2 + 2 = 4, then + 2 would be 6 > 5
        box.push(op, encode(op))
    assert [op.count for op in box.ops() if isinstance(op, m.StrokePoints)] == [4, 2]


def test_merging_respects_the_frame_limit() -> None:
    ops = _batches(1, 4, per=4)
    limit = len(encode(ops[0])) + len(ops[1].blob) + 1
    box = Outbox(1000, 1 << 20, max_points_per_message=512, max_frame_bytes=limit)
    for op in ops:
        box.push(op, encode(op))
    assert all(len(e.frame) <= limit for e in box)
    assert len(box) == 2


def test_welcome_drops_what_was_processed_and_coalesces_the_rest() -> None:
    box = Outbox(10_000, 1 << 22, 512, 65_536)
    begin = m.StrokeBegin(1, 5, 0, m.Tool.PEN, 0xFF, 20, HAS_PRESSURE, 0)
    box.push(begin, encode(begin))
    ops = _batches(5, 600, first_cseq=2)  # 1,200 points in 2-point batches, each sent on its own
    for op in ops:
        box.push(op, encode(op))
        box.next_to_send()
    end = m.StrokeEnd(602, 5)
    box.push(end, encode(end))
    box.next_to_send()
    box.next_to_send()
    before = box.bytes
    top = box.welcome(acked_cseq=101)  # the server processed begin and 100 batches (200 points)
    kinds = [(type(op).__name__, getattr(op, "count", 0), getattr(op, "start", 0), op.cseq) for op in box.ops()]
    assert kinds == [("StrokePoints", 512, 200, 101 + 256), ("StrokePoints", 488, 712, 601), ("StrokeEnd", 0, 0, 602)]
    assert top == 602 and box.in_flight == 0
    assert box.bytes < before * 0.5  # ~3 bytes a point plus 3 frame headers instead of 500


def test_welcome_renumbers_ops_never_sent_when_the_server_knows_higher_cseqs() -> None:
    box = Outbox(100, 1 << 20, 512, 65_536)
    for c in (1, 2, 3):
        box.push(m.PageSwitch(c, 0), encode(m.PageSwitch(c, 0)))
    top = box.welcome(acked_cseq=50)  # an earlier tab of this participant got to cseq 50
    assert [op.cseq for op in box.ops()] == [51, 52, 53] and top == 53
    assert [e.frame for e in box] == [encode(m.PageSwitch(c, 0)) for c in (51, 52, 53)]
