"""What the browser tests do with the pages, in the pages' own terms (the DOM contract of
``web_client/``): sign in, ask, take an offer, draw with a mouse, a pen or a finger, read the
replica and the audio statistics the page exposes on ``window.tw``."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from playwright.async_api import CDPSession, FloatRect, Page, WebSocketRoute, expect

from .conftest import GRADE, SUBJECT, Party

T = TypeVar("T")
Draw = Callable[[], Awaitable[None]]

# Each page's replica (web_client/js/wire/replica.js Replica: pages, each a Map of strokes
# {pid, stroke, ended, points: [{x, y, t, pressure, tiltX, tiltY}]}, and participants by pid
# with their role) reduced to plain data, one list per page; a stroke's id is "pid:stroke"
# (stroke ids are per participant) and its role is its author's, from the replica's roster.
REPLICA_JS = """
() => {
  const r = window.tw && window.tw.session && window.tw.session.replica;
  if (!r) return null;
  const roles = ['tutor', 'student', 'presenter', 'viewer'];
  const list = (v) => v == null ? [] : Array.isArray(v) ? v : v instanceof Map ? [...v.values()]
    : typeof v[Symbol.iterator] === 'function' ? [...v] : Object.values(v);
  return list(r.pages).map((pg) => list(pg.strokes ?? pg).map((s) => ({
    id: `${s.pid}:${s.stroke}`,
    role: roles[r.participants.get(s.pid)?.role] ?? '',
    ended: Boolean(s.ended),
    points: s.points.map((p) => [p.x, p.y, p.pressure, p.tiltX, p.tiltY]),
  })));
}
"""


@dataclass(frozen=True)
class Stroke:
    page: int
    id: str
    role: str  # its author's role label
    ended: bool
    points: tuple[tuple[int, int, int, int, int], ...]  # (x, y, pressure, tiltX, tiltY): both sides must agree

    @property
    def pressures(self) -> list[int]:
        return [p[2] for p in self.points]

    @property
    def tilts(self) -> list[tuple[int, int]]:
        return [(p[3], p[4]) for p in self.points]


def by_id(strokes: Sequence[Stroke]) -> dict[str, Stroke]:
    return {s.id: s for s in strokes}


async def replica(page: Page) -> list[Stroke]:
    pages = await page.evaluate(REPLICA_JS)
    if pages is None:
        return []
    return [
        Stroke(i, s["id"], s["role"], s["ended"], tuple(tuple(int(v) for v in p) for p in s["points"]))  # type: ignore[misc]
        for i, strokes in enumerate(pages) for s in strokes
    ]


async def slow_session_link(page: Page, delay_s: float) -> None:
    """The page's session WebSocket goes through Playwright's WebSocket route, which holds every
    message ``delay_s`` in each direction (in order); the pages themselves load as usual."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        loop = asyncio.get_running_loop()

        def later(send: Callable[[str | bytes], None]) -> Callable[[str | bytes], None]:
            def hold(message: str | bytes) -> None:
                loop.call_later(delay_s, send, message)  # a link's delay, not synchronisation
            return hold

        ws.on_message(later(server.send))
        server.on_message(later(ws.send))

    await page.route_web_socket(re.compile(r".*/ws/session/.*"), route)


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout_s: float = 10.0,
                     what: str = "condition") -> T:
    """Poll ``probe`` until ``ok`` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s} s; last value: {value!r}")
        await asyncio.sleep(0.05)


# -- sign-in, asking, offers ------------------------------------------------------------------


async def sign_in(party: Party, guide: bool = False) -> None:
    """Sign in through the form; the first-run guide is marked seen first unless ``guide``."""
    page = party.page
    await page.goto("/")
    if not guide:
        await page.evaluate("(role) => localStorage.setItem(`tutorwire.guide.${role}`, 'seen')", party.role)
    await page.fill("input#user", party.user)
    await page.select_option("select#role", party.role)
    await page.click("button#signin-go")
    await page.wait_for_url(f"**/{party.role}*")


async def ask(student: Party, knowledge_points: str = "math.algebra", favourite: str = "",
              direct: bool = False) -> None:
    """Ask through the form; the knowledge points (catalogue ids, comma-separated) are set on the
    page's picker (``window.tw.student.picker``), as picking them from the list would."""
    page = student.page
    await page.select_option("select#subject", SUBJECT)
    await page.fill("input#grade", str(GRADE))
    await page.wait_for_function("() => Boolean(window.tw && window.tw.student && window.tw.student.picker)")
    await page.evaluate("(ids) => window.tw.student.picker.set(ids)",
                        [k.strip() for k in knowledge_points.split(",") if k.strip()])
    if favourite:
        await page.fill("input#favourite", favourite)
        await page.set_checked("input#direct", direct)
    await page.click("button#ask-go")
    await expect(page.locator("#status")).to_have_attribute("data-state", "waiting")


