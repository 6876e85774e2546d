"""What every HTTP API endpoint shares: bearer-token sign-in, roles, and errors as JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from matcher.errors import MatcherError, ValidationFailed

from .auth import ApiAuthError, ApiUser, TokenSigner
from .classes.errors import ClassError
from .classes.errors import ValidationFailed as ClassFieldFailed

Handler = Callable[[Request, ApiUser], Awaitable[Any]]


def bearer(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def error(status: int, message: str, field: str | None = None, errors: dict[str, str] | None = None) -> JSONResponse:
    """``{"error": sentence}``, plus the ``field`` it concerns and, where several fields failed
    at once, ``errors`` (each field's sentence)."""
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status)


def json_object(raw: str | bytes) -> dict[str, Any] | None:
    """``raw`` as a JSON object, or ``None`` for anything else (not JSON, not UTF-8, nested too
    deep to read, an array or a scalar): garbage is the sender's error, never a fault."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


async def json_body(request: Request, max_bytes: int, fields: Collection[str] | None = None) -> dict[str, Any]:
    """The request's body as a JSON object of at most ``max_bytes`` (``ClassFieldFailed`` on
    ``body`` otherwise: 422). With ``fields``, a key that is not one of them is refused (422
    naming it): a misspelt field must not be dropped in silence."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise ClassFieldFailed("body", f"must be at most {max_bytes} bytes")
    body = json_object(raw or b"{}")
    if body is None:
        raise ClassFieldFailed("body", "must be a JSON object")
    if fields is not None:
        for name in body:
            if name not in fields:
                known = ", ".join(fields)
                raise ClassFieldFailed(name[:64], f"is not a field of this request (the fields are {known})")
    return body


def authenticated(
    signer: TokenSigner, roles: tuple[str, ...], handler: Handler,
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that runs ``handler`` for a signed-in user of one of ``roles``: 401 without a
    valid token, 403 for another role, and ``MatcherError``s as their status with a sentence."""

    async def run(request: Request) -> Response:
        try:
            user = signer.check_api(bearer(request), time.time())
        except ApiAuthError as exc:
            return error(401, str(exc))
        if user.role not in roles:
            return error(403, f"this needs the {' or '.join(roles)} role")
        try:
            result = await handler(request, user)
        except ValidationFailed as exc:
            return error(exc.status, exc.reason, exc.field)
        except MatcherError as exc:
            return error(exc.status, exc.message)
        except ClassFieldFailed as exc:
            return error(exc.status, exc.reason, exc.field, getattr(exc, "errors", None))
        except ClassError as exc:
            return error(exc.status, exc.message)
        return result if isinstance(result, Response) else JSONResponse(result)

    return run
