"""The client session machine, driven by hand: frames in, frames out, time stepped, no sockets."""

from __future__ import annotations

import random

import pytest

from wire import CatchUp, ErrorCode, Point, decode_frame, encode
from wire import messages as m
from wire.ratelimit import TokenBucket
from wire.session import ClientConfig, ClientSession, ClientState, IllegalTransition, SessionMisuse
from wire.session import events as ev
from wire.session.backoff import BackoffPolicy
from wire.session.client import SERVER_FRAME_LIMITS

S = ClientState
ROSTER = (m.RosterEntry(1, "tutor", m.Role.TUTOR, True, False, 0),)


def welcome(*, last_seq: int = 1, acked: int = 0, mode: CatchUp = CatchUp.REPLAY, epoch: int = 7,
            rate: int = 200, burst: int = 400, pages: int = 1, pid: int = 1) -> bytes:
    return encode(m.Welcome(2, pid, m.Role.TUTOR, "tutor", "demo", 0, last_seq, acked, mode, pages, epoch, rate,
                            burst, m.Rights(31), ROSTER))


def presence(seq: int, pid: int = 1, online: bool = True) -> bytes:
    return encode(m.Event(seq, 0, pid, 0, m.Presence("tutor" if pid == 1 else "student", online,
                                                      m.Role(pid - 1))))


def state(c: ClientSession) -> ClientState:
    """The state, read through a call so that the type checker does not narrow it."""
    return c.state


def decoded(frames: list[bytes]) -> list[m.Message]:
    return [decode_frame(f, SERVER_FRAME_LIMITS) for f in frames]


def ops_in(frames: list[bytes]) -> list[m.Op]:
    return [msg for msg in decoded(frames) if not isinstance(msg, (m.Ping, m.Pong, m.Join))]  # type: ignore[misc]


def client(**config: object) -> ClientSession:
    return ClientSession("tok", m.Role.TUTOR, ClientConfig(**config), rng=random.Random(5))  # type: ignore[arg-type]


def join(c: ClientSession, now: float, **kw: object) -> list[bytes]:
    """Connect, open, and take a Welcome (plus the presence event it implies)."""
    if state(c) is not S.CONNECTING:
        c.connect(now)
    c.connection_made(now)
    c.receive_frame(welcome(**kw), now)  # type: ignore[arg-type]
    return c.data_to_send()


def pen(n: int, offset: int = 0) -> list[Point]:
    return [Point(1000 + 3 * (offset + i), 2000 + (offset + i) % 7, 8 * (offset + i), 500) for i in range(n)]


# --- join -------------------------------------------------------------------------------------


def test_the_join_goes_first_and_says_where_to_resume() -> None:
    c = client()
    assert state(c) is S.IDLE and c.get_timer() is None
    c.connect(0.0)
    assert state(c) is S.CONNECTING and c.get_timer() == 10.0
    c.connection_made(0.05)
    assert decoded(c.data_to_send()) == [m.Join(2, "tok", m.Role.TUTOR, 0, 0)]
    c.receive_frame(welcome(last_seq=1), 0.3)
    c.receive_frame(presence(1), 0.3)
    assert state(c) is S.LIVE and c.replica.last_seq == 1
    kinds = [type(e) for e in c.events()]
    assert kinds == [ev.StateChanged, ev.StateChanged, ev.StateChanged, ev.Joined, ev.EventApplied, ev.CaughtUp]
    c.connection_lost(1.0, None)
    c.connect(1.0)
    c.connection_made(1.0)
    assert decoded(c.data_to_send()) == [m.Join(2, "tok", m.Role.TUTOR, 1, 7)]


def test_misuse_raises_the_misuse_error() -> None:
    c = client()
    with pytest.raises(IllegalTransition):
        c.connection_made(0.0)  # nothing is connecting
    c.connect(0.0)
    with pytest.raises(IllegalTransition):
        c.connect(0.0)
    join(c, 0.0)
    with pytest.raises(SessionMisuse):
        c.connection_failed(0.0, "a live link cannot fail to connect")
    with pytest.raises(SessionMisuse):
        c.add_points(0.0, 12345, pen(2))  # not an open stroke
    with pytest.raises(SessionMisuse):
        c.submit(0.0, lambda cseq: m.PageSwitch(cseq + 5, 0))  # must use the cseq given
    c.close(0.0)
    assert state(c) is S.CLOSED and c.take_close_request() == (1000, "client left")
    with pytest.raises(SessionMisuse):
        c.begin_stroke(0.0)
    with pytest.raises(IllegalTransition):
        c.connect(0.0)


