"""Fixtures for the browser tests: the real server in this event loop, Debian's Chromium through
Playwright, and one browser context per participant (tutor, student) with the microphone granted.

Only inside the private network namespace that ``tests/test_browser.py`` makes
(``TUTORWIRE_IN_NETNS=1``) is anything here collected; the ordinary ``pytest`` run reaches these
tests through that runner alone. When a test fails, each page's screenshot and console log are
saved and their folder is printed at the end of the run.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from matcher.records import Pool, TutorRecord
from matcher.settings import MatcherSettings
from sessionserver.auth import TokenSigner

from ..conftest import SECRET, RunningServer, StartServer

IN_NETNS = os.environ.get("TUTORWIRE_IN_NETNS") == "1"
# Outside the namespace the test modules are not even collected (tests/test_browser.py runs them).
collect_ignore_glob = [] if IN_NETNS else ["test_*.py"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
ACTION_TIMEOUT_MS = 10_000  # any single Playwright wait; every test also has a pytest timeout
expect.set_options(timeout=ACTION_TIMEOUT_MS)
TUTOR_ID = "bt.tutor"  # the tutor the tests sign in as; the only one ever available
SUBJECT, GRADE = "math", 8

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_saved: list[tuple[str, Path]] = []
_screens: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _screens:
        terminalreporter.section("browser screenshots (each page at phone and desktop size)")
        for path in _screens:
            terminalreporter.write_line(str(path))
    if _saved:
        terminalreporter.section("browser artifacts (screenshots, console logs)")
        for nodeid, folder in _saved:
            terminalreporter.write_line(f"{nodeid}: {folder}")
            for path in sorted(folder.iterdir()):
                terminalreporter.write_line(f"    {path.name}")


def failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


@dataclass
class Party:
    """One participant: their browser context and page, and what the page said on its console."""

    role: str
    user: str
    context: BrowserContext
    page: Page
    console: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        page.on("crash", lambda _: self.console.append("page crashed"))


@dataclass
class Site:
    """The running server as the browser tests see it."""

    running: RunningServer

    @property
    def origin(self) -> str:
        return f"http://{self.running.base}"

    def url(self, path: str) -> str:
        return self.origin + path

    def api_token(self, user: str, role: str, ttl_s: int = 3600) -> str:
        """An API token as the programme's sign-in would mint it (any role, researchers included)."""
        return TokenSigner(SECRET).mint_api(user, role, int(time.time()) + ttl_s)


StartSite = Callable[..., Awaitable[Site]]


@pytest.fixture
async def start_site(start_server: StartServer) -> AsyncIterator[StartSite]:
    """Start the server (dev mode, fast matcher batches, recordings in a temp folder) with the
    test tutor on the roster; keyword arguments override settings."""

    async def start(**overrides: Any) -> Site:
        overrides.setdefault("dev_mode", True)
        overrides.setdefault("matcher", MatcherSettings(batch_interval_s=0.2))
        overrides.setdefault("ping_interval_s", 1.0)
        running = await start_server(**overrides)
        matcher = running.app.state.matching.matcher
        await matcher.upsert_tutor(TutorRecord(TUTOR_ID, name="Browser Tutor", teaches=(Pool(SUBJECT, "junior"),),
                                               strengths=("math.algebra",)))
        return Site(running)

    yield start


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "site(**settings): settings overrides for the test's server")


@pytest.fixture
async def site(request: pytest.FixtureRequest, start_site: StartSite) -> Site:
    """The test's server; ``@pytest.mark.site(**settings)`` overrides its settings."""
    marker = request.node.get_closest_marker("site")
    return await start_site(**(marker.kwargs if marker else {}))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def artifacts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("TUTORWIRE_BROWSER_ARTIFACTS")
    return Path(configured) if configured else tmp_path_factory.getbasetemp() / "browser-artifacts"


