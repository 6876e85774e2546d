"""The server session machine, driven by hand: join rules, rate limit, error budget, ack
coalescing, ping cadence and the clock from Pongs, the join timeout."""

from __future__ import annotations

import pytest

from wire import CloseCode, ErrorCode, FatalProtocolError, Limits, ProtocolError, decode_frame, encode
from wire import messages as m
from wire.session import IllegalTransition, ServerConfig, ServerSession, ServerState, SessionMisuse
from wire.session import events as ev
from wire.session.client import SERVER_FRAME_LIMITS

S = ServerState
JOIN = encode(m.Join(2, "tok", m.Role.TUTOR, 0, 0))


def state(s: ServerSession) -> ServerState:
    return s.state


def decoded(frames: list[bytes]) -> list[m.Message]:
    return [decode_frame(f, SERVER_FRAME_LIMITS) for f in frames]


def session_ms(now: float) -> int:
    return int(now * 1000)


def joined(now: float = 0.0, **config: object) -> ServerSession:
    s = ServerSession(ServerConfig(**config), now)  # type: ignore[arg-type]
    s.receive_frame(JOIN, now)
    assert s.events() == [ev.JoinRequested(m.Join(2, "tok", m.Role.TUTOR, 0, 0))]
    s.accept(now, session_ms)
    s.data_to_send()
    return s


def closed_with(s: ServerSession) -> tuple[list[m.Message], int | None, str]:
    return decoded(s.data_to_send()), s.close_code, s.close_reason


# --- join -------------------------------------------------------------------------------------


def test_a_join_is_asked_of_the_shell_and_the_first_ping_follows_the_accept() -> None:
    s = ServerSession(ServerConfig(), 0.0)
    assert s.get_timer() == 10.0
    s.receive_frame(JOIN, 0.2)
    assert isinstance(s.events()[0], ev.JoinRequested) and s.get_timer() is None
    with pytest.raises(SessionMisuse):
        s.receive_frame(encode(m.Ping(1)), 0.3)  # answer the join first
    s.accept(0.4, session_ms)
    assert state(s) is S.JOINED and decoded(s.data_to_send()) == [m.Ping(400)]
    with pytest.raises(IllegalTransition):
        s.accept(0.5, session_ms)


@pytest.mark.parametrize(("frame", "code", "close"), [
    (encode(m.Ping(1)), ErrorCode.NOT_JOINED, CloseCode.PROTOCOL_VIOLATION),
    # a server-only type is 1002 first or later (docs/protocol.md 7), closed 4000 as a first frame
    (encode(m.Error(1, "x", 0)), ErrorCode.UNKNOWN_TYPE, CloseCode.PROTOCOL_VIOLATION),
    (encode(m.AudioRelay(1, 0, 0, 0, b"\xf8\xff\xfe")), ErrorCode.UNKNOWN_TYPE, CloseCode.PROTOCOL_VIOLATION),
    (b"\xc1", ErrorCode.BAD_FRAME, CloseCode.PROTOCOL_VIOLATION),
    (encode(m.Join(1, "tok", m.Role.TUTOR, 0, 0)), ErrorCode.UNSUPPORTED_VERSION, CloseCode.UNSUPPORTED_VERSION),
    (b"\x90" * 70_000, ErrorCode.FRAME_TOO_LARGE, CloseCode.FRAME_TOO_LARGE),
])
def test_the_first_frame_rules(frame: bytes, code: ErrorCode, close: CloseCode) -> None:
    s = ServerSession(ServerConfig(), 0.0)
    s.receive_frame(frame, 0.1)
    msgs, close_code, reason = closed_with(s)
    assert [type(x) for x in msgs] == [m.Error] and msgs[0].code == code  # type: ignore[union-attr]
    assert close_code == close and reason == code.name.lower() and state(s) is S.CLOSING
    assert s.events() == [ev.CloseLink(close, code.name.lower())]
    s.receive_frame(JOIN, 0.2)  # nothing more is read
    assert s.events() == [] and s.data_to_send() == []


