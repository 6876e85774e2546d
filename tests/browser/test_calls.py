"""Calls that ring (issue 22, items 3 and 10): an offer rings (WebAudio tones), flashes the tab
title and shows a browser notification, the permission asked when the tutor makes themselves
available; answering stops it all. A missed offer says plainly what happened and when offers
come again, and they do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Page, expect

from matcher.settings import MatcherSettings

from . import kit
from .conftest import DESKTOP, PHONE, TUTOR_ID, OpenParty, Shot

pytestmark = pytest.mark.timeout(90)

TITLE_FLASH = "🔔"


async def titles_for(page: Page, seconds: float) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(await page.title())
        await asyncio.sleep(0.1)  # sampling what a person would see in the tab, not synchronisation
    return seen


def notifications(page: Page) -> Callable[[], Awaitable[list[dict[str, str]]]]:
    async def read() -> list[dict[str, str]]:
        return list(await page.evaluate("() => window.tw.ring.notifications"))
    return read


async def test_an_offer_rings_flashes_the_title_and_notifies(open_party: OpenParty, screenshot: Shot) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP, permissions=["microphone", "notifications"])
    student = await open_party("student", "bt.student", PHONE)
    await kit.sign_in(tutor)
    await kit.go_available(tutor)  # the click that asks for the permission (granted here) and unlocks the sound
    await expect(tutor.page.locator("#ring-state")).to_be_visible()
    base = await tutor.page.title()
    await kit.sign_in(student)
    await kit.ask(student)
    await expect(tutor.page.locator("#offer")).to_be_visible()
    titles = await titles_for(tutor.page, 2.5)
    assert base in titles and any(s.startswith(TITLE_FLASH) for s in titles), titles
    ring = await tutor.page.evaluate("() => ({rings: window.tw.ring.rings, notifications: window.tw.ring.notifications,"
                                     " flashing: window.tw.ring.flashing})")
    assert ring["rings"] >= 1, ring
    assert ring["flashing"] is True
    (note,) = ring["notifications"]
    assert note["title"] == "A student needs help" and "Mathematics" in note["body"] and "grade 8" in note["body"], note
    await screenshot(tutor.page, "offer-tutor-desktop")
    await kit.accept_offer(tutor)
    await kit.in_session(tutor)
    assert await tutor.page.evaluate("() => window.tw.ring.flashing") is False
    assert not (await tutor.page.title()).startswith(TITLE_FLASH)


@pytest.mark.site(matcher=MatcherSettings(batch_interval_s=0.2, offer_lease_s=4.0, ignore_cooldown_s=5.0))
async def test_a_missed_offer_says_what_happened_and_when_the_next_comes(open_party: OpenParty,
                                                                           screenshot: Shot) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP, permissions=["microphone", "notifications"])
    student = await open_party("student", "bt.student", PHONE)
    await kit.sign_in(tutor)
    await kit.go_available(tutor)
    await kit.sign_in(student)
    await kit.ask(student)
    await kit.eventually(notifications(tutor.page), lambda n: len(n) == 1, 10, "the offer's notification")
    # nobody answers: the lease runs out
    missed = tutor.page.locator("#missed")
    await expect(missed).to_be_visible(timeout=15_000)
    await expect(missed).to_contain_text("You missed a request")
    await expect(missed).to_contain_text("New requests come again in")
    await expect(tutor.page.locator("#offer")).to_be_hidden()
    assert await tutor.page.evaluate("() => window.tw.ring.flashing") is False
    await screenshot(tutor.page, "offer-missed-tutor-desktop")
    # after the rest, the page says so, and a new request rings again
    await expect(missed).to_contain_text("You can get requests again", timeout=10_000)
    await student.page.click("button#cancel")  # the matcher does not offer a lapsed request to the same tutor again
    await expect(student.page.locator("#status")).to_have_attribute("data-state", "cancelled")
    await kit.ask(student)
    await kit.eventually(notifications(tutor.page), lambda n: len(n) == 2, 10, "the new request's notification")