async def go_available(tutor: Party) -> None:
    button = tutor.page.locator("button#available")
    await expect(button).to_be_visible()
    if await button.get_attribute("aria-pressed") != "true":
        await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")


async def accept_offer(tutor: Party) -> None:
    page = tutor.page
    await expect(page.locator("#offer")).to_be_visible()
    await expect(page.locator("#offer-countdown")).not_to_be_empty()
    await page.click("button#accept")


async def in_session(party: Party) -> None:
    """The party's session view is mounted and its session is live."""
    page = party.page
    await expect(page.locator("#session canvas#ink")).to_be_visible()
    await page.wait_for_function("() => Boolean(window.tw && window.tw.session && window.tw.session.replica)")
    await expect(page.locator("#session #conn")).to_have_attribute("data-state", "live")


async def session_id(party: Party) -> str:
    """The id of the session the party's page is in (the last part of its WebSocket path)."""
    url = str(await party.page.evaluate("() => window.tw.session.url"))
    return url.rstrip("/").rsplit("/", 1)[-1]


async def start_session(tutor: Party, student: Party) -> None:
    """From nothing to both parties in one live session, through the pages alone."""
    await sign_in(student)
    await ask(student)
    await sign_in(tutor)
    await go_available(tutor)
    await accept_offer(tutor)
    await in_session(tutor)
    await expect(student.page.locator("#status")).to_have_attribute("data-state", "matched")
    await in_session(student)


# -- drawing -----------------------------------------------------------------------------------


async def canvas_box(page: Page) -> FloatRect:
    """The part of the writing page inside the viewport: ``canvas#ink`` fills the board, and the
    page (A4 portrait) sits in it under the view's zoom and pan (``window.tw.surface.pageRect()``)."""
    canvas = page.locator("canvas#ink")
    await canvas.scroll_into_view_if_needed()
    box = await page.evaluate("() => window.tw.surface.pageRect()")
    assert box is not None, "the surface has no page rectangle"
    viewport = page.viewport_size
    assert viewport is not None
    top, bottom = max(box["y"], 0.0), min(box["y"] + box["height"], float(viewport["height"]))
    left, right = max(box["x"], 0.0), min(box["x"] + box["width"], float(viewport["width"]))
    assert bottom - top > 100 and right - left > 100, f"too little of canvas#ink is visible: {box}"
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def path(box: FloatRect, n: int, fx0: float = 0.2, fy0: float = 0.3, fx1: float = 0.6,
         fy1: float = 0.5) -> list[tuple[float, float]]:
    """``n`` viewport points along a gentle curve inside the canvas."""
    out = []
    for i in range(n):
        f = i / (n - 1)
        x = box["x"] + box["width"] * (fx0 + (fx1 - fx0) * f)
        y = box["y"] + box["height"] * (fy0 + (fy1 - fy0) * f + 0.05 * math.sin(f * math.pi))
        out.append((round(x, 1), round(y, 1)))
    return out


async def draw_mouse(page: Page, points: Sequence[tuple[float, float]], pause_s: float = 0.008) -> None:
    await page.mouse.move(*points[0])
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(x, y)
        await asyncio.sleep(pause_s)
    await page.mouse.up()