def test_a_refused_join_sends_the_error_and_closes() -> None:
    s = ServerSession(ServerConfig(), 0.0)
    s.receive_frame(JOIN, 0.1)
    s.refuse_join(FatalProtocolError(ErrorCode.TOKEN_EXPIRED, "expired", CloseCode.TOKEN_EXPIRED))
    assert closed_with(s) == ([m.Error(ErrorCode.TOKEN_EXPIRED, "expired")], 4002, "token_expired")


def test_no_join_within_the_join_timeout_closes_4005_and_text_frames_do_not_restart_it() -> None:
    s = ServerSession(ServerConfig(join_timeout_s=10.0), 0.0)
    s.receive_text(9.0)
    assert decoded(s.data_to_send())[0] == m.Error(ErrorCode.BAD_FRAME,
                                                  "text frames are not accepted; send binary msgpack")
    s.handle_timer(9.99)
    assert state(s) is S.AWAITING_JOIN and s.get_timer() == 10.0
    s.handle_timer(10.0)
    msgs, code, _ = closed_with(s)
    assert code == CloseCode.JOIN_TIMEOUT
    assert msgs[0] == m.Error(ErrorCode.JOIN_TIMEOUT, "no join within the join timeout")
    assert s.get_timer() is None
    s.connection_lost(10.1)
    assert state(s) is S.CLOSED


# --- acks -------------------------------------------------------------------------------------


def test_acks_are_coalesced_for_the_ack_delay() -> None:
    s = joined(0.0, ack_delay_ms=40, ping_interval_s=0)
    for i in range(5):
        s.op_applied(i + 1, 10 + i, 0.001 * i)
    assert s.data_to_send() == [] and s.get_timer() == pytest.approx(0.04)
    s.handle_timer(0.039)
    assert s.data_to_send() == []
    s.handle_timer(0.04)
    assert decoded(s.data_to_send()) == [m.Ack(5, 14)]  # one Ack, the newest
    assert s.get_timer() is None


def test_a_held_ack_goes_before_any_later_frame() -> None:
    s = joined(0.0, ack_delay_ms=40, ping_interval_s=0)
    s.op_applied(1, 7, 0.0)
    s.send(b"\x91\x04", 0.01)  # another participant's event
    assert s.data_to_send() == [encode(m.Ack(1, 7)), b"\x91\x04"]
    s.op_applied(2, 9, 0.02)
    s.receive_frame(encode(m.Ping(5)), 0.03)
    assert decoded(s.data_to_send()) == [m.Ack(2, 9), m.Pong(5, 30)]
    s.op_applied(3, 10, 0.04)
    s.op_refused(ProtocolError(ErrorCode.UNKNOWN_STROKE, "stroke 9 is not open", 4), 4, 0.05)
    assert decoded(s.data_to_send()) == [m.Ack(3, 10), m.Ack(4, 0), m.Error(ErrorCode.UNKNOWN_STROKE,
                                                                            "stroke 9 is not open", 4)]
    s.op_applied(5, 11, 0.06)
    s.op_settled(5, 0.07)
    assert decoded(s.data_to_send()) == [m.Ack(5, 11), m.Ack(5, 0)]


def test_an_ack_delay_of_zero_acks_at_once_and_a_fatal_close_flushes_the_held_ack() -> None:
    s = joined(0.0, ack_delay_ms=0, ping_interval_s=0)
    s.op_applied(1, 2, 0.0)
    assert decoded(s.data_to_send()) == [m.Ack(1, 2)]
    s = joined(0.0, ack_delay_ms=40, ping_interval_s=0)
    s.op_applied(1, 2, 0.0)
    s.close(CloseCode.REPLACED, "replaced", m.Error(ErrorCode.REPLACED, "a newer connection took this seat"))
    assert decoded(s.data_to_send()) == [m.Ack(1, 2), m.Error(ErrorCode.REPLACED, "a newer connection took this seat")]
    s.op_applied(2, 3, 0.01)  # after the close: dropped
    assert s.data_to_send() == [] and s.get_timer() is None


