"""The harness itself: Chromium starts inside the namespace, reaches the server on loopback, and
gets the pages."""

from __future__ import annotations

import pytest

from .conftest import Party, Site

pytestmark = pytest.mark.timeout(30)


async def test_chromium_reaches_the_server(site: Site, parties: dict[str, Party]) -> None:
    response = await parties["tutor"].page.goto("/healthz")
    assert response is not None and response.ok
    health = await response.json()
    assert health["status"] == "ok" and health["rooms"] == 0


async def test_the_sign_in_page_loads(site: Site, parties: dict[str, Party]) -> None:
    party = parties["student"]
    response = await party.page.goto("/")
    assert response is not None and response.ok, f"GET / answered {response and response.status}"
    assert await party.page.locator("form#signin").count() == 1
    errors = [line for line in party.console if line.startswith("pageerror")]
    assert not errors, errors
