"""The live classes' HTTP API: thin endpoints over ``classes.ClassCatalogue``.

Every endpoint wants ``Authorization: Bearer <API token>`` (401 without a valid one). Bodies are
JSON objects of at most 16 KiB. Errors are ``{"error": sentence}`` plus ``"field"`` and, when
several fields failed, ``"errors"`` (each field's sentence) on 422; unknown classes and codes are
404, the wrong person 403, a state that does not allow the action 409. docs/classes.md lists the
endpoints with examples.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wire import Role

from .auth import API_ROLES, ApiUser, TokenSigner
from .classes import ClassCatalogue, ClassRecord, JoinSeat, NotFound
from .classes.attendance import attendance_csv, in_order, minutes
from .classes.catalogue import Caller
from .httpapi import Handler, authenticated, json_body

MAX_BODY = 16 * 1024
CLASS_ID = re.compile(r"[0-9a-f]{12}")
TEACHERS = ("tutor", "admin")


def _caller(user: ApiUser) -> Caller:
    return Caller(user.user_id, user.role, user.school)


def _class_id(request: Request) -> str:
    value = str(request.path_params["class_id"])
    if not CLASS_ID.fullmatch(value):
        raise NotFound("no such class")
    return value


class ClassesApi:
    def __init__(self, catalogue: ClassCatalogue, signer: TokenSigner,
                 on_end: Callable[[ClassRecord], None] = lambda record: None,
                 place: Callable[[str, Role], Awaitable[str]] | None = None) -> None:
        self.catalogue = catalogue
        self.signer = signer
        self.on_end = on_end  # the hub ends the class's room
        self.place = place  # several nodes: the WebSocket URL a seat of this role joins at

    async def seat(self, seat: JoinSeat) -> dict[str, Any]:
        room = seat.record.room_id
        grant = {"class": seat.record.public(), "room_id": room, "role": seat.role.label,
                 "token": self.signer.mint(room, seat.user_id, seat.role, seat.expires_unix),
                 "expires": seat.expires_unix, "ws_path": f"/ws/session/{room}"}
        if self.place is not None:
            grant["ws_url"] = await self.place(room, seat.role)
        return grant

    # -- endpoints -----------------------------------------------------------------------------

    async def create(self, request: Request, user: ApiUser) -> Response:
        body = await json_body(request, MAX_BODY)
        record = await self.catalogue.create(_caller(user), body, time.time())
        return JSONResponse(record.public(), 201)

    async def listing(self, request: Request, user: ApiUser) -> dict[str, Any]:
        records = await self.catalogue.listing(_caller(user), time.time())
        return {"classes": [r.public() for r in records]}

    async def get(self, request: Request, user: ApiUser) -> dict[str, Any]:
        return (await self.catalogue.get(_caller(user), _class_id(request))).public()

    async def by_code(self, request: Request, user: ApiUser) -> dict[str, Any]:
        return (await self.catalogue.by_code(_caller(user), str(request.path_params["code"]))).public()

    async def update(self, request: Request, user: ApiUser) -> dict[str, Any]:
        body = await json_body(request, MAX_BODY)
        return (await self.catalogue.update(_caller(user), _class_id(request), body, time.time())).public()

    async def cancel(self, request: Request, user: ApiUser) -> dict[str, Any]:
        return (await self.catalogue.cancel(_caller(user), _class_id(request), time.time())).public()

    async def end(self, request: Request, user: ApiUser) -> dict[str, Any]:
        record = await self.catalogue.end(_caller(user), _class_id(request), time.time())
        self.on_end(record)
        return record.public()

    async def join(self, request: Request, user: ApiUser) -> dict[str, Any]:
        return await self.seat(await self.catalogue.join(_caller(user), _class_id(request), time.time()))

    async def join_by_code(self, request: Request, user: ApiUser) -> dict[str, Any]:
        caller = _caller(user)
        record = await self.catalogue.by_code(caller, str(request.path_params["code"]))
        return await self.seat(await self.catalogue.join(caller, record.class_id, time.time()))

    async def attendance(self, request: Request, user: ApiUser) -> dict[str, Any]:
        now = time.time()
        record, visits = await self.catalogue.attendance(_caller(user), _class_id(request))
        stays = [{"user_id": v.user_id, "role": v.role, "joined_unix": v.joined_unix, "left_unix": v.left_unix,
                  "minutes": minutes(v, now)} for v in in_order(visits)]
        return {"class_id": record.class_id, "attendees": len({v.user_id for v in visits if v.role == "viewer"}),
                "stays": stays}

    async def attendance_csv(self, request: Request, user: ApiUser) -> Response:
        record, visits = await self.catalogue.attendance(_caller(user), _class_id(request))
        return Response(attendance_csv(record, visits, time.time()), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="attendance-{record.class_id}.csv"'})

    def routes(self) -> list[Route]:
        def e(roles: tuple[str, ...], handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            return authenticated(self.signer, roles, handler)

        anyone = API_ROLES
        return [
            Route("/api/classes", e(TEACHERS, self.create), methods=["POST"]),
            Route("/api/classes", e(anyone, self.listing), methods=["GET"]),
            Route("/api/classes/code/{code}", e(anyone, self.by_code), methods=["GET"]),
            Route("/api/classes/code/{code}/join", e(("student", "tutor"), self.join_by_code), methods=["POST"]),
            Route("/api/classes/{class_id}", e(anyone, self.get), methods=["GET"]),
            Route("/api/classes/{class_id}", e(TEACHERS, self.update), methods=["PATCH"]),
            Route("/api/classes/{class_id}/cancel", e(TEACHERS, self.cancel), methods=["POST"]),
            Route("/api/classes/{class_id}/end", e(TEACHERS, self.end), methods=["POST"]),
            Route("/api/classes/{class_id}/join", e(("student", "tutor"), self.join), methods=["POST"]),
            Route("/api/classes/{class_id}/attendance", e((*TEACHERS, "researcher"), self.attendance)),
            Route("/api/classes/{class_id}/attendance.csv", e((*TEACHERS, "researcher"), self.attendance_csv)),
        ]
