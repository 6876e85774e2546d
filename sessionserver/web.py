"""The browser client's routes: the pages, their static files, and the WebRTC configuration.

``web_routes(settings)`` serves ``web_client/`` at ``/static`` and the pages at ``/``,
``/student``, ``/tutor``, ``/replay``, and the live classes' ``/class`` (join by code, the list),
``/class/new`` and ``/class/{id}``. The pages are plain ES modules with no build step; they
load nothing from outside this server, and their Content-Security-Policy holds them to that.
``/sw.js`` is the pages' service worker (``web_client/sw.js`` with the list of the shell's files
and a digest of their contents filled in at start): the second visit starts without the network.
``GET /api/rtc-config`` tells a signed-in browser the deployment's STUN/TURN servers
(``TUTORWIRE_RTC_ICE_SERVERS``) as an ``RTCConfiguration.iceServers`` list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from wire import Role

from .auth import ApiAuthError, TokenError, TokenSigner
from .httpapi import bearer, error
from .pairing import pairing_routes
from .settings import Settings, rtc_config

log = logging.getLogger("tutorwire.web")

PAGES = {"/": "index.html", "/student": "student.html", "/tutor": "tutor.html", "/replay": "replay.html",
         "/class": "classes.html", "/class/new": "class-new.html"}
CLASS_PAGE = "/class/{class_id}"  # one live class (class.html); after /class/new, which it would match

# Same origin only (a WebSocket to this host counts as 'self'); 'wasm-unsafe-eval' and blob:
# workers leave room for an audio codec compiled to WebAssembly; inline styles for the
# canvas code that sizes elements. No page may reach another host.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
PAGE_HEADERS = {
    "cache-control": "no-cache",  # pages are tiny; a deploy must reach every browser at once
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def default_web_root() -> Path:
    """``web_client/`` beside the package in a checkout, else in the working directory (an
    installed package, as in the container, which runs from the folder holding it)."""
    beside = Path(__file__).resolve().parent.parent / "web_client"
    return beside if beside.is_dir() else Path.cwd() / "web_client"


class _StaticFiles(StaticFiles):
    """``/static`` with the pages' headers on every file, so that ``/static/index.html`` is held
    to the same policy as ``/`` (and no file is sniffed into another type or framed)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(PAGE_HEADERS)
        return response


def _page(path: Path) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    return serve


SHELL_SUFFIXES = (".js", ".mjs", ".css")  # the pages themselves are PAGES
SERVICE_WORKER = "sw.js"


def shell_files(folder: Path) -> list[str]:
    """The URLs of the pages' shell: every page, and every script, module and style under ``/static``."""
    urls = list(PAGES)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in SHELL_SUFFIXES and path.name != SERVICE_WORKER:
            urls.append("/static/" + path.relative_to(folder).as_posix())
    return urls


def service_worker(folder: Path) -> bytes:
    """``web_client/sw.js`` with its SHELL list and VERSION (a digest of the shell's contents) filled in."""
    urls = shell_files(folder)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.suffix in SHELL_SUFFIXES or path.suffix == ".html"):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    text = (folder / SERVICE_WORKER).read_text(encoding="utf-8")
    text = text.replace("'__VERSION__'", json.dumps(digest.hexdigest()[:16])).replace("__SHELL__", json.dumps(urls))
    return text.encode()


def _service_worker_route(folder: Path) -> Route:
    body = service_worker(folder)  # built once at start: a deploy restarts the server
    headers = {**PAGE_HEADERS, "service-worker-allowed": "/"}

    async def serve(request: Request) -> Response:
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)

    return Route("/sw.js", serve, methods=["GET"])


def ice_servers(settings: Settings) -> list[dict[str, Any]]:
    """The configured STUN/TURN servers in the browser's ``RTCIceServer`` shape."""
    out: list[dict[str, Any]] = []
    for server in rtc_config(settings).ice_servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username is not None:
            entry["username"] = server.username
        if server.credential is not None:
            entry["credential"] = server.credential
        out.append(entry)
    return out


def _signed_in(signer: TokenSigner, token: str, now: float) -> bool:
    """True for a valid API token, or a valid join token of any session and role (the live view
    holds only its join token). TURN credentials are not for anyone who asks."""
    try:
        signer.check_api(token, now)
        return True
    except ApiAuthError:
        pass
    try:
        # Read the session and role unverified only to know what to check; ``check`` verifies.
        claims = jwt.decode(token, options={"verify_signature": False})
        signer.check(token, str(claims["sid"]), Role.from_label(str(claims["role"])), now)
        return True
    except (jwt.PyJWTError, KeyError, ValueError, TokenError):
        return False


def web_routes(
    settings: Settings, root: Path | None = None, signer: TokenSigner | None = None,
) -> list[BaseRoute]:
    """The pages, ``/static``, and ``/api/rtc-config``. ``root`` is the ``web_client`` folder
    (default: ``default_web_root()``); without it only ``/api/rtc-config`` is served. ``signer``
    checks tokens; by default the app's own (``app.state.signer``), because an unset secret is
    random per signer."""
    folder = (root or default_web_root()).resolve()
    servers = ice_servers(settings)  # checked once at start: a bad setting stops the start

    async def rtc(request: Request) -> Response:
        checker: TokenSigner = signer or request.app.state.signer
        if not _signed_in(checker, bearer(request), time.time()):
            return error(401, "sign in first: send an API token or a join token as the bearer")
        return JSONResponse({"iceServers": servers}, headers={"cache-control": "no-store"})

    routes: list[BaseRoute] = [Route("/api/rtc-config", rtc, methods=["GET"])]
    routes += pairing_routes(settings, signer)  # a writing pad pairs with the tutor's seat (pairing.py)
    if not folder.is_dir():
        # An API-only install (no web_client/ copied) still serves the API; say why pages 404.
        log.warning("no browser client at %s: the pages and /static are not served", folder)
        return routes
    routes += [Route(path, _page(folder / name)) for path, name in PAGES.items()]
    routes.append(Route(CLASS_PAGE, _page(folder / "class.html")))
    if (folder / SERVICE_WORKER).is_file():
        routes.append(_service_worker_route(folder))
    routes.append(Mount("/static", app=_StaticFiles(directory=folder), name="static"))
    return routes