async def draw_pen(cdp: CDPSession, points: Sequence[tuple[float, float]], forces: Sequence[float],
                   tilts: Sequence[tuple[int, int]], pause_s: float = 0.008) -> None:
    """A trusted pen stroke (Chromium's ``Input.dispatchMouseEvent`` with ``pointerType: pen``)."""
    for i, ((x, y), force, (tx, ty)) in enumerate(zip(points, forces, tilts, strict=True)):
        kind = "mousePressed" if i == 0 else "mouseMoved"
        await cdp.send("Input.dispatchMouseEvent", {
            "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 if i == 0 else 0,
            "pointerType": "pen", "force": force, "tiltX": tx, "tiltY": ty,
        })
        await asyncio.sleep(pause_s)
    x, y = points[-1]
    await cdp.send("Input.dispatchMouseEvent", {
        "type": "mouseReleased", "x": x, "y": y, "button": "left", "buttons": 0, "clickCount": 1,
        "pointerType": "pen", "force": 0, "tiltX": 0, "tiltY": 0,
    })


async def draw_touch(cdp: CDPSession, points: Sequence[tuple[float, float]], force: float = 0.7,
                     pause_s: float = 0.008) -> None:
    """A finger stroke (``Input.dispatchTouchEvent``)."""
    for i, (x, y) in enumerate(points):
        kind = "touchStart" if i == 0 else "touchMove"
        await cdp.send("Input.dispatchTouchEvent",
                       {"type": kind, "touchPoints": [{"x": x, "y": y, "force": force, "id": 1}]})
        await asyncio.sleep(pause_s)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


# -- timing in the pages -----------------------------------------------------------------------

# Every page gets a clock in epoch milliseconds with sub-millisecond resolution
# (performance.timeOrigin + performance.now(); both pages run on this one machine's clock).
# The sender records when its pointer went down and up on the canvas; the receiver polls its
# replica and records when it first held the stroke and when it held it ended.
SENDER_CLOCK_JS = """
() => {
  const now = () => performance.timeOrigin + performance.now();
  const ink = document.querySelector('canvas#ink');
  window.__twInput = {down: null, up: null, moves: 0};
  const at = (e) => performance.timeOrigin + e.timeStamp;
  ink.addEventListener('pointerdown', (e) => { window.__twInput.down = at(e); }, {capture: true});
  ink.addEventListener('pointermove', () => { window.__twInput.moves += 1; }, {capture: true});
  window.addEventListener('pointerup', (e) => { window.__twInput.up = at(e); }, {capture: true});
  return now();
}
"""

RECEIVER_CLOCK_JS = """
(known) => {
  const now = () => performance.timeOrigin + performance.now();
  const seen = window.__twSeen = {first: null, ended: null, points: 0, id: null};
  const list = (v) => v == null ? [] : Array.isArray(v) ? v : v instanceof Map ? [...v.values()]
    : typeof v[Symbol.iterator] === 'function' ? [...v] : Object.values(v);
  const poll = () => {
    const r = window.tw && window.tw.session && window.tw.session.replica;
    if (r) {
      for (const pg of list(r.pages)) {
        for (const s of list(pg.strokes ?? pg)) {
          const id = `${s.pid}:${s.stroke}`;
          if (known.includes(id) || (seen.id !== null && id !== seen.id)) continue;
          const t = now();
          if (seen.first === null) { seen.first = t; seen.id = id; }
          seen.points = list(s.points).length;
          if (seen.ended === null && s.ended) seen.ended = t;
        }
      }
    }
    if (seen.ended === null) setTimeout(poll, 1);
  };
  poll();
  return now();
}
"""


@dataclass(frozen=True)
class Latency:
    first_ms: float  # sender's pointerdown -> receiver holds the stroke
    end_ms: float  # sender's pointerup -> receiver holds it ended

    @property
    def worst_ms(self) -> float:
        return max(self.first_ms, self.end_ms)


