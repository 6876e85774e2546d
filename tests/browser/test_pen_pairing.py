"""The tutor's page pairs a writing pad: "Use my writing pad" shows a code, the pen gateway
claims it for the tutor's seat and joins, and the pad's strokes appear on the student's page."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from pen_gateway.cli import pair
from pen_gateway.gateway import Gateway
from pen_gateway.replay import ReplayAdapter
from pen_gateway.spool import Spool
from tests.pen_gateway.evemu_data import DATA

from . import kit
from .conftest import Party, Site

pytestmark = pytest.mark.timeout(60)


async def test_use_my_writing_pad(parties: dict[str, Party], site: Site, tmp_path: Path) -> None:
    tutor, student = parties["tutor"], parties["student"]
    await kit.start_session(tutor, student)
    await tutor.page.click("#use-pad")
    code_el = tutor.page.locator("#pad-code .pad-code")
    await expect(code_el).to_have_text(re.compile(r"^[2-9A-Z]{3}-[2-9A-Z]{3}$"))
    await expect(tutor.page.locator("#pad-code code")).to_contain_text("tutorwire pen-gateway --server")
    code = await code_el.inner_text()
    grant = await asyncio.to_thread(pair, site.origin, code)
    assert grant["session"] == await kit.session_id(tutor)
    adapter = ReplayAdapter(DATA / "UC-LOGIC Tablet WP5540U Pen.events", speed=8)
    gw = Gateway(f"ws://{site.running.base}{grant['ws_path']}", grant["token"], adapter=adapter, audio=None,
                 spool=Spool(tmp_path / "spool"))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        strokes = await kit.eventually(lambda: kit.replica(student.page),
                                       lambda s: any(x.role == "tutor" and x.ended and len(x.points) > 100 for x in s))
        assert strokes
        # the pad is a second device of the tutor's seat: the tutor's page stays connected and
        # gets the pad's strokes as the student does (before, the pad's join replaced it)
        mine = await kit.eventually(lambda: kit.replica(tutor.page),
                                    lambda s: any(x.role == "tutor" and x.ended and len(x.points) > 100 for x in s))
        assert mine
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