# --- finality: refused joins and closes -------------------------------------------------------

FAILED_JOIN = [ErrorCode.AUTH_FAILED, ErrorCode.TOKEN_EXPIRED, ErrorCode.WRONG_SESSION, ErrorCode.WRONG_SEAT,
               ErrorCode.UNSUPPORTED_VERSION]
RETRIED_JOIN = [ErrorCode.JOIN_TIMEOUT, ErrorCode.TOO_MANY_JOINS, ErrorCode.ROOM_FULL, ErrorCode.INTERNAL_ERROR,
                ErrorCode.BAD_FRAME, ErrorCode.NOT_JOINED]


@pytest.mark.parametrize("code", FAILED_JOIN)
def test_a_join_refused_for_good_is_final(code: ErrorCode) -> None:
    c = client()
    c.connect(0.0)
    c.connection_made(0.0)
    c.events()
    c.receive_frame(encode(m.Error(code, "no")), 0.2)
    assert state(c) is S.FAILED and c.get_timer() is None
    events = c.events()
    assert ev.Refused(m.Error(code, "no"), final=True) in events
    assert isinstance(events[-1], ev.Closed) and events[-1].state is S.FAILED
    c.connection_lost(0.3, 4001)  # the server's close that follows changes nothing
    assert state(c) is S.FAILED and c.events() == []


def test_a_join_refused_because_the_session_ended_closes() -> None:
    c = client()
    c.connect(0.0)
    c.connection_made(0.0)
    c.receive_frame(encode(m.Error(ErrorCode.SESSION_ENDED, "over")), 0.2)
    assert state(c) is S.CLOSED
    assert ev.Refused(m.Error(ErrorCode.SESSION_ENDED, "over"), final=True) in c.events()


@pytest.mark.parametrize("code", RETRIED_JOIN)
def test_a_join_refused_for_a_passing_reason_is_retried_after_a_longer_wait(code: ErrorCode) -> None:
    c = client()
    c.connect(0.0)
    c.connection_made(0.0)
    c.receive_frame(encode(m.Error(code, "later")), 1.0)
    assert state(c) is S.BACKOFF
    assert ev.Refused(m.Error(code, "later"), final=False) in c.events()
    retry = c.get_timer()
    assert retry is not None and 1.0 + 2.5 <= retry <= 1.0 + 5.0
    c.handle_timer(retry)
    assert state(c) is S.CONNECTING


@pytest.mark.parametrize("code", [4001, 4002, 4003, 4004, 4009])
def test_a_live_link_closed_for_good_fails(code: int) -> None:
    c = client()
    join(c, 0.0)
    c.connection_lost(5.0, code, "bye")
    assert state(c) is S.FAILED and c.get_timer() is None


@pytest.mark.parametrize("code", [1000, 4006])
def test_a_live_link_closed_because_a_side_left_closes(code: int) -> None:
    c = client()
    join(c, 0.0)
    c.connection_lost(5.0, code)
    assert state(c) is S.CLOSED and c.end_code == code


@pytest.mark.parametrize("code", [None, 1006, 1011, 1012, 4000, 4005, 4007, 4008, 4010, 4011, 4012])
def test_every_other_ending_is_a_network_failure_and_is_retried(code: int | None) -> None:
    c = client()
    join(c, 0.0)
    c.connection_lost(5.0, code)
    assert state(c) is S.BACKOFF
    retry = c.get_timer()
    assert retry is not None and 5.0 <= retry < 5.0 + 0.1
    assert any(isinstance(e, ev.Disconnected) and e.code == code for e in c.events())


def test_an_error_that_ends_it_counts_even_if_its_close_is_lost() -> None:
    c = client()
    join(c, 0.0)
    c.receive_frame(encode(m.Error(ErrorCode.REPLACED, "a newer connection took this seat")), 1.0)
    c.connection_lost(1.1, None)  # the 4009 never arrived: reconnecting would steal the seat back
    assert state(c) is S.FAILED
    c = client()
    join(c, 0.0)
    c.receive_frame(encode(m.Error(ErrorCode.RATE_LIMITED, "slow down")), 1.0)
    c.connection_lost(1.1, None)
    assert state(c) is S.BACKOFF


