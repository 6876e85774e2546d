"""Rights and safety (issue 22, items 2, 4 and 10): clearing asks first and can be undone (a
whole-page clear by the protocol's Restore: everyone's writing comes back); a student's bin clears
only the student's own writing, never the tutor's, until the tutor's switch lets the student clear
the whole page (a Grant; it outlasts a reload, and taking it back is at once); leaving asks first
and is not final (rejoin, also after a reload, while the session is live); ending asks first; the
tutor is told, lastingly, whether the student left or lost the connection, and that they are back;
the tutor clearing mid-stroke over a slow link keeps its link, and the undo brings back the stroke
as the room had it."""

from __future__ import annotations

import asyncio
import functools

import pytest
from playwright.async_api import Page, expect

from . import kit
from .conftest import DESKTOP, PHONE, TUTOR_ID, OpenParty, Party, Shot

pytestmark = pytest.mark.timeout(90)


async def draw_one(party: Party, fy: float) -> kit.Stroke:
    before = {s.id for s in await kit.replica(party.page)}
    box = await kit.canvas_box(party.page)
    if party.role == "student":  # the phone: a finger
        cdp = await party.page.context.new_cdp_session(party.page)
        await kit.draw_touch(cdp, kit.path(box, 14, fy0=fy, fy1=fy + 0.05))
    else:
        await kit.draw_mouse(party.page, kit.path(box, 14, fy0=fy, fy1=fy + 0.05))
    found = await kit.eventually(lambda: kit.replica(party.page),
                                 lambda r: any(s.id not in before and s.ended for s in r), what="the new stroke")
    (stroke,) = [s for s in found if s.id not in before]
    return stroke


async def roles_on(page: Page) -> list[str]:
    return sorted(s.role for s in await kit.replica(page))


async def both_hold(tutor: Party, student: Party, roles: list[str]) -> None:
    for party in (tutor, student):
        await kit.eventually(functools.partial(roles_on, party.page), lambda r: r == roles, 5,
                             f"the {party.role}'s page holding strokes of {roles}")


async def test_clear_asks_undoes_and_a_student_clears_only_their_own(open_party: OpenParty, screenshot: Shot) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.start_session(tutor, student)
    await draw_one(tutor, 0.2)
    await draw_one(student, 0.5)
    await both_hold(tutor, student, ["student", "tutor"])

    # the room gives the student no CLEAR right (tests/sessionserver/test_session_roles.py: its Clear is refused)
    assert await student.page.evaluate("() => window.tw.session.may(4)") is False
    assert await tutor.page.evaluate("() => window.tw.session.may(4)") is True
    # the student's bin says what it does, asks, and "keep it" keeps everything
    await expect(student.page.locator("#clear")).to_have_attribute("aria-label", "清除我在本页写的内容")
    await student.page.click("#clear")
    dialog = student.page.locator("dialog#confirm")
    await expect(dialog).to_be_visible()
    await screenshot(student.page, "confirm-clear-student-phone")
    await student.page.click("#confirm-cancel")
    await expect(dialog).to_be_hidden()
    await asyncio.sleep(0.3)
    await both_hold(tutor, student, ["student", "tutor"])

    # confirmed: only the student's writing goes, on both sides; the tutor's stays
    await student.page.click("#clear")
    await student.page.click("#confirm-ok")
    await both_hold(tutor, student, ["tutor"])
    # ... and "Undo" brings it back
    undo = student.page.locator("#notice-action")
    await expect(undo).to_be_visible()
    await undo.click()
    await both_hold(tutor, student, ["student", "tutor"])

    # the tutor clears the whole page, after asking; undo (Restore) brings everyone's writing back
    await tutor.page.click("#clear")
    await expect(tutor.page.locator("#confirm-title")).to_have_text("Clear this page?")
    await screenshot(tutor.page, "confirm-clear-tutor-desktop")
    await tutor.page.click("#confirm-ok")
    await both_hold(tutor, student, [])
    await tutor.page.click("#notice-action")
    await both_hold(tutor, student, ["student", "tutor"])
    # and again, undone this time by the toolbar's Undo (nothing of the tutor's drawn since)
    await tutor.page.click("#clear")
    await tutor.page.click("#confirm-ok")
    await both_hold(tutor, student, [])
    await tutor.page.click("#undo")
    await both_hold(tutor, student, ["student", "tutor"])


