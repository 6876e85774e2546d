"""Signed join tokens (JWT, HS256): a token binds a session, a user, a role and an expiry.

A join token's ``role`` claim is a participant role's label (``Role.label``: "tutor", "student",
...); API tokens carry an API role (``API_ROLES``), which is another thing. A join token may
name a device of the participant (claim ``dev``, ``DEVICE_ID``: the pen gateway's pairing grant
says ``pen``): a participant's connections of different devices are in the room together, one of
the same device replaces the last (``docs/protocol.md`` 3.6). Without the claim it is the
participant's first device, ``""``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jwt

from wire import ErrorCode, Role

AUDIENCE = "tutorwire-session"
API_AUDIENCE = "tutorwire-api"
API_ROLES = ("student", "tutor", "researcher", "admin")
ALGORITHM = "HS256"
DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,15}")  # a ``dev`` claim: 1-16 of a-z, 0-9 and "-"
PEN_DEVICE = "pen"  # the pen gateway's device (its pairing grant)


class TokenError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class JoinGrant:
    session_id: str
    user_id: str
    role: Role
    expires_at: int  # unix seconds
    device: str = ""  # the participant's device ("" its first; the ``dev`` claim)


@dataclass(frozen=True, slots=True)
class ApiUser:
    user_id: str
    role: str  # student, tutor, researcher or admin
    expires_at: int
    school: str | None = None  # the school a student's sign-in names (classes for a school)


class ApiAuthError(Exception):
    """A missing, bad or expired API token (HTTP 401)."""


class TokenSigner:
    """Mints and checks join tokens (for one role in one session) and API tokens (for one user and role
    on the HTTP API and the matcher channel) with one shared secret."""

    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the token secret must be at least 32 bytes (HS256 wants 256 bits)")
        self._secret = secret

    def mint(self, session_id: str, user_id: str, role: Role, expires_at: int, device: str = "") -> str:
        claims: dict[str, object] = {"sid": session_id, "sub": user_id, "role": role.label, "exp": expires_at,
                                     "aud": AUDIENCE}
        if device:
            if not DEVICE_ID.fullmatch(device):
                raise ValueError(f"a device id is {DEVICE_ID.pattern}")
            claims["dev"] = device
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def check(self, token: str, session_id: str, role_asked: Role, now: float, max_user_bytes: int = 256) -> JoinGrant:
        """The grant in ``token`` if it is valid for ``session_id`` and ``role_asked`` (the role the
        Join names) at ``now``; ``TokenError`` says why not (2001-2004)."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                options={"require": ["exp", "sid", "sub", "role"], "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(ErrorCode.AUTH_FAILED, f"join token refused: {exc}") from None
        exp, sid, sub, role = claims["exp"], claims["sid"], claims["sub"], claims["role"]
        if not isinstance(exp, int) or not all(isinstance(v, str) for v in (sid, sub, role)):
            raise TokenError(ErrorCode.AUTH_FAILED, "join token has malformed claims")
        if len(sub.encode()) > max_user_bytes:
            raise TokenError(ErrorCode.AUTH_FAILED, f"join token's user id is longer than {max_user_bytes} bytes")
        if exp <= now:
            raise TokenError(ErrorCode.TOKEN_EXPIRED, "join token has expired")
        if sid != session_id:
            raise TokenError(ErrorCode.WRONG_SESSION, "join token is for another session")
        if role != role_asked.label:
            raise TokenError(ErrorCode.WRONG_SEAT, f"join token is for the {role} role, not {role_asked.label}")
        device = claims.get("dev", "")
        if not isinstance(device, str) or (device and not DEVICE_ID.fullmatch(device)):
            raise TokenError(ErrorCode.AUTH_FAILED, "join token has a malformed device")
        return JoinGrant(sid, sub, role_asked, exp, device)

    def mint_api(self, user_id: str, role: str, expires_at: int, school: str | None = None) -> str:
        if role not in API_ROLES:
            raise ValueError(f"role must be one of {API_ROLES}")
        claims: dict[str, object] = {"sub": user_id, "role": role, "exp": expires_at, "aud": API_AUDIENCE}
        if school is not None:
            claims["school"] = school
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def check_api(self, token: str, now: float) -> ApiUser:
        """The user an API token names, if it is signed by us, for the API, and not expired."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], audience=API_AUDIENCE,
                                options={"require": ["exp", "sub", "role"], "verify_exp": False})
        except jwt.PyJWTError as exc:
            raise ApiAuthError(f"API token refused: {exc}") from None
        sub, role, exp = claims["sub"], claims["role"], claims["exp"]
        if not isinstance(sub, str) or role not in API_ROLES or not isinstance(exp, int) or len(sub) > 64:
            raise ApiAuthError("API token has malformed claims")
        school = claims.get("school")
        if school is not None and (not isinstance(school, str) or not 1 <= len(school) <= 64):
            raise ApiAuthError("API token has a malformed school")
        if exp <= now:
            raise ApiAuthError("API token has expired")
        return ApiUser(sub, role, exp, school)