# --- ping and clock ---------------------------------------------------------------------------


def test_server_pings_start_fast_and_pongs_give_the_clients_clock() -> None:
    s = joined(0.0, ping_interval_s=5.0, ack_delay_ms=40)
    pings, now = [0.0], 0.0
    while now < 16.0:
        now = s.get_timer() or 16.0
        s.handle_timer(now)
        for msg in decoded(s.data_to_send()):
            assert isinstance(msg, m.Ping)
            pings.append(round(now, 3))
            # the client answers 30 ms later with a device clock 1,000,000 ms ahead of the session
            s.receive_frame(encode(m.Pong(msg.ts, msg.ts + 1_000_000 + 30)), now + 0.06)
    assert pings == [0.0, 0.1, 0.25, 0.5, 1.0, 6.0, 11.0, 16.0]
    sampled = [e for e in s.events() if isinstance(e, ev.ClockSampled)]
    assert len(sampled) == 7
    assert sampled[-1].offset_ms == pytest.approx(1_000_000, abs=1) and sampled[-1].rtt_ms == pytest.approx(60, abs=1)
    assert s.clock_sync.samples == 7


# --- frames after the join --------------------------------------------------------------------


def test_frames_become_events_for_the_shell() -> None:
    s = joined(0.0, ping_interval_s=0)
    op = m.StrokeEnd(3, 1)
    audio = m.Audio(1, 2, b"\x08\x84\x56\x5e\xe3\xc2\x20\x68\xf8\xfd\xf9\x1f\x30\xb4\x63")
    for msg in (op, audio, m.RtcClose(), m.Ack(0, 17)):
        s.receive_frame(encode(msg), 0.1)
    assert s.events() == [ev.OpReceived(op), ev.AudioIn(audio), ev.SignalIn(m.RtcClose()), ev.ClientProgress(17)]
    assert s.client_seq == 17
    bad = encode(m.StrokePoints(9, 1, 0, 1, b"\x00"))  # blob too short: refused after its cseq
    s.receive_frame(bad, 0.2)
    (rejected,) = s.events()
    assert isinstance(rejected, ev.OpRejected) and rejected.error.ref == 9
    assert rejected.error.code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize(("msg", "code"), [
    (m.Join(2, "tok", m.Role.TUTOR, 0, 0), ErrorCode.ALREADY_JOINED),
    (m.Error(1, "x"), ErrorCode.UNKNOWN_TYPE),
    (m.Snapshot(1, 0, ()), ErrorCode.UNKNOWN_TYPE),
])
def test_frames_a_client_may_not_send_are_refused_and_the_connection_stays(msg: m.Message, code: ErrorCode) -> None:
    s = joined(0.0, ping_interval_s=0)
    s.receive_frame(encode(msg), 0.1)
    (error,) = decoded(s.data_to_send())
    assert isinstance(error, m.Error) and error.code == code and state(s) is S.JOINED


def test_the_rate_limit_closes_at_the_first_frame_past_the_burst() -> None:
    limits = Limits(rate_messages_per_s=10, rate_burst=5)
    s = ServerSession(ServerConfig(limits=limits, ping_interval_s=0), 0.0)
    s.receive_frame(JOIN, 0.0)  # the join costs no token
    s.accept(0.0, session_ms)
    for _ in range(5):
        s.receive_frame(encode(m.Ack(0, 1)), 0.0)
    assert state(s) is S.JOINED
    s.receive_frame(encode(m.Ack(0, 1)), 0.0)
    msgs, code, reason = closed_with(s)
    assert code == CloseCode.RATE_LIMITED and reason == "rate_limited"
    assert isinstance(msgs[-1], m.Error) and msgs[-1].code == ErrorCode.RATE_LIMITED and msgs[-1].ref == 0
    s = ServerSession(ServerConfig(limits=limits, ping_interval_s=0), 0.0)
    s.receive_frame(JOIN, 0.0)
    s.accept(0.0, session_ms)
    for i in range(100):  # at the sustained rate it never trips
        s.receive_frame(encode(m.Ack(0, 1)), i / 10)
    assert state(s) is S.JOINED