async def test_leave_asks_is_not_final_and_end_asks(open_party: OpenParty, screenshot: Shot) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.start_session(tutor, student)
    await draw_one(tutor, 0.3)

    # leaving asks; "keep it" stays in
    await student.page.click("button#leave")
    await expect(student.page.locator("dialog#confirm")).to_be_visible()
    await screenshot(student.page, "confirm-leave-student-phone")
    await student.page.click("#confirm-cancel")
    await expect(student.page.locator("#session canvas#ink")).to_be_visible()

    # left: the student may go back, and may rate meanwhile; the tutor is told, and it lasts
    await student.page.click("button#leave")
    await student.page.click("#confirm-ok")
    await expect(student.page.locator("#rejoin-panel")).to_be_visible()
    await expect(student.page.locator("form#rate")).to_be_visible()
    await screenshot(student.page, "left-rejoin-student-phone")
    gone = tutor.page.locator("#banners .tw-banner[data-kind=peer-gone]")
    await expect(gone).to_be_visible()
    await expect(gone).to_have_attribute("data-left", "true")  # left on purpose, not a dropped link
    await expect(gone).to_contain_text("left the session")
    await expect(tutor.page.locator("#people li[data-role='1']")).to_have_attribute("data-online", "false")
    await screenshot(tutor.page, "student-gone-tutor-desktop")
    await asyncio.sleep(5)  # the old notice went after 4 s; this one stays until they are back
    await expect(gone).to_be_visible()

    # a reload does not pull the student back in by itself, and still offers to go back
    await student.page.reload()
    await expect(student.page.locator("#rejoin-panel")).to_be_visible()
    await expect(student.page.locator("#session canvas#ink")).to_have_count(0)

    # back in: the tutor's writing is there, and the tutor hears of it
    await student.page.click("button#rejoin")
    await kit.in_session(student)
    await kit.eventually(lambda: roles_on(student.page), lambda r: r == ["tutor"], 5, "the page after rejoining")
    await expect(gone).to_be_hidden()
    await expect(tutor.page.locator("#sv-notice")).to_contain_text("back")

    # ending asks; "keep it" keeps the session
    await tutor.page.click("button#end-session")
    await expect(tutor.page.locator("#confirm-title")).to_have_text("End the session for both of you?")
    await screenshot(tutor.page, "confirm-end-tutor-desktop")
    await tutor.page.click("#confirm-cancel")
    await expect(tutor.page.locator("#session canvas#ink")).to_be_visible()
    await tutor.page.click("button#end-session")
    await tutor.page.click("#confirm-ok")
    await expect(tutor.page.locator("#session canvas#ink")).to_be_hidden()
    # the student gets the rating and the recording's link, no more going back
    await expect(student.page.locator("form#rate")).to_be_visible()
    await expect(student.page.locator("#rejoin-panel")).to_be_hidden()
    await expect(student.page.locator("#replay-link")).to_be_visible()
    await screenshot(student.page, "ended-rate-student-phone")
    # the tutor's end screen links the recording too; it opens once the archiver has finished it
    link = tutor.page.locator("#tutor-replay-link")
    await expect(link).to_be_visible()
    await link.click()
    await expect(tutor.page.locator("body")).to_have_attribute("data-replay", "ready", timeout=20_000)
    await expect(tutor.page.locator("#player")).to_be_visible()
    await screenshot(tutor.page, "replay-after-session-tutor-desktop")


async def test_the_tutor_lets_the_student_clear_the_whole_page(open_party: OpenParty, screenshot: Shot) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.start_session(tutor, student)
    await draw_one(tutor, 0.2)
    await draw_one(student, 0.5)
    await both_hold(tutor, student, ["student", "tutor"])
    switch = tutor.page.locator("#people li[data-role='1'] button#grant-clear")
    await expect(switch).to_have_attribute("aria-pressed", "false")
    await expect(student.page.locator("#grant-clear")).to_have_count(0)  # the student has no such switch
    await expect(student.page.locator("#clear")).to_have_attribute("aria-label", "清除我在本页写的内容")

    await switch.click()
    await expect(switch).to_have_attribute("aria-pressed", "true")
    await expect(switch).to_have_text("Student may clear: yes")
    await screenshot(tutor.page, "grant-clear-tutor-desktop")
    bin_ = student.page.locator("#clear")
    await expect(bin_).to_have_attribute("aria-label", "清空本页")
    await expect(student.page.locator("#sv-notice")).to_contain_text("老师允许你清空整页了")
    await bin_.click()
    await expect(student.page.locator("#confirm-body")).to_contain_text("包括老师写的")
    await screenshot(student.page, "confirm-clear-granted-student-phone")
    await student.page.click("#confirm-ok")
    await both_hold(tutor, student, [])  # the tutor's writing went too, on both sides
    await student.page.click("#notice-action")  # and the student's undo brings all of it back
    await both_hold(tutor, student, ["student", "tutor"])

    # a reload mid-session (the student did not leave: the page goes straight back in) keeps the grant
    await student.page.reload()
    await kit.in_session(student)
    await expect(student.page.locator("#clear")).to_have_attribute("aria-label", "清空本页")
    await expect(switch).to_have_attribute("aria-pressed", "true")

    # taken back: at once the student's bin is for their own writing only, and the room refuses a Clear
    await switch.click()
    await expect(switch).to_have_attribute("aria-pressed", "false")
    await expect(bin_).to_have_attribute("aria-label", "清除我在本页写的内容")
    assert await student.page.evaluate("() => window.tw.session.may(4)") is False
    await screenshot(student.page, "grant-taken-back-student-phone")