@pytest.fixture
async def parties(request: pytest.FixtureRequest, browser: Browser, site: Site,
                  artifacts_root: Path) -> AsyncIterator[dict[str, Party]]:
    """A tutor and a student, each in their own browser context (own storage, own microphone),
    on a blank page of the site's origin. If the test fails, every page of every party (a test may
    add parties to the dict) leaves a screenshot and its console log."""
    made: dict[str, Party] = {}
    for role, user, touch in (("tutor", TUTOR_ID, False), ("student", "bt.student", True)):
        context = await browser.new_context(
            base_url=site.origin, permissions=["microphone"], viewport={"width": 1100, "height": 760},
            has_touch=touch,
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = await context.new_page()
        party = Party(role, user, context, page)
        party.watch(page)
        context.on("page", party.watch)
        made[role] = party
    try:
        yield made
    finally:
        if failed(request):
            await save_artifacts(request.node.nodeid, artifacts_root, made.values())
        for party in made.values():
            await party.context.close()


async def save_artifacts(nodeid: str, root: Path, parties: Iterable[Party]) -> None:
    folder = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1])
    folder.mkdir(parents=True, exist_ok=True)
    for party in parties:
        for i, page in enumerate(party.context.pages):
            suffix = "" if i == 0 else f"-{i}"
            try:
                await page.screenshot(path=str(folder / f"{party.role}{suffix}.png"), full_page=True, timeout=5_000)
            except Exception as exc:  # a crashed or closed page: note it and keep the rest
                party.console.append(f"(screenshot failed: {exc})")
            try:
                (folder / f"{party.role}{suffix}.url.txt").write_text(page.url + "\n")
            except Exception:
                pass
        (folder / f"{party.role}.console.txt").write_text("\n".join(party.console) + "\n")
    _saved.append((nodeid, folder))


# -- devices: the users' screens --------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A screen a real user has: a cheap phone in zh-CN, a school desktop in English."""

    name: str
    width: int
    height: int
    touch: bool
    locale: str
    scale: float = 1.0


PHONE = Device("phone", 390, 844, True, "zh-CN", 2.0)
PHONE_LANDSCAPE = Device("phone-landscape", 844, 390, True, "zh-CN", 2.0)
DESKTOP = Device("desktop", 1366, 768, False, "en")

OpenParty = Callable[..., Awaitable[Party]]
Shot = Callable[[Page, str], Awaitable[Path]]


@pytest.fixture
async def open_party(request: pytest.FixtureRequest, browser: Browser, site: Site,
                     artifacts_root: Path) -> AsyncIterator[OpenParty]:
    """``await open_party(role, user, device, permissions=[...], origin=...)``: a participant in
    its own context on ``device`` (viewport, touch, language), on the site or on ``origin`` (a
    proxy in front of it); closed at the end, with screenshots and console logs kept if the test
    failed."""
    made: list[Party] = []

    async def open_one(role: str, user: str, device: Device = DESKTOP, permissions: Iterable[str] = ("microphone",),
                       origin: str | None = None, **context_args: Any) -> Party:
        context = await browser.new_context(
            base_url=origin or site.origin, permissions=list(permissions),
            viewport={"width": device.width, "height": device.height},
            has_touch=device.touch, is_mobile=device.touch, locale=device.locale, device_scale_factor=device.scale,
            **context_args,
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = await context.new_page()
        party = Party(role if not made or all(p.role != role for p in made) else f"{role}-{len(made)}", user,
                      context, page)
        party.watch(page)
        context.on("page", party.watch)
        made.append(party)
        return party

    try:
        yield open_one
    finally:
        if failed(request):
            await save_artifacts(request.node.nodeid, artifacts_root, made)
        for party in made:
            await party.context.close()


@pytest.fixture
def screenshot(artifacts_root: Path) -> Shot:
    """``await screenshot(page, name)``: keep what the page shows as ``screens/<name>.png`` in the
    test artefacts (every run, pass or fail), so that a person can look at each page."""

    async def take(page: Page, name: str) -> Path:
        folder = artifacts_root / "screens"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        await page.screenshot(path=str(path), timeout=5_000)
        _screens.append(path)
        return path

    return take