async def arm_clocks(sender: Page, receiver: Page) -> None:
    known = [s.id for s in await replica(receiver)]
    await sender.evaluate(SENDER_CLOCK_JS)
    await receiver.evaluate(RECEIVER_CLOCK_JS, known)


async def read_latency(sender: Page, receiver: Page, timeout_s: float = 5.0) -> Latency:
    seen = await eventually(lambda: receiver.evaluate("() => window.__twSeen"),
                            lambda v: v is not None and v["ended"] is not None, timeout_s, "the stroke arriving ended")
    sent = await sender.evaluate("() => window.__twInput")
    assert sent["down"] is not None and sent["up"] is not None, f"the sender saw no pointer down/up: {sent}"
    return Latency(seen["first"] - sent["down"], seen["ended"] - sent["up"])


# -- the canvas as pixels ----------------------------------------------------------------------

INK_PIXELS_JS = """
([fx0, fy0, fx1, fy1]) => {
  const c = document.querySelector('canvas#ink');
  const g = c.getContext('2d');
  const x0 = Math.floor(c.width * fx0), y0 = Math.floor(c.height * fy0);
  const w = Math.max(1, Math.ceil(c.width * (fx1 - fx0))), h = Math.max(1, Math.ceil(c.height * (fy1 - fy0)));
  const data = g.getImageData(x0, y0, w, h).data;
  // The background is the most common colour of the region; ink is whatever differs from it.
  const counts = new Map();
  for (let i = 0; i < data.length; i += 4) {
    const k = (data[i] << 24 | data[i + 1] << 16 | data[i + 2] << 8 | data[i + 3]) >>> 0;
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  let bg = 0, best = -1;
  for (const [k, n] of counts) if (n > best) { best = n; bg = k; }
  return {total: data.length / 4, ink: data.length / 4 - best};
}
"""


# Where a stroke is on the canvas, as fractions of the canvas: the surface maps page units to
# canvas pixels through its view (zoom and pan, web_client/js/surface.js ``toCanvas``).
STROKE_REGION_JS = """
(pts) => {
  const c = document.querySelector('canvas#ink');
  const s = window.tw.surface;
  const xy = pts.map(([x, y]) => s.toCanvas(x, y));
  const xs = xy.map(([x]) => x / c.width), ys = xy.map(([, y]) => y / c.height);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}
"""

# The page itself on the canvas, as fractions of the canvas (clipped to it): the board around
# the page is another colour, so pixel counts look at the page alone.
PAGE_REGION_JS = """
() => {
  const c = document.querySelector('canvas#ink');
  const s = window.tw.surface;
  const [x0, y0] = s.toCanvas(0, 0), [x1, y1] = s.toCanvas(10000, 14142);
  const f = (v, n) => Math.min(1, Math.max(0, v / n));
  return [f(x0 + 2, c.width), f(y0 + 2, c.height), f(x1 - 2, c.width), f(y1 - 2, c.height)];
}
"""


async def stroke_region(page: Page, stroke: Stroke, margin: float = 0.01) -> tuple[float, float, float, float]:
    found = await page.evaluate(STROKE_REGION_JS, [[p[0], p[1]] for p in stroke.points])
    x0, y0, x1, y1 = (float(v) for v in found)
    return (max(0.0, x0 - margin), max(0.0, y0 - margin), min(1.0, x1 + margin), min(1.0, y1 + margin))


async def ink_pixels(page: Page, region: tuple[float, float, float, float] | None = None) -> int:
    """How many pixels of ``canvas#ink`` in ``region`` (fractions of its size; default: the part
    showing the page) differ from the region's background."""
    where = list(region) if region is not None else [float(v) for v in await page.evaluate(PAGE_REGION_JS)]
    counted = await page.evaluate(INK_PIXELS_JS, where)
    return int(counted["ink"])


# -- audio -------------------------------------------------------------------------------------


async def audio_stats(page: Page) -> dict[str, Any]:
    stats = await page.evaluate("() => window.tw && window.tw.audio ? window.tw.audio.stats() : null")
    assert stats is not None, "window.tw.audio is missing"
    return dict(stats)
