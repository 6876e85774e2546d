"""What every HTTP API endpoint shares: bearer-token sign-in, roles, and errors as JSON."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from matcher.errors import MatcherError, ValidationFailed

from .auth import ApiAuthError, ApiUser, TokenSigner

Handler = Callable[[Request, ApiUser], Awaitable[Any]]


def bearer(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status)


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
        return result if isinstance(result, Response) else JSONResponse(result)

    return run