def test_it_never_gives_up_on_network_failures() -> None:
    c = client()
    c.connect(0.0)
    now = 0.0
    for attempt in range(2_000):
        kind = attempt % 4
        if kind == 0:
            c.connection_failed(now, "connection refused")
        elif kind == 1:
            c.connection_failed(now, "name or service not known")
        elif kind == 2:
            c.connection_made(now)
            now += 0.01
            c.connection_lost(now, None, "reset")
        else:
            deadline = c.get_timer()
            assert deadline is not None and deadline == pytest.approx(now + 10.0)
            now = deadline
            c.handle_timer(now)  # connect timeout
        assert state(c) is S.BACKOFF
        retry = c.get_timer()
        assert retry is not None and now <= retry < now + 1.0
        now = retry
        c.handle_timer(now)
        assert state(c) is S.CONNECTING
    join(c, now)
    assert state(c) is S.LIVE


def test_without_auto_reconnect_backoff_waits_for_connect() -> None:
    c = client(auto_reconnect=False)
    join(c, 0.0)
    c.connection_lost(1.0, None)
    assert state(c) is S.BACKOFF and c.get_timer() is None
    c.connect(1.5)
    assert state(c) is S.CONNECTING


def test_a_failure_after_a_stable_link_starts_the_backoff_over() -> None:
    c = client(backoff=BackoffPolicy(initial_s=0.1, cap_s=1.0))
    c.connect(0.0)
    now = 0.0
    for _ in range(6):  # the bound has grown to the cap
        c.connection_failed(now, "refused")
        now = c.get_timer() or now
        c.handle_timer(now)
    join(c, now)
    c.connection_lost(now + 0.5, None)  # live for 0.5 s: not stable, the bound stays at the cap
    assert c._backoff.failures == 7
    now = c.get_timer() or now
    c.handle_timer(now)
    join(c, now)
    c.connection_lost(now + 3.0, None)  # live for 3 s: stable, start over at 0.1
    retry = c.get_timer()
    assert retry is not None and retry - (now + 3.0) < 0.1 and c._backoff.failures == 1


# --- timeouts ---------------------------------------------------------------------------------


def test_no_welcome_within_the_connect_timeout_backs_off_and_closes_the_link() -> None:
    c = client(connect_timeout_s=4.0)
    c.connect(0.0)
    c.connection_made(0.5)
    c.handle_timer(3.9)
    assert state(c) is S.JOINING
    c.handle_timer(4.0)
    assert state(c) is S.BACKOFF and c.take_close_request() == (1001, "no welcome within the connect timeout")


def test_a_silent_live_link_is_given_up() -> None:
    c = client(idle_timeout_s=8.0, ping_interval_s=2.5)
    join(c, 0.0)
    c.receive_frame(encode(m.Ping(10)), 3.0)
    now = 3.0
    while state(c) is S.LIVE:
        timer = c.get_timer()
        assert timer is not None and timer <= 11.0
        now = timer
        c.handle_timer(now)
    assert now == 11.0 and state(c) is S.BACKOFF
    assert c.take_close_request() == (1001, "nothing received for 8 s")


# --- ping, pong, clock ------------------------------------------------------------------------


def test_client_pings_start_fast_and_pongs_give_the_clock() -> None:
    c = ClientSession("tok", m.Role.TUTOR, ClientConfig(ping_interval_s=2.5), rng=random.Random(1),
                      device_epoch_s=1_700_000_000.0)
    c.connect(0.0)
    c.connection_made(0.0)
    c.data_to_send()
    c.receive_frame(welcome(), 0.0)
    pings: list[float] = []
    now = 0.0
    while now < 9.0:
        for msg in decoded(c.data_to_send()):
            if isinstance(msg, m.Ping):
                pings.append(round(now, 3))
                # the server answers at once: 40 ms each way, session clock = device clock - 1,700,000,000,000 + 5
                c.receive_frame(encode(m.Pong(msg.ts, msg.ts - 1_700_000_000_000 + 5 + 40)), now + 0.08)
        now = c.get_timer() or 9.0
        c.handle_timer(now)
    assert pings == [0.0, 0.1, 0.25, 0.5, 1.0, 3.5, 6.0, 8.5]
    assert c.clock_sync.rtt_ms == pytest.approx(80, abs=1)
    assert c.clock_sync.offset_ms == pytest.approx(-1_700_000_000_000 + 5, abs=1)


