"""The replay page of a real session recorded through the browsers: after both leave and the room
is evicted, the recording is complete, and its replay plays, seeks, and seeks to a tapped stroke."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from . import kit
from .conftest import ACTION_TIMEOUT_MS, Party, Site

# Empty rooms go (and their recordings are finalized) a second after both leave.
pytestmark = [pytest.mark.timeout(90), pytest.mark.site(room_idle_ttl_s=1.0)]

AUTH_KEY = "tutorwire.auth"  # web_client/js/api.js keeps the signed-in user here (sessionStorage)


async def recording_of(site: Site, session_id: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """The recording of ``session_id`` once it is complete, as ``GET /api/recordings`` lists it."""
    token = site.api_token("bt.researcher", "researcher")

    async def listed() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=site.origin, headers={"authorization": f"Bearer {token}"}) as http:
            answer = await http.get("/api/recordings")
            answer.raise_for_status()
            rows: list[dict[str, Any]] = answer.json()
            return [r for r in rows if r["session_id"] == session_id]

    rows = await kit.eventually(listed, lambda rows: any(r["status"] == "complete" for r in rows), timeout_s,
                                f"a complete recording of session {session_id}")
    (row,) = [r for r in rows if r["status"] == "complete"]
    return row


async def leave_session(tutor: Party, student: Party) -> None:
    await student.page.click("button#leave")
    await student.page.click("dialog#confirm #confirm-ok")  # leaving asks first
    rate = student.page.locator("form#rate")
    await expect(rate).to_be_visible()
    await rate.locator("input[name=rating]").last.check()
    await student.page.click("button#rate-go")
    await tutor.page.click("button#end-session")
    await tutor.page.click("dialog#confirm #confirm-ok")  # ... and so does ending
    await expect(tutor.page.locator("#session canvas#ink")).to_be_hidden()


async def test_replay_plays_seeks_and_seeks_to_a_tapped_stroke(browser: Browser, site: Site,
                                                              parties: dict[str, Party]) -> None:
    tutor, student = parties["tutor"], parties["student"]
    await kit.start_session(tutor, student)
    session_id = await kit.session_id(tutor)
    await kit.eventually(lambda: kit.audio_stats(student.page), lambda s: s["bytesReceived"] > 0, 15,
                         "audio reaching the student")
    for fy in (0.25, 0.6):
        points = kit.path(await kit.canvas_box(tutor.page), 16, fy0=fy, fy1=fy + 0.1)
        await kit.draw_mouse(tutor.page, points)
        await asyncio.sleep(1.0)  # strokes a second apart, with audio between them
    strokes = await kit.eventually(lambda: kit.replica(student.page), lambda r: sum(s.ended for s in r) == 2,
                                   what="both strokes at the student")
    await leave_session(tutor, student)
    row = await recording_of(site, session_id)
    assert row["id"].startswith(f"{session_id}-") and row["duration_ms"] > 2000, row
    assert set(row["participants"]) == {tutor.user, student.user}

    # A researcher (who may see every recording) opens the replay in a browser of their own.
    context = await browser.new_context(base_url=site.origin, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    researcher = parties["researcher"] = Party("researcher", "bt.researcher", context, await context.new_page())
    researcher.watch(researcher.page)
    page = researcher.page
    await page.goto("/")
    auth = {"token": site.api_token(researcher.user, "researcher"), "user": researcher.user, "role": "researcher",
            "expires": int(time.time()) + 3600}
    await page.evaluate("([key, auth]) => sessionStorage.setItem(key, JSON.stringify(auth))", [AUTH_KEY, auth])
    await page.goto(f"/replay?id={row['id']}")
    await expect(page.locator("canvas#replay-ink")).to_be_visible()
    await page.wait_for_function("() => Boolean(window.tw && window.tw.replay && window.tw.replay.audio)")

    # Plays: the replay's clock (the audio element the voices follow) and the voices move.
    voices = await page.evaluate("() => [...document.querySelectorAll('audio[id^=voice-]')].map((a) => a.id)")
    assert sorted(voices) == ["voice-student", "voice-tutor"], f"voices on the replay page: {voices}"
    await page.click("#play")
    moved = await kit.eventually(lambda: current_ms(page), lambda ms: ms > 500, 5, "the replay playing")
    voice = await kit.eventually(lambda: voice_time(page, "voice-tutor"), lambda s: s > 0.2, 5, "the tutor's voice")
    await page.click("#pause")
    paused = await current_ms(page)
    await asyncio.sleep(0.3)
    assert await current_ms(page) == paused, "pause did not stop the clock"
    print(f"replay: clock at {moved:.0f} ms, tutor's voice at {voice:.2f} s, paused at {paused:.0f} ms")

    # Seeks: moving the slider moves the clock (and the voices with it).
    target = int(row["duration_ms"]) - 600  # after both strokes; the tutor, who left last, still speaks
    await page.evaluate("""(ms) => {
      const seek = document.getElementById('seek');
      seek.value = String(ms);
      seek.dispatchEvent(new Event('input', {bubbles: true}));
      seek.dispatchEvent(new Event('change', {bubbles: true}));
    }""", target)
    sought = await kit.eventually(lambda: current_ms(page), lambda ms: abs(ms - target) < 50, 5, "the seek")
    await kit.eventually(lambda: voice_time(page, "voice-tutor"), lambda s: abs(s * 1000 - target) < 200, 5,
                         "the tutor's voice following the seek")

    # Tapping a stroke seeks to where it was written (both strokes are on the canvas by now).
    x, y, hit = await stroke_spot(page)
    await page.mouse.click(x, y)
    tapped = await kit.eventually(lambda: current_ms(page), lambda ms: abs(ms - sought) > 100, 5, "the tap's seek")
    assert abs(tapped - hit["startMs"]) < 50, f"tapped {hit}, the replay went to {tapped} ms"
    assert tapped < sought
    # The stroke tapped is one of the tutor's two, with every point the student saw live.
    assert hit["role"] == "tutor" and hit["label"] == "tutor", hit
    assert hit["points"] in {len(s.points) for s in strokes}, (hit, strokes)

    # Speed: the clock and the voices play at the rate chosen.
    await page.select_option("select#speed", "2")
    await page.click("#play")
    rates = await kit.eventually(
        lambda: page.evaluate("() => [window.tw.replay.audio.playbackRate,"
                              " document.getElementById('voice-tutor').playbackRate]"),
        lambda r: r == [2, 2], 5, "playback at 2x")
    await page.click("#pause")
    assert rates == [2, 2]


async def current_ms(page: Page) -> float:
    return float(await page.evaluate("() => window.tw.replay.currentMs()"))


async def voice_time(page: Page, voice_id: str) -> float:
    return float(await page.evaluate("(id) => document.getElementById(id).currentTime", voice_id))


async def stroke_spot(page: Page) -> tuple[float, float, dict[str, Any]]:
    """A viewport point on ``canvas#replay-ink`` where ink is drawn and ``strokeAt`` finds a stroke."""
    found = await page.evaluate("""
    () => {
      const c = document.getElementById('replay-ink');
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const r = c.getBoundingClientRect();
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 200 && data[i] < 90 && data[i + 1] < 90 && data[i + 2] < 90) {  // the black pen
          const x = ((i / 4) % c.width) * r.width / c.width, y = Math.floor(i / 4 / c.width) * r.height / c.height;
          const hit = window.tw.replay.strokeAt(x, y);
          if (hit) return [r.left + x, r.top + y, hit];
        }
      }
      return null;
    }""")
    assert found is not None, "no ink on the replay canvas where strokeAt finds a stroke"
    return float(found[0]), float(found[1]), dict(found[2])
