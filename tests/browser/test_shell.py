"""The pages around the session (issue 22, items 7, 8, 9 and 10): knowledge points picked by
name from the catalogue in the user's language, every form error at once beside its field; the
first-run guide (skippable, shown again from Help); no ids on screen; the shell cached by the
service worker, so a reload with the network cut shows the page; a screenshot of each page at
phone and desktop size in the test artefacts."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from . import kit
from .conftest import DESKTOP, PHONE, TUTOR_ID, Device, OpenParty, Shot

pytestmark = pytest.mark.timeout(90)

RAW_ID = re.compile(r"\b(math|physics|chemistry|biology|chinese|english)\.[a-z0-9.-]+")


async def visible_text(page: Page) -> str:
    return str(await page.evaluate("() => document.body.innerText"))


async def test_a_reload_with_the_network_cut_shows_the_cached_shell(open_party: OpenParty,
                                                                   screenshot: Shot) -> None:
    student = await open_party("student", "bt.student", PHONE)
    await kit.sign_in(student)
    page = student.page
    # the first visit installs the worker, which caches the shell and takes the page over
    # (its install fetches the whole shell: on a loaded CI machine that took more than 15 s once)
    await page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.controller !== null",
                                 timeout=60_000)
    await page.wait_for_function("async () => Boolean(await caches.match('/student'))"
                                 " && Boolean(await caches.match('/static/js/sessionview.js'))")
    await student.context.set_offline(True)
    try:
        await page.reload()
        await expect(page.locator("h1")).to_have_text("找老师答疑")
        await expect(page.locator("form#ask")).to_be_visible()
        await expect(page.locator("#push-conn")).not_to_be_empty()  # and it says the connection is down
        await screenshot(page, "offline-student-phone")
    finally:
        await student.context.set_offline(False)
    await expect(page.locator("#push-conn")).to_be_empty(timeout=20_000)  # back online by itself


@pytest.mark.parametrize(("device", "role"), [(PHONE, "student"), (DESKTOP, "tutor")], ids=["phone", "desktop"])
async def test_the_first_run_guide_is_short_skippable_and_comes_back(open_party: OpenParty, screenshot: Shot,
                                                                     device: Device, role: str) -> None:
    party = await open_party(role, TUTOR_ID if role == "tutor" else "bt.student", device)
    await kit.sign_in(party, guide=True)
    page = party.page
    guide = page.locator("dialog#guide")
    await expect(guide).to_be_visible()
    first = "第 1 步\uff0c共 4 步" if device.locale == "zh-CN" else "Step 1 of 4"  # a full-width comma
    await expect(page.locator("#guide-step")).to_have_text(first)
    await screenshot(page, f"guide-{role}-{device.name}")
    for _ in range(3):
        await page.click("#guide-next")
    await expect(page.locator("#guide-skip")).to_be_hidden()
    await page.click("#guide-next")  # "Got it"
    await expect(guide).to_be_hidden()
    await page.reload()
    await expect(page.locator("h1")).to_be_visible()
    await expect(guide).to_be_hidden()  # once is enough
    await page.click("#help-open")
    await expect(guide).to_be_visible()
    await page.click("#guide-skip")
    await expect(guide).to_be_hidden()


async def test_knowledge_points_by_name_and_every_form_error_at_once(open_party: OpenParty,
                                                                    screenshot: Shot) -> None:
    student = await open_party("student", "bt.student", PHONE)
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    await kit.sign_in(student)
    page = student.page
    await page.select_option("select#subject", "math")
    # the words a student types, in Chinese, find the point by its name
    await page.fill("#kp-search", "一元一次方程")
    option = page.locator("#kp-results button.kp-option", has_text="一元一次方程及其解法")
    await expect(option).to_be_visible()
    await option.click()
    await expect(page.locator("#kp-chosen li[data-kp='math.algebra.linear-equations']")).to_contain_text("一元一次方程")
    # or from the chapters of the grade
    await page.fill("input#grade", "8")
    await page.locator("#grade").dispatch_event("change")
    await expect(page.locator("#kp-tree details.kp-volume").first).to_be_visible()
    # two mistakes: no grade, and "only this tutor" without a tutor; both are shown at once
    await page.fill("input#grade", "")
    await page.set_checked("input#direct", True)
    await page.click("button#ask-go")
    await expect(page.locator("#err-grade")).to_be_visible()
    await expect(page.locator("#err-favourite")).to_be_visible()
    await expect(page.locator("#grade")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#favourite")).to_have_attribute("aria-invalid", "true")
    await screenshot(page, "ask-errors-student-phone")
    text = await visible_text(page)
    assert not RAW_ID.search(text), f"a catalogue id is on screen: {RAW_ID.search(text)}"
    # fixed: the request goes, and the waiting status is in view (not scrolled away)
    await page.fill("input#grade", "8")
    await page.set_checked("input#direct", False)
    await page.click("button#ask-go")
    await expect(page.locator("#status")).to_have_attribute("data-state", "waiting")
    await expect(page.locator("#cancel")).to_be_in_viewport()
    await expect(page.locator("#status")).to_be_in_viewport()
    await screenshot(page, "waiting-student-phone")
    # the tutor reads the points by name, in English
    await kit.sign_in(tutor)
    await kit.go_available(tutor)
    await expect(tutor.page.locator("#offer-kps li")).to_have_text(
        ["Linear equations in one unknown and how to solve them"])
    assert not RAW_ID.search(await visible_text(tutor.page))
    await kit.accept_offer(tutor)
    await kit.in_session(tutor)
    # the request stays in view in the session, by name
    await expect(tutor.page.locator("#session-request")).to_contain_text("Linear equations in one unknown")
    assert not RAW_ID.search(await visible_text(tutor.page))


@pytest.mark.parametrize("device", [PHONE, DESKTOP], ids=lambda d: d.name)
async def test_each_page_at_phone_and_desktop_size(open_party: OpenParty, screenshot: Shot, device: Device) -> None:
    student = await open_party("student", "bt.student", device)
    tutor = await open_party("tutor", TUTOR_ID, device)
    await student.page.goto("/")
    await expect(student.page.locator("form#signin")).to_be_visible()
    await screenshot(student.page, f"page-signin-{device.name}")
    await kit.sign_in(student)
    await screenshot(student.page, f"page-student-{device.name}")
    await kit.sign_in(tutor)
    await screenshot(tutor.page, f"page-tutor-{device.name}")
    for path, name in (("/replay", "replay"), ("/class", "classes"), ("/class/new", "class-new")):
        await tutor.page.goto(path)
        await expect(tutor.page.locator("h1")).to_be_visible()
        await tutor.page.wait_for_load_state("networkidle")
        await screenshot(tutor.page, f"page-{name}-{device.name}")
    # the words on the pages are the user's language's, and nothing scrolls sideways
    for page in (student.page, tutor.page):
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= device.width + 1, f"{page.url} is {width} px wide on a {device.width} px screen"
    if device.locale == "zh-CN":
        assert "找老师答疑" in await visible_text(student.page)


async def test_knowledge_points_by_their_english_names(open_party: OpenParty) -> None:
    student = await open_party("student", "bt.student", DESKTOP)
    await kit.sign_in(student)
    page = student.page
    await page.fill("input#grade", "7")
    await page.fill("#kp-search", "linear equations")
    option = page.locator("#kp-results button.kp-option",
                          has_text="Linear equations in one unknown and how to solve them")
    await expect(option).to_be_visible()
    await page.press("#kp-search", "Enter")  # Enter adds the first match; it does not send the form
    await expect(page.locator("#kp-chosen li[data-kp]")).to_have_count(1)
    await expect(page.locator("#status")).to_have_attribute("data-state", "")
    assert not RAW_ID.search(await visible_text(page))