def test_a_server_ping_is_answered_at_once_with_the_device_clock() -> None:
    c = ClientSession("tok", m.Role.TUTOR, rng=random.Random(1), device_epoch_s=100.0)
    join(c, 0.0)
    c.receive_frame(encode(m.Ping(1234)), 2.0)
    assert m.Pong(1234, 102_000) in decoded(c.data_to_send())


# --- ops, acks, replica -----------------------------------------------------------------------


def test_ops_are_numbered_kept_until_acked_and_applied_locally() -> None:
    c = client()
    join(c, 0.0)
    c.receive_frame(presence(1), 0.0)
    stroke = c.begin_stroke(0.1, 0)
    assert stroke is not None
    c.add_points(0.2, stroke, pen(4))
    c.end_stroke(0.3, stroke)
    sent = ops_in(c.data_to_send())
    assert [op.cseq for op in sent] == [1, 2, 3] and len(c.outbox) == 3
    assert c.replica.strokes(1)[0].points == pen(4) and c.replica.strokes(1)[0].ended
    c.receive_frame(encode(m.Ack(2, 3)), 0.5)
    assert len(c.outbox) == 1 and c.replica.last_seq == 3
    c.receive_frame(encode(m.Ack(3, 4)), 0.6)
    assert not c.outbox and ev.Acked(3, 4) in c.events()
    c.receive_frame(encode(m.Ack(9, 0)), 0.7)  # cseqs this client never gave were processed
    assert c.submit(0.8, lambda cseq: m.PageSwitch(cseq, 0)) == m.PageSwitch(10, 0)


def test_a_refused_op_leaves_the_outbox_and_is_reported() -> None:
    c = client()
    join(c, 0.0)
    c.submit(0.1, lambda cseq: m.PageSwitch(cseq, 9))
    c.receive_frame(encode(m.Ack(1, 0)), 0.3)
    error = m.Error(ErrorCode.UNKNOWN_PAGE, "page 9 does not exist", 1)
    c.receive_frame(encode(error), 0.3)
    assert not c.outbox and ev.OpRefused(error) in c.events() and c.errors == [error]


def test_others_events_are_applied_and_our_replayed_ones_are_not_applied_twice() -> None:
    c = client()
    join(c, 0.0, last_seq=1)
    c.receive_frame(presence(1), 0.0)
    stroke = c.begin_stroke(0.1, 0)
    assert stroke is not None
    c.add_points(0.1, stroke, pen(4))
    c.connection_lost(0.2, None)  # before any ack
    c.connect(0.3)
    c.connection_made(0.3)
    # the server had applied both ops as seqs 2 and 3; a student joined as 4
    c.receive_frame(welcome(last_seq=4, acked=2), 0.5)
    assert not c.outbox
    sb = m.StrokeBegin(0, stroke, 0, m.Tool.PEN, 0xFF, 20, 1, 0)
    c.receive_frame(encode(m.Event(2, 0, 1, 1, sb)), 0.5)
    c.receive_frame(encode(m.Event(3, 0, 1, 2, m.StrokePoints(0, stroke, 0, 4, b"x" * 12))), 0.5)
    c.receive_frame(presence(4, pid=2), 0.5)
    assert state(c) is S.LIVE and c.replica.last_seq == 4
    assert c.replica.strokes(1)[0].points == pen(4)  # not doubled (the bogus replayed blob was not decoded)
    assert c.replica.online[2] is True
    assert any(isinstance(e, ev.CaughtUp) for e in c.events())


def test_a_gap_in_the_events_drops_the_link_to_resume() -> None:
    c = client()
    join(c, 0.0)
    c.receive_frame(presence(1), 0.0)
    c.receive_frame(presence(3, pid=2), 0.1)  # seq 2 is missing
    assert state(c) is S.BACKOFF and c.replica.last_seq == 1
    code, _ = c.take_close_request() or (0, "")
    assert code == 1002


