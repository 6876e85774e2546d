"""Presence that speaks (issue 22, items 4, 8 and 10): the participant strip shows each person
with their microphone state and a speaking level that moves with the voice; a student on a slow
link (its session WebSocket held 350 ms each way) sees "weak network" in words, the milliseconds
only in the details; the tutor sees the student's microphone turned off."""

from __future__ import annotations

import functools

import pytest
from playwright.async_api import Page, expect

from . import kit
from .conftest import DESKTOP, PHONE, TUTOR_ID, OpenParty, Shot

pytestmark = pytest.mark.timeout(120)


DELAY_S = 0.35  # each way: a weak rural link (a round trip of 700 ms)


async def level_of(page: Page, selector: str) -> float:
    return float(await page.locator(f"{selector} .tw-level").get_attribute("data-level") or 0)


async def test_the_strip_shows_voices_mics_and_a_weak_network_in_words(open_party: OpenParty,
                                                                        screenshot: Shot) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.slow_session_link(student.page, DELAY_S)
    await kit.start_session(tutor, student)
    # both people, each with a level that moves with their (fake) microphone
    strip = tutor.page.locator("#people li")
    await expect(strip).to_have_count(2)
    await expect(tutor.page.locator("#people li[data-me=true] .tw-who")).to_have_text("You")
    await expect(tutor.page.locator("#people li[data-role='1'] .tw-name")).to_have_text("bt.student")
    await kit.eventually(functools.partial(level_of, tutor.page, "#people li[data-role='1']"), lambda v: v > 0.001, 15,
                         "the student's speaking level at the tutor")
    await kit.eventually(functools.partial(level_of, tutor.page, "#people li[data-me=true]"), lambda v: v > 0.001, 15,
                         "the tutor's own level")
    # the student's link is weak: said in words; the numbers only in the details
    conn = student.page.locator("#conn")
    await expect(conn).to_have_attribute("data-quality", "weak", timeout=15_000)
    await expect(conn).to_contain_text("网络\uff1a差")  # a full-width colon
    await expect(student.page.locator("#people li[data-me=true]")).to_have_attribute("data-weak", "true")
    await expect(student.page.locator("#people li[data-me=true] .tw-weak")).to_have_text("网络差")
    assert "毫秒" not in await conn.inner_text()
    await conn.click()
    await expect(student.page.locator("#conn-details")).to_contain_text("毫秒")
    await screenshot(student.page, "weak-network-student-phone")
    await expect(tutor.page.locator("#conn")).to_have_attribute("data-quality", "good")
    # the student turns the microphone off: the tutor's strip says so
    await student.page.click("#mute")
    await expect(tutor.page.locator("#people li[data-role='1']")).to_have_attribute("data-mic", "off", timeout=15_000)
    await expect(tutor.page.locator("#people li[data-role='1'] .tw-mic")).to_have_attribute("title", "microphone off")
    await screenshot(tutor.page, "student-muted-tutor-desktop")
