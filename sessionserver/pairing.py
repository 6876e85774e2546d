"""Pairing a writing pad (the pen gateway) with the tutor's seat in a live session (or the
presenter's in a live class).

The tutor's session page asks for a code with its own join token (``POST /api/pairing``,
``{"session": id}``, ``Authorization: Bearer <join token>``); the page shows the code; the pen
gateway on the tutor's PC claims it (``POST /api/pairing/claim``, ``{"code": "K7Q-M2X"}``) and
gets a join token for the same seat (same session, user and role, same expiry) as a second
device of it (claim ``dev`` = ``pen``): the page stays connected, both write. A code is short
(6 characters of an alphabet without look-alikes, shown as two groups of 3), lives
``pairing_code_ttl_s`` and works once; a wrong, used or expired code is 404, more than
``pairing_claims_per_minute`` claims a minute are 429 (a code cannot be guessed in its lifetime:
31^6 codes), more than ``pairing_max_codes`` outstanding is 503.

``PairingBook`` is the sans-I/O core (``now`` passed in); ``pairing_routes`` the Starlette shell.
The book lives in the server's memory: a code is claimed on the server that issued it (one
process, or a proxy that keeps a session's requests on its node).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from wire import Role

from .auth import PEN_DEVICE, TokenError, TokenSigner
from .classes.model import ROOM_PREFIX as CLASS_ROOM_PREFIX
from .httpapi import bearer, error
from .settings import Settings

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L
CODE_CHARS = 6
MAX_BODY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Pairing:
    session_id: str
    user_id: str
    role: Role
    token_expires_at: int
    expires_at: float


class PairingError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def normalise(code: str) -> str:
    """A code as typed: any case, spaces and dashes ignored."""
    return "".join(ch for ch in code.upper() if ch not in " -")


class PairingBook:
    def __init__(self, ttl_s: float, max_codes: int, claims_per_minute: int) -> None:
        if ttl_s <= 0 or max_codes <= 0 or claims_per_minute <= 0:
            raise ValueError("pairing limits must be positive")
        self.ttl_s = ttl_s
        self.max_codes = max_codes
        self.claims_per_minute = claims_per_minute
        self._codes: OrderedDict[str, Pairing] = OrderedDict()
        self._claims: list[float] = []

    def _expire(self, now: float) -> None:
        while self._codes:
            code, p = next(iter(self._codes.items()))
            if p.expires_at > now:
                break
            del self._codes[code]

    def issue(self, session_id: str, user_id: str, role: Role, token_expires_at: int, now: float) -> str:
        self._expire(now)
        # a new code for the same seat replaces the one it had (the button pressed again)
        seat = (session_id, user_id, role)
        for code in [c for c, p in self._codes.items() if (p.session_id, p.user_id, p.role) == seat]:
            del self._codes[code]
        if len(self._codes) >= self.max_codes:
            raise PairingError(503, f"{self.max_codes} pairing codes are outstanding; try again in a minute")
        while True:
            code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
            if code not in self._codes:
                break
        self._codes[code] = Pairing(session_id, user_id, role, token_expires_at, now + self.ttl_s)
        return code

    def claim(self, code: str, now: float) -> Pairing:
        """The pairing a code names, once; ``PairingError`` 404 (wrong, used, expired) or 429."""
        self._claims = [t for t in self._claims if t > now - 60.0]
        if len(self._claims) >= self.claims_per_minute:
            raise PairingError(429, f"more than {self.claims_per_minute} pairing attempts a minute; wait and try again")
        self._claims.append(now)
        self._expire(now)
        p = self._codes.pop(normalise(code), None)
        if p is None:
            raise PairingError(404, "the pairing code is wrong or has expired; press 'Use my writing pad' again")
        return p

    def __len__(self) -> int:
        return len(self._codes)


def shown(code: str) -> str:
    return f"{code[:3]}-{code[3:]}"


def pairing_routes(settings: Settings, signer: TokenSigner | None = None,
                   book: PairingBook | None = None) -> list[BaseRoute]:
    codes = book or PairingBook(settings.pairing_code_ttl_s, settings.pairing_max_codes,
                                settings.pairing_claims_per_minute)

    async def body(request: Request) -> dict[str, object]:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise PairingError(422, f"the body must be at most {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise PairingError(422, "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise PairingError(422, "the body must be a JSON object")
        return data

    async def issue(request: Request) -> Response:
        checker: TokenSigner = signer or request.app.state.signer
        try:
            data = await body(request)
            session = data.get("session")
            if not isinstance(session, str) or not session:
                return error(422, "session: the session id the page is in", "session")
            seat = Role.PRESENTER if session.startswith(CLASS_ROOM_PREFIX) else Role.TUTOR  # a class's teacher
            grant = checker.check(bearer(request), session, seat, time.time())
            code = codes.issue(grant.session_id, grant.user_id, grant.role, grant.expires_at, time.monotonic())
        except TokenError as exc:
            return error(401, f"send the tutor's join token for this session as the bearer ({exc.message})")
        except PairingError as exc:
            return error(exc.status, exc.message)
        return JSONResponse({"code": shown(code), "expires_in_s": codes.ttl_s}, headers={"cache-control": "no-store"})

    async def claim(request: Request) -> Response:
        checker: TokenSigner = signer or request.app.state.signer
        try:
            data = await body(request)
            code = data.get("code")
            if not isinstance(code, str) or not 1 <= len(code) <= 32:
                return error(422, "code: the code the session page shows", "code")
            p = codes.claim(code, time.monotonic())
        except PairingError as exc:
            return error(exc.status, exc.message)
        if p.token_expires_at <= time.time():
            return error(404, "the session page's token has expired; reload the page and pair again")
        # a second device of the same seat: the page's connection stays (docs/protocol.md 3.6)
        token = checker.mint(p.session_id, p.user_id, p.role, p.token_expires_at, PEN_DEVICE)
        return JSONResponse({"token": token, "session": p.session_id, "role": p.role.label, "device": PEN_DEVICE,
                             "ws_path": f"/ws/session/{p.session_id}", "expires_at": p.token_expires_at},
                            headers={"cache-control": "no-store"})

    return [Route("/api/pairing", issue, methods=["POST"]), Route("/api/pairing/claim", claim, methods=["POST"])]