def test_ops_made_before_the_first_welcome_follow_the_catch_up_with_numbers_the_server_has_not_seen() -> None:
    c = client()
    stroke = c.begin_stroke(0.0, 0)  # offline from the start
    assert stroke is not None
    c.add_points(0.0, stroke, pen(6))
    c.end_stroke(0.0, stroke)
    assert c.replica.strokes() == []  # no pid yet: held until the catch-up
    c.connect(0.1)
    c.connection_made(0.1)
    c.data_to_send()
    # an earlier tab of this participant sent cseqs up to 40; its stroke 1 is in the replay
    c.receive_frame(welcome(last_seq=3, acked=40), 0.3)
    sent = ops_in(c.data_to_send())
    assert [op.cseq for op in sent] == [41, 42, 43]
    c.receive_frame(presence(1), 0.3)
    c.receive_frame(encode(m.Event(2, 0, 1, 39, m.StrokeBegin(0, 1, 0, m.Tool.PEN, 0xFF, 20, 1, 0))), 0.3)
    c.receive_frame(encode(m.Event(3, 0, 1, 40, m.StrokeEnd(0, 1))), 0.3)
    strokes = {s.stroke: s for s in c.replica.strokes(1)}
    assert set(strokes) == {1, stroke} and strokes[stroke].points == pen(6) and strokes[1].ended


def test_a_snapshot_catch_up_applies_our_unacked_ops_again_after_the_last_page() -> None:
    c = client()
    join(c, 0.0, last_seq=1)
    c.receive_frame(presence(1), 0.0)
    c.submit(0.0, lambda cseq: m.PageAdd(cseq, 1))
    c.receive_frame(encode(m.Ack(1, 2)), 0.1)
    stroke = c.begin_stroke(0.2, 1)
    assert stroke is not None
    c.add_points(0.2, stroke, pen(4))
    c.connection_lost(0.3, None)
    c.connect(0.4)
    c.connection_made(0.4)
    c.receive_frame(welcome(last_seq=9, acked=1, mode=CatchUp.SNAPSHOT, pages=2, epoch=7), 0.5)
    assert c.replica.strokes() == [] and c.replica.awaiting_pages == {0, 1}
    c.add_points(0.55, stroke, pen(2, offset=4))  # drawn during the catch-up: held as well
    c.receive_frame(encode(m.Snapshot(9, 0, ())), 0.6)
    assert c.replica.strokes() == []
    c.receive_frame(encode(m.Snapshot(9, 1, ())), 0.6)
    assert [s.points for s in c.replica.strokes(1)] == [pen(4) + pen(2, offset=4)]
    assert c.replica.last_seq == 9


def test_the_outbox_bound_is_reported_and_nothing_grows_past_it() -> None:
    c = client(max_outbox_ops=3, max_outbox_bytes=1 << 20)
    for _ in range(3):
        assert c.submit(0.0, lambda cseq: m.PageSwitch(cseq, 0)) is not None
    assert c.submit(0.0, lambda cseq: m.PageSwitch(cseq, 0)) is None
    assert c.events() == [ev.OutboxFull(3, len(encode(m.PageSwitch(1, 0))) * 3, 3, 1 << 20)]
    assert c.cseq == 3 and len(c.outbox) == 3  # the refused op used no cseq
    c = client(max_outbox_ops=100, max_outbox_bytes=200)
    stroke = c.begin_stroke(0.0, 0)
    assert stroke is not None
    taken = 0
    while c.add_points(0.0, stroke, pen(8, offset=taken)):
        taken += 8
    assert c.outbox.bytes <= 200 and isinstance(c.events()[-1], ev.OutboxFull)
    # the points refused can be offered again once there is room: the stroke continues without a gap
    join(c, 1.0)
    c.receive_frame(encode(m.Ack(c.cseq, 0)), 1.2)
    assert c.add_points(1.3, stroke, pen(8, offset=taken))
    last = ops_in(c.data_to_send())[-1]
    assert isinstance(last, m.StrokePoints) and last.start == taken


# --- coalescing and pacing --------------------------------------------------------------------


def _write_offline(c: ClientSession, points: int, per: int = 2) -> int:
    stroke = c.begin_stroke(0.0, 0)
    assert stroke is not None
    for i in range(0, points, per):
        assert c.add_points(0.0, stroke, pen(per, offset=i))
    assert c.end_stroke(0.0, stroke)
    return stroke


