"""A live class through the real pages in two browsers: a teacher schedules it on /class/new and
starts it; a student on a phone-sized screen types its code, joins, raises a hand and asks; the
teacher sees the hand and the question with the student's name, invites the student to the stage;
the student accepts and writes with a finger, and the teacher sees the ink; the teacher sends the
student back, and the student's tools are gone again; the class ends and is replayed. Also: the
pages in both languages with the server's refusals beside their fields, and the teacher muting and
removing a student for good."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from . import kit
from .conftest import ACTION_TIMEOUT_MS, Party, Shot, Site
from .test_replay import recording_of

pytestmark = pytest.mark.timeout(90)

STUDENT = "bt.classkid"
QUESTION = "x 的系数是多少\N{FULLWIDTH QUESTION MARK}"


async def phone_student(browser: Browser, site: Site, parties: dict[str, Party]) -> Party:
    """A student on a phone-sized touch screen, kept in ``parties`` for the failure artifacts."""
    context = await browser.new_context(base_url=site.origin, permissions=["microphone"],
                                        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = await context.new_page()
    party = Party("student", STUDENT, context, page)
    party.watch(page)
    parties["phone"] = party
    return party


async def schedule(teacher: Party) -> tuple[str, str]:
    """Schedule a class on /class/new; its join link and code as the page shows them."""
    page = teacher.page
    await page.goto("/class/new")
    await page.fill("#title", "一元一次方程")
    await page.select_option("#subject", "math")
    await page.fill("#grade", "7")
    await page.fill("#duration", "30")
    await page.click("#new-go")
    await expect(page.locator("#new-result")).to_be_visible()
    link = await page.input_value("#new-link")
    code = (await page.text_content("#new-code") or "").strip()
    assert link.startswith("http://") and "/class/" in link, link
    assert len(code) == 6, code
    return link, code


async def test_class_with_a_raised_hand_and_a_stage_turn(browser: Browser, site: Site,
                                                         parties: dict[str, Party], screenshot: Shot) -> None:
    teacher = parties["tutor"]
    student = await phone_student(browser, site, parties)
    await kit.sign_in(teacher)
    link, code = await schedule(teacher)
    class_path = link[link.index("/class/"):]

    # The teacher opens the class and starts it.
    await teacher.page.click("#new-open")
    await teacher.page.wait_for_url(f"**{class_path}")
    await expect(teacher.page.locator("#class-code")).to_have_text(code)
    await teacher.page.click("#class-join")
    await kit.in_session(teacher)
    await expect(teacher.page.locator("#presenter-panel")).to_be_visible()
    # the teacher may present from the pen gateway: the pairing button gives a code for the presenter's seat
    await teacher.page.click("#use-pad")
    await expect(teacher.page.locator("#pad-code")).to_have_attribute("data-state", "code")

    # The student signs in, types the code (lower case, with a dash) and joins.
    await kit.sign_in(student)
    await student.page.goto("/class")
    await student.page.fill("#code", f"{code[:3].lower()}-{code[3:].lower()}")
    await student.page.click("#code-go")
    await student.page.wait_for_url(f"**{class_path}")
    await student.page.click("#class-join")
    await kit.in_session(student)
    await expect(student.page.locator("#viewer-panel")).to_be_visible()
    await expect(student.page.locator("canvas#ink")).to_have_attribute("data-ink", "false")  # no tools off stage
    await expect(student.page.locator("#tool-pen")).to_be_hidden()
    await expect(teacher.page.locator("#attendance")).to_have_attribute("data-count", "1")

    # The teacher writes; the student sees it.
    box = await kit.canvas_box(teacher.page)
    await kit.draw_mouse(teacher.page, kit.path(box, 20))
    await kit.eventually(lambda: kit.replica(student.page),
                         lambda r: any(s.role == "presenter" and s.ended for s in r), what="the teacher's stroke")

    # A raised hand and a question, with the student's name, in the teacher's lists.
    await student.page.click("#hand")
    await expect(student.page.locator("#hand")).to_have_attribute("aria-pressed", "true")
    hand = teacher.page.locator(f"#hands li[data-user='{STUDENT}']")
    await expect(hand).to_have_count(1)
    await expect(hand.locator(".who")).to_have_text(STUDENT)
    await student.page.fill("#question", QUESTION)
    await student.page.click("#ask-go")
    await expect(teacher.page.locator("#questions li")).to_have_count(1)
    await expect(teacher.page.locator("#questions li .text")).to_have_text(QUESTION)

    # The stage: invited, accepted (the hand goes down), the student writes with a finger.
    await hand.locator("button.invite").click()
    await expect(student.page.locator("#stage-invite")).to_be_visible()
    await student.page.click("#stage-accept")
    await expect(student.page.locator("#stage-on")).to_be_visible()
    await expect(teacher.page.locator(f"#stage-list li[data-user='{STUDENT}']")).to_have_count(1)
    await expect(teacher.page.locator("#hands li")).to_have_count(0)
    await expect(student.page.locator("canvas#ink")).to_have_attribute("data-ink", "true")
    await expect(student.page.locator("#tool-pen")).to_be_visible()
    before = {s.id for s in await kit.replica(teacher.page)}
    cdp = await student.page.context.new_cdp_session(student.page)
    phone_box = await kit.canvas_box(student.page)
    await kit.draw_touch(cdp, kit.path(phone_box, 20, 0.2, 0.6, 0.7, 0.8))
    got = await kit.eventually(lambda: kit.replica(teacher.page),
                               lambda r: any(s.id not in before and s.role == "viewer" and s.ended for s in r),
                               what="the student's stroke at the teacher")
    (stroke,) = [s for s in got if s.id not in before]
    assert len(stroke.points) >= 5
    mine = [s for s in await kit.replica(student.page) if s.id == stroke.id]
    assert mine and mine[0].points == stroke.points, "teacher and student hold different points"
    assert await kit.ink_pixels(teacher.page, await kit.stroke_region(teacher.page, stroke)) > 0
    await screenshot(teacher.page, "class-teacher-desktop")
    await screenshot(student.page, "class-student-on-stage-phone")
    # on stage the student's microphone is offered to the class (a new WebRTC negotiation)
    await kit.eventually(lambda: kit.audio_stats(student.page), lambda s: s["bytesSent"] > 2000, 15,
                         "the student's voice leaving on stage")

    # Sent back: off the stage, the tools hidden again, and the ink stays on the page.
    await teacher.page.locator(f"#stage-list li[data-user='{STUDENT}'] button.send-back").click()
    await expect(student.page.locator("#stage-on")).to_be_hidden()
    await expect(student.page.locator("canvas#ink")).to_have_attribute("data-ink", "false")
    await expect(student.page.locator("#tool-pen")).to_be_hidden()
    await expect(teacher.page.locator("#stage-list li")).to_have_count(0)
    assert stroke.id in {s.id for s in await kit.replica(teacher.page)}

    # The teacher ends the class; both pages say so.
    teacher.page.on("dialog", lambda d: d.accept())
    await teacher.page.click("#end-class")
    await expect(student.page.locator("#class-ended")).to_be_visible()
    await expect(teacher.page.locator("#class-ended")).to_be_visible()
    for party in (teacher, student):
        errors = [line for line in party.console if line.startswith("pageerror")]
        assert not errors, errors

    # The teacher replays the class: both writers' ink, both voices, and the floor on the timeline.
    row = await recording_of(site, f"class-{class_path.rsplit('/', 1)[-1]}")
    assert set(row["participants"]) == {teacher.user, STUDENT}
    page = teacher.page
    await page.goto(f"/replay?id={row['id']}")
    await page.wait_for_function("() => document.body.dataset.replay === 'ready'")
    roles = await page.evaluate("() => [...new Set(window.tw.replay.strokes.map((s) => s.role))].sort()")
    assert roles == ["presenter", "viewer"], roles
    voices = await page.evaluate("() => Object.keys(window.tw.replay.speakers).sort()")
    assert voices == ["presenter", "viewer"], voices  # the one viewer is "viewer" (several: viewer-{pid})
    floor = page.locator("#floor li")
    await expect(page.locator("#floor li[data-type=question]")).to_have_text(re.compile(re.escape(QUESTION)))
    await expect(page.locator("#floor li[data-type=hand]")).to_have_count(1)
    await expect(page.locator("#floor li[data-type=stage]")).to_have_count(3)  # invited, on, sent back
    last = floor.last
    at = int(await last.get_attribute("data-ms") or 0)
    await last.locator("button").click()
    await kit.eventually(lambda: page.evaluate("() => window.tw.replay.currentMs()"), lambda ms: abs(ms - at) < 50,
                         5, "the floor's seek")


async def test_class_pages_in_chinese_and_english(parties: dict[str, Party]) -> None:
    teacher = parties["tutor"]
    await kit.sign_in(teacher)
    page = teacher.page
    await page.goto("/class/new")
    await page.select_option("select#lang", "zh-CN")
    await expect(page.locator("#new-go")).to_have_text("安排课堂")
    await page.select_option("select#lang", "en")
    await expect(page.locator("#new-go")).to_have_text("Schedule the class")
    # Every field the server refuses is shown beside it, at once.
    await page.fill("#title", "")
    await page.fill("#grade", "13")
    await page.click("#new-go")
    await expect(page.locator("#err-grade")).to_be_visible()
    await expect(page.locator("#err-title")).to_be_visible()
    await expect(page.locator("#grade")).to_have_attribute("aria-invalid", "true")
    await page.fill("#title", "Fractions")
    await page.fill("#grade", "7")
    await page.click("#new-go")
    await expect(page.locator("#new-result")).to_be_visible()


async def test_the_teacher_mutes_and_removes_a_student(browser: Browser, site: Site,
                                                       parties: dict[str, Party]) -> None:
    teacher = parties["tutor"]
    student = await phone_student(browser, site, parties)
    await kit.sign_in(teacher)
    link, _ = await schedule(teacher)
    class_path = link[link.index("/class/"):]
    await teacher.page.goto(class_path)
    await teacher.page.click("#class-join")
    await kit.in_session(teacher)
    await kit.sign_in(student)
    await student.page.goto(class_path)  # by the link
    await student.page.click("#class-join")
    await kit.in_session(student)
    await student.page.click("#hand")
    hand = teacher.page.locator(f"#hands li[data-user='{STUDENT}']")
    await hand.locator("button.mute").click()
    await expect(hand.locator("button.mute")).to_have_text("Unmute")  # the room's word, from its event
    assert await student.page.evaluate("() => window.tw.session.isMuted(window.tw.session.pid)")
    teacher.page.on("dialog", lambda d: d.accept())
    await hand.locator("button.remove").click()
    await expect(student.page.locator("#class-ended")).to_have_text("The teacher has taken you out of this class.")
    await expect(teacher.page.locator("#attendance")).to_have_attribute("data-count", "0")
    await expect(teacher.page.locator("#hands li")).to_have_count(0)
    # the removed student cannot come back
    await student.page.reload()
    await student.page.click("#class-join")
    await expect(student.page.locator("#class-ended")).to_have_text("The teacher has taken you out of this class.")
