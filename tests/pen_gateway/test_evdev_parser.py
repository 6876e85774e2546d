"""The evdev parser on every real tablet recording: each stroke comes out with the points,
pressure, tilt and phases the kernel reported, checked against a plain fold of the events."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pen_gateway import evcodes as c
from pen_gateway.device import Loss, PageTurn, Phase, Sample
from pen_gateway.evdev_parser import ContactRule, EvdevParser, PenCaps
from pen_gateway.evemu import AbsAxis, RawEvent

from .evemu_data import RECORDINGS, load


@dataclass
class Ref:
    t: float
    x: int
    y: int
    pressure: int
    contact: bool


def reference(events: list[RawEvent], has_tool_keys: bool, has_touch: bool) -> list[list[Ref]]:
    """Contacts as lists of reports, by the simplest reading of the events: a report is in a
    contact while BTN_TOUCH is down (the pressure above 0 on a pad without it), in proximity."""
    state: dict[int, int] = {}
    touch = near = False
    strokes: list[list[Ref]] = []
    current: list[Ref] | None = None
    changed = False
    for e in events:
        if e.type in (c.EV_ABS, c.EV_KEY):
            changed = True
        if e.type == c.EV_ABS:
            state[e.code] = e.value
        elif e.type == c.EV_KEY and e.code == c.BTN_TOUCH:
            touch = bool(e.value)
        elif e.type == c.EV_KEY and e.code in c.TOOL_KEYS:
            near = bool(e.value)
        elif e.type == c.EV_SYN and e.code == c.SYN_REPORT:
            in_range = near or not has_tool_keys
            contact = in_range and (touch if has_touch else state.get(c.ABS_PRESSURE, 0) > 0)
            if not changed:
                continue  # a report of nothing but MSC_SERIAL: no new point
            changed = False
            if contact:
                if current is None:
                    current = []
                    strokes.append(current)
                current.append(Ref(e.time_s, state[c.ABS_X], state[c.ABS_Y], state.get(c.ABS_PRESSURE, 0), True))
            elif current is not None:
                current = None
    return strokes


def run(parser: EvdevParser, events: list[RawEvent]) -> list[Sample]:
    out: list[Sample] = []
    for e in events:
        out.extend(s for s in parser.feed(e.sec, e.usec, e.type, e.code, e.value) if isinstance(s, Sample))
    return out


def contacts(samples: list[Sample]) -> list[list[Sample]]:
    strokes: list[list[Sample]] = []
    for s in samples:
        if s.phase is Phase.DOWN:
            strokes.append([s])
        elif s.phase in (Phase.MOVE, Phase.UP):
            assert strokes, "a MOVE or UP before any DOWN"
            strokes[-1].append(s)
    return strokes


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_every_stroke_of_the_recording(name: str) -> None:
    caps, events = load(name)
    assert caps.is_pen()
    parser = EvdevParser(caps)
    samples = run(parser, events)
    expected = reference(events, bool(caps.keys & c.TOOL_KEYS), c.BTN_TOUCH in caps.keys)
    got = contacts(samples)
    assert len(got) == len(expected)
    for stroke, ref in zip(got, expected, strict=True):
        # the contact's reports, then one UP where the contact ended
        body, up = stroke[:-1], stroke[-1]
        assert up.phase is Phase.UP and up.pressure == 0
        assert [s.phase for s in body] == [Phase.DOWN] + [Phase.MOVE] * (len(body) - 1)
        kept = ref
        assert [(s.x, s.y, s.pressure) for s in body] == [(r.x, r.y, r.pressure) for r in kept]
        assert [s.host_s for s in body] == pytest.approx([r.t for r in kept])
        assert (up.x, up.y) == (body[-1].x, body[-1].y) or up.host_s > body[-1].host_s
    # samples are numbered in order and time never goes back
    assert [s.seq for s in samples] == list(range(len(samples)))
    assert all(a.host_s <= b.host_s for a, b in itertools.pairwise(samples))
    assert parser.losses == 0
    # hover reports out of contact: never at a zeroed position after proximity ended
    assert all((s.x, s.y) != (0, 0) for s in samples)


def test_the_recordings_hold_what_their_readme_says() -> None:
    strokes = {name: contacts(run(EvdevParser(load(name)[0]), load(name)[1])) for name in RECORDINGS}
    assert len(strokes["UC-LOGIC Tablet WP5540U Pen.events"]) == 1
    assert len(strokes["Wacom Intuos4 6x9.stylus-drag.events"]) == 1
    assert strokes["Genius EasyPen i405X.events"] == []  # proximity and hover only: no contact
    uc = strokes["UC-LOGIC Tablet WP5540U Pen.events"][0]
    assert max(s.pressure for s in uc) > 100 and uc[0].host_s == pytest.approx(1.903983)
    wacom = strokes["Wacom Intuos4 6x9.stylus-drag.events"][0]
    assert len({(s.tilt_x, s.tilt_y) for s in wacom}) > 5  # tilt moves during the drag
    assert all(-90 <= s.tilt_x <= 90 and -90 <= s.tilt_y <= 90 for s in wacom)


def test_wacom_tilt_is_in_degrees() -> None:
    caps, events = load("Wacom Intuos4 6x9.stylus-drag.events")
    stroke = contacts(run(EvdevParser(caps), events))[0]
    # ABS_TILT_X resolution 57 units per radian: 57 units is 57.3 degrees
    parser = EvdevParser(caps)
    for e in (RawEvent(0, 0, c.EV_KEY, c.BTN_TOOL_PEN, 1), RawEvent(0, 0, c.EV_ABS, c.ABS_TILT_X, 57),
              RawEvent(0, 0, c.EV_ABS, c.ABS_X, 10), RawEvent(0, 0, c.EV_SYN, c.SYN_REPORT, 0)):
        out = parser.feed(e.sec, e.usec, e.type, e.code, e.value)
    assert isinstance(out[0], Sample) and out[0].tilt_x == 57
    assert stroke


def test_syn_dropped_reports_a_loss_and_the_stroke_goes_on() -> None:
    caps, events = load("UC-LOGIC Tablet WP5540U Pen.events")
    at = next(i for i, e in enumerate(events) if e.type == c.EV_ABS and e.code == c.ABS_PRESSURE and e.value > 300)
    damaged = [*events[:at], RawEvent(events[at].sec, events[at].usec, c.EV_SYN, c.SYN_DROPPED, 0), *events[at:]]
    parser = EvdevParser(caps)
    out = [ev for e in damaged for ev in parser.feed(e.sec, e.usec, e.type, e.code, e.value)]
    assert sum(isinstance(e, Loss) for e in out) == 1 and parser.losses == 1
    strokes = contacts([e for e in out if isinstance(e, Sample)])
    assert len(strokes) == 1 and strokes[0][-1].phase is Phase.UP


def test_resync_after_a_drop_ends_a_contact_that_ended_meanwhile() -> None:
    caps, events = load("UC-LOGIC Tablet WP5540U Pen.events")
    parser = EvdevParser(caps)
    mid = next(i for i, e in enumerate(events) if e.type == c.EV_ABS and e.code == c.ABS_PRESSURE and e.value > 300)
    for e in events[:mid]:
        parser.feed(e.sec, e.usec, e.type, e.code, e.value)
    parser.feed(9, 0, c.EV_SYN, c.SYN_DROPPED, 0)
    out = parser.feed(9, 1, c.EV_SYN, c.SYN_REPORT, 0)
    assert isinstance(out[0], Loss)
    out = parser.resync({c.ABS_X: 100, c.ABS_Y: 200, c.ABS_PRESSURE: 0}, frozenset(), 9, 2)
    assert [s.phase for s in out if isinstance(s, Sample)] == [Phase.UP]


def test_pressure_threshold_where_btn_touch_is_unreliable() -> None:
    axes = {c.ABS_X: AbsAxis(0, 1000), c.ABS_Y: AbsAxis(0, 1000), c.ABS_PRESSURE: AbsAxis(0, 1023)}
    parser = EvdevParser(PenCaps("pad", axes, frozenset({c.BTN_TOUCH})), contact=ContactRule.PRESSURE,
                         pressure_threshold=20)
    phases = []
    for p in (0, 10, 30, 50, 15, 0):
        parser.feed(0, 0, c.EV_ABS, c.ABS_PRESSURE, p)
        parser.feed(0, 0, c.EV_ABS, c.ABS_X, p + 1)
        phases += [s.phase for s in parser.feed(0, 0, c.EV_SYN, c.SYN_REPORT, 0) if isinstance(s, Sample)]
    assert phases == [Phase.HOVER, Phase.HOVER, Phase.DOWN, Phase.MOVE, Phase.UP, Phase.HOVER]


def test_eraser_and_page_key() -> None:
    axes = {c.ABS_X: AbsAxis(0, 1000), c.ABS_Y: AbsAxis(0, 1000)}
    parser = EvdevParser(PenCaps("pen", axes, frozenset({c.BTN_TOOL_PEN, c.BTN_TOOL_RUBBER, c.BTN_TOUCH, c.BTN_0})))
    parser.feed(0, 0, c.EV_KEY, c.BTN_TOOL_RUBBER, 1)
    parser.feed(0, 0, c.EV_KEY, c.BTN_TOUCH, 1)
    parser.feed(0, 0, c.EV_KEY, c.BTN_0, 1)
    out = parser.feed(0, 0, c.EV_SYN, c.SYN_REPORT, 0)
    assert isinstance(out[0], PageTurn)
    assert isinstance(out[1], Sample) and out[1].tool.value == "eraser" and out[1].phase is Phase.DOWN


events_st = st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 999_999), st.integers(0, 0x1F),
                               st.integers(0, 0x2FF), st.integers(-2**31, 2**31 - 1)), max_size=300)


@given(events_st)
def test_garbage_never_raises(events: list[tuple[int, int, int, int, int]]) -> None:
    caps, _ = load("Wacom Intuos4 6x9.stylus-drag.events")
    parser = EvdevParser(caps)
    for e in events:
        for out in parser.feed(*e):
            assert isinstance(out, Sample | Loss | PageTurn)