def test_a_backlog_goes_out_in_a_handful_of_frames_after_the_welcome() -> None:
    c = client()
    join(c, 0.0)
    stroke = c.begin_stroke(0.0, 0)
    assert stroke is not None
    live_frames = []
    for i in range(0, 1200, 2):  # 120 Hz, 2 points a batch; the link is dead but nobody knows yet
        c.add_points(i / 120, stroke, pen(2, offset=i))
        live_frames += c.data_to_send()
    c.end_stroke(10.0, stroke)
    live_frames += c.data_to_send()
    assert len(ops_in(live_frames)) == 100  # the in-flight window (rate_burst 400 // 4); the rest waited, merged
    c.connection_lost(10.0, None)
    c.connect(10.1)
    c.connection_made(10.1)
    c.data_to_send()
    c.receive_frame(welcome(last_seq=1, acked=0), 10.5)  # the server got none of it
    resend = c.data_to_send()
    resent = ops_in(resend)
    assert [type(op).__name__ for op in resent] == ["StrokeBegin", "StrokePoints", "StrokePoints",
                                                    "StrokePoints", "StrokeEnd"]
    counts = [op.count for op in resent if isinstance(op, m.StrokePoints)]
    assert sum(counts) == 1200 and max(counts) <= 512
    each = sum(len(f) for f in live_frames) / len(live_frames)
    op_bytes = sum(len(f) for f in resend if decode_frame(f, SERVER_FRAME_LIMITS).__class__ is not m.Ping)
    print(f"\nresend: 1,200 points in {len(resent)} frames, {op_bytes} bytes "
          f"(as sent live: 602 frames, ~{each * 602:.0f} bytes)")
    assert op_bytes < 0.4 * each * 602


def test_a_stalled_link_holds_new_points_and_sends_them_merged_when_acks_return() -> None:
    c = client()
    join(c, 0.0, burst=40)  # window 10
    assert c.window == 10
    stroke = c.begin_stroke(0.0, 0)
    assert stroke is not None
    for i in range(0, 200, 2):
        c.add_points(i / 120, stroke, pen(2, offset=i))
    first = ops_in(c.data_to_send())
    assert len(first) == 10 and c.outbox.in_flight == 10 and c.outbox.waiting == 1
    c.receive_frame(encode(m.Ack(first[-1].cseq, 11)), 2.0)  # the acks come back at last
    held = ops_in(c.data_to_send())
    assert len(held) == 1 and isinstance(held[0], m.StrokePoints)
    assert held[0].start == 18 and held[0].count == 182 and held[0].cseq == c.cseq


def test_resends_are_paced_under_the_announced_rate_limit() -> None:
    c = client()
    for _ in range(60):  # ops that cannot merge
        c.submit(0.0, lambda cseq: m.PageSwitch(cseq, 0))
    c.connect(0.0)
    c.connection_made(0.0)
    c.data_to_send()
    server = TokenBucket(10, 40, 0.0)  # the server's bucket, full when the connection opened
    c.receive_frame(welcome(rate=10, burst=40), 0.0)  # pace: 9/s, burst 20; window 10
    now, acked, sent_at = 0.0, 0, []
    while c.outbox and now < 30:
        frames = c.data_to_send()
        for _ in frames:
            assert server.take(now), f"the server's bucket ran dry at {now:.3f}"
        for op in ops_in(frames):
            sent_at.append(now)
            acked = op.cseq
        c.receive_frame(encode(m.Ack(acked, 0)), now)  # acked at once (and a server Ping now and then)
        if int(now * 10) % 25 == 0:
            c.receive_frame(encode(m.Ping(int(now * 1000))), now)
        timer = c.get_timer()
        now = min(timer, now + 0.05) if timer is not None else now + 0.05
        c.handle_timer(now)
    assert not c.outbox and len(sent_at) == 60
    assert len([t for t in sent_at if t == 0.0]) == 10  # the window
    # then the pace: 20 tokens at the welcome, 9 a second after that, Pings and Pongs included
    assert (60 - 20) / 9 <= sent_at[-1] <= (60 - 20 + 10) / 9


def test_a_successor_continues_after_the_application_left_and_came_back() -> None:
    c = client()
    join(c, 0.0)
    c.receive_frame(presence(1), 0.0)
    c.submit(0.1, lambda cseq: m.PageAdd(cseq, 1))
    c.close(0.2)
    with pytest.raises(IllegalTransition):
        c.connect(0.3)  # an ending is final for the machine that met it
    nxt = c.successor()
    assert state(nxt) is S.IDLE and nxt.cseq == 1 and nxt.replica is c.replica and len(nxt.outbox) == 1
    nxt.connect(0.3)
    nxt.connection_made(0.3)
    assert decoded(nxt.data_to_send()) == [m.Join(2, "tok", m.Role.TUTOR, 1, 7)]
    with pytest.raises(SessionMisuse):
        nxt.successor()