async def test_the_tutor_is_told_the_students_connection_dropped(open_party: OpenParty, screenshot: Shot) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.start_session(tutor, student)
    await student.page.close()  # the phone's browser is closed: no "Leave"
    gone = tutor.page.locator("#banners .tw-banner[data-kind=peer-gone]")
    await expect(gone).to_be_visible()
    await expect(gone).to_have_attribute("data-left", "false")
    await expect(gone).to_contain_text("connection dropped")
    await expect(tutor.page.locator("#people li[data-role='1'] .tw-off")).to_have_text("not connected")
    await screenshot(tutor.page, "student-dropped-tutor-desktop")


async def test_the_tutors_eraser_takes_the_students_writing_and_not_the_other_way(open_party: OpenParty) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.start_session(tutor, student)
    await draw_one(tutor, 0.2)
    await draw_one(student, 0.5)
    await both_hold(tutor, student, ["student", "tutor"])
    # the student's eraser over the tutor's writing: refused, in words, and nothing goes
    await student.page.click("#tool-eraser")
    cdp = await student.page.context.new_cdp_session(student.page)
    await kit.draw_touch(cdp, kit.path(await kit.canvas_box(student.page), 14, fy0=0.2, fy1=0.25))
    await expect(student.page.locator("#sv-notice")).to_contain_text("橡皮只能擦掉你自己写的内容")
    await both_hold(tutor, student, ["student", "tutor"])
    # the tutor's (UNDO_OTHERS) over the student's: an Undo naming its author, gone on both sides
    await tutor.page.click("#tool-eraser")
    await kit.draw_mouse(tutor.page, kit.path(await kit.canvas_box(tutor.page), 14, fy0=0.5, fy1=0.55))
    await both_hold(tutor, student, ["tutor"])


STATES_JS = """
() => {
  window.__twStates = [];
  window.tw.session.addEventListener('state', (e) => window.__twStates.push(e.detail));
}
"""


async def test_the_tutor_clears_while_the_student_writes_and_keeps_the_link(open_party: OpenParty) -> None:
    # The tutor's link is 80 ms each way: the student's points the room placed before the tutor's
    # Clear reach the tutor after its page cleared (Replica.rebase puts them into the cleared layer)
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.slow_session_link(tutor.page, 0.08)
    await kit.start_session(tutor, student)
    await tutor.page.evaluate(STATES_JS)
    box = await kit.canvas_box(student.page)
    cdp = await student.page.context.new_cdp_session(student.page)
    writing = asyncio.create_task(kit.draw_touch(cdp, kit.path(box, 160, fy0=0.4, fy1=0.5), pause_s=0.01))
    await kit.eventually(lambda: kit.replica(tutor.page), lambda r: sum(len(s.points) for s in r) >= 20, 10,
                         "the student's stroke reaching the tutor")
    await tutor.page.click("#clear")  # mid-stroke
    await tutor.page.click("#confirm-ok")
    await writing
    await both_hold(tutor, student, [])
    await tutor.page.click("#notice-action")  # the undo of the clear: the stroke as the room had it
    await both_hold(tutor, student, ["student"])
    (theirs,), (ours,) = await kit.replica(student.page), await kit.replica(tutor.page)
    assert ours.points == theirs.points and len(ours.points) >= 20
    assert await tutor.page.evaluate("() => window.__twStates") == [], "the tutor's link stayed up"