def test_the_error_budget_closes_after_max_errors_refusals() -> None:
    s = joined(0.0, ping_interval_s=0, max_errors=3)
    for _ in range(3):
        s.receive_text(0.0)
    assert state(s) is S.JOINED and len(s.data_to_send()) == 3
    s.receive_text(0.0)
    msgs, code, _ = closed_with(s)
    assert code == CloseCode.PROTOCOL_VIOLATION and msgs == [
        m.Error(ErrorCode.TOO_MANY_ERRORS, "more than 3 refused frames in a minute")]
    s = joined(0.0, ping_interval_s=0, max_errors=3)
    for i in range(30):  # 3 a minute is within the budget
        s.receive_text(i * 20.0)
    assert state(s) is S.JOINED


def test_a_frame_over_the_size_limit_after_the_join_closes_4011() -> None:
    s = joined(0.0, ping_interval_s=0, limits=Limits(max_frame_bytes=100))
    s.receive_frame(b"\x91" + b"\x00" * 100, 0.1)
    assert closed_with(s)[1] == CloseCode.FRAME_TOO_LARGE


def test_the_transport_going_away_ends_it_from_any_state() -> None:
    for s in (ServerSession(ServerConfig(), 0.0), joined()):
        s.connection_lost(1.0)
        assert state(s) is S.CLOSED and s.get_timer() is None
        assert s.send(b"x", 1.0) is False
        s.connection_lost(1.1)  # twice is harmless


# --- durable acks (several nodes: docs/protocol.md 3.10) -----------------------------------------


def test_a_durable_ack_waits_for_its_seq_and_every_later_frame_waits_behind_it() -> None:
    s = joined(ack_delay_ms=40, durable_acks=True, ping_interval_s=0)
    s.op_applied(1, 10, 1.0)
    s.op_applied(2, 11, 1.001)  # coalesced with the first: acks are cumulative
    other = encode(m.Event(12, 5, 2, 0, m.Presence("s", True, m.Role.STUDENT)))
    assert s.send(other, 1.002)
    s.op_applied(3, 13, 1.003)
    s.handle_timer(1.1)  # past the ack delay, still not durable: nothing goes
    assert s.data_to_send() == [] and s.undurable
    s.mark_durable(12, 1.2)  # covers the first two ops and the event, not the third op
    assert decoded(s.data_to_send()) == [m.Ack(2, 11), decode_frame(other, SERVER_FRAME_LIMITS)]
    assert s.undurable
    s.mark_durable(13, 1.3)  # its ack delay (from the op, 1.003) is over: it goes the moment it is durable
    assert decoded(s.data_to_send()) == [m.Ack(3, 13)] and not s.undurable
    s.op_applied(4, 14, 2.0)  # not durable yet: it waits, its ack delay counted from now
    assert s.get_timer() == pytest.approx(2.04) and s.data_to_send() == []
    s.mark_durable(20, 2.01)  # durable before its delay is over: held for the rest of it, as ever
    assert s.data_to_send() == []
    s.handle_timer(2.041)
    assert decoded(s.data_to_send()) == [m.Ack(4, 14)]


def test_without_durable_acks_nothing_waits() -> None:
    s = joined(ack_delay_ms=0, ping_interval_s=0)
    s.op_applied(1, 10, 1.0)
    assert decoded(s.data_to_send()) == [m.Ack(1, 10)] and not s.undurable


def test_a_close_drops_what_is_not_durable() -> None:
    s = joined(ack_delay_ms=0, durable_acks=True, ping_interval_s=0)
    s.op_applied(1, 10, 1.0)
    s.close(CloseCode.MOVED, "moved", m.Error(ErrorCode.MOVED, "ws://elsewhere/ws/session/x"))
    assert decoded(s.data_to_send()) == [m.Error(ErrorCode.MOVED, "ws://elsewhere/ws/session/x")]
    assert not s.undurable
