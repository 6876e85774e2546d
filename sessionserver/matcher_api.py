"""The matcher's HTTP API and push channel: thin endpoints over ``matcher.service.Matcher``.

Every endpoint wants ``Authorization: Bearer <API token>`` (401 without a valid one) naming a
user and a role; the wrong role gets 403. Bodies are JSON objects of at most 16 KiB. Errors are
``{"error": sentence}`` plus ``"field"`` on 422; unknown ids are 404, a state that does not
allow the action is 409. ``GET /api/requests/{id}`` of a request whose session has ended is 410
(``{"error", "request"}``, the request's view with ``"session_ended": true`` and no join token);
no join token is ever handed out for an ended session. The push channel (``/ws/matcher``) sends
offers, withdrawals, request changes and matches as they happen, after a snapshot of the user's
current state, so nobody polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from matcher.catalogue import catalogue
from matcher.errors import Forbidden, MatcherError, NotFound, ValidationFailed
from matcher.knowledge import knowledge_csv
from matcher.lifecycle import RequestState, TutorState
from matcher.records import USER_ID, RequestRecord
from matcher.scoring import recent
from matcher.store import MatchEvent
from wire import Role

from .auth import API_ROLES, ApiAuthError, ApiUser, TokenSigner
from .httpapi import Handler, authenticated, error, json_body, json_object
from .matching import Matching
from .settings import Settings

MAX_BODY = 16 * 1024
MAX_QUERY_CHARS = 100  # a catalogue search's text
MAX_SEARCH_RESULTS = 200
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _path_id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if not ID.fullmatch(value):
        raise NotFound(f"no such {name.removesuffix('_id')}")
    return value


# the fields each JSON body may have (anything else is 422 naming it)
REQUEST_FIELDS = ("subject", "grade", "knowledge_points", "text", "favourite", "direct", "only")
AVAILABILITY_FIELDS = ("available",)
OUTCOME_FIELDS = ("rating", "check")


async def _body(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    return await json_body(request, MAX_BODY, fields)


async def _receive_json(ws: WebSocket) -> dict[str, Any] | None:
    """The next message on a push channel as a JSON object, or ``None`` for anything else (a
    binary frame, text that is not JSON, nested too deep or longer than ``MAX_BODY``, an array):
    garbage is that client's error, never a fault. ``WebSocketDisconnect`` when it has gone."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if not isinstance(text, str) or len(text) > MAX_BODY:
        return None
    return json_object(text)


class MatcherApi:
    def __init__(self, settings: Settings, signer: TokenSigner, matching: Matching,
                 ended: Callable[[str], bool] = lambda session_id: False,
                 place: Callable[[str, Role], Awaitable[str]] | None = None) -> None:
        self.place = place  # several nodes: the WebSocket URL of the session's node (docs/cluster.md)
        self.settings = settings
        self.signer = signer
        self.matching = matching
        self.matcher = matching.matcher
        self.ended = ended  # the hub's word on whether a session has ended

    async def session_ended(self, r: RequestRecord) -> bool:
        """Whether the session of accepted request ``r`` is over: ended here (by its tutor, or
        idle), or its tutor has moved on (available again, or in another session), which any
        node can tell from the store."""
        if r.session_id is None:
            return False
        if self.ended(r.session_id):
            return True
        if r.tutor_id is None:
            return False
        try:
            t = await self.matcher.tutor(r.tutor_id)
        except NotFound:
            return True
        return t.session_id != r.session_id

    def join(self, session_id: str, user_id: str, role: str) -> dict[str, Any]:
        """What a participant needs to enter a session: a join token for their role."""
        expires = int(time.time()) + self.settings.dev_token_ttl_s
        token = self.signer.mint(session_id, user_id, Role.from_label(role), expires)
        return {"session_id": session_id, "role": role, "token": token, "expires": expires,
                "ws_path": f"/ws/session/{session_id}"}

    async def placed_join(self, session_id: str, user_id: str, role: str) -> dict[str, Any]:
        """``join``, with ``ws_url`` naming the session's node when there are several (the push
        channel's grants name none: a client that joins elsewhere is redirected)."""
        grant = self.join(session_id, user_id, role)
        if self.place is not None:
            grant["ws_url"] = await self.place(session_id, Role.from_label(role))
        return grant

    def endpoint(self, roles: tuple[str, ...], handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return authenticated(self.signer, roles, handler)

    # -- endpoints -----------------------------------------------------------------------------

    async def create_request(self, request: Request, user: ApiUser) -> Response:
        created = await self.matcher.create_request(user.user_id, await _body(request, REQUEST_FIELDS), time.time())
        return JSONResponse(created.public(), 201)

    async def get_request(self, request: Request, user: ApiUser) -> dict[str, Any] | Response:
        r = await self.matcher.request_for(_path_id(request, "request_id"), user.user_id)
        view = await self.request_view(r, user.user_id)
        if view.get("session_ended"):
            return JSONResponse({"error": "the session of this request has ended", "request": view}, 410)
        return view

    async def request_view(self, r: RequestRecord, user_id: str) -> dict[str, Any]:
        view = r.public()
        if r.state is RequestState.ACCEPTED and r.session_id and user_id in (r.student_id, r.tutor_id):
            if await self.session_ended(r):
                view["session_ended"] = True
            else:
                view["join"] = await self.placed_join(r.session_id, user_id,
                                                      "student" if user_id == r.student_id else "tutor")
        return view

    async def cancel_request(self, request: Request, user: ApiUser) -> dict[str, Any]:
        r = await self.matcher.cancel_request(_path_id(request, "request_id"), user.user_id, time.time())
        return r.public()

    async def me(self, request: Request, user: ApiUser) -> dict[str, Any]:
        return await self.snapshot(user)

    async def snapshot(self, user: ApiUser) -> dict[str, Any]:
        if user.role == "tutor":
            t = await self.matcher.tutor(user.user_id)
            offer = None
            if t.offer is not None:
                r = await self.matcher.request(t.offer.request_id)
                offer = {"request": r.public(), "expires_at": t.offer.expires_at}
            live = (t.session_id is not None and t.state is TutorState.IN_SESSION
                    and not self.ended(t.session_id))
            return {"user_id": user.user_id, "role": "tutor", "state": t.state.value, "offer": offer,
                    "session_id": t.session_id, "cooldown_until": t.cooldown_until,
                    "join": self.join(t.session_id, t.tutor_id, "tutor") if live and t.session_id else None,
                    "sessions_tonight": recent(t.sessions, time.time(), self.settings.matcher.load_window_s)}
        requests = await self.matcher.recent_requests(user.user_id)
        return {"user_id": user.user_id, "role": user.role,
                "requests": [await self.request_view(r, user.user_id) for r in requests]}

    async def availability(self, request: Request, user: ApiUser) -> dict[str, Any]:
        available = (await _body(request, AVAILABILITY_FIELDS)).get("available")
        if not isinstance(available, bool):
            raise ValidationFailed("available", "must be true or false")
        t = await self.matcher.set_availability(user.user_id, available, time.time())
        return {"state": t.state.value}

    async def heartbeat(self, request: Request, user: ApiUser) -> dict[str, Any]:
        t = await self.matcher.heartbeat(user.user_id, time.time())
        return {"state": t.state.value}

    async def accept(self, request: Request, user: ApiUser) -> dict[str, Any]:
        match = await self.matcher.accept(user.user_id, _path_id(request, "request_id"), time.time())
        return {"request": match.request.public(),
                "join": await self.placed_join(match.session_id, user.user_id, "tutor")}

    async def decline(self, request: Request, user: ApiUser) -> dict[str, Any]:
        r = await self.matcher.decline(user.user_id, _path_id(request, "request_id"), time.time())
        return {"request_id": r.request_id, "state": "declined"}

    async def outcome(self, request: Request, user: ApiUser) -> dict[str, Any]:
        body = await _body(request, OUTCOME_FIELDS)
        r = await self.matcher.report_outcome(_path_id(request, "session_id"), user.user_id,
                                              body.get("rating"), body.get("check"))
        return {"session_id": r.session_id, "recorded": True}

    async def export_tutors(self, request: Request, user: ApiUser) -> Response:
        from matcher.roster import export_roster

        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise ValidationFailed("format", "must be json or csv")
        text = await export_roster(self.matcher, "csv" if fmt == "csv" else "json")
        return Response(text, media_type="text/csv" if fmt == "csv" else "application/json")

    # -- the knowledge-point catalogue ---------------------------------------------------------

    async def catalogue_subjects(self, request: Request, user: ApiUser) -> dict[str, Any]:
        """``GET /api/catalogue``: the subjects, each with its strands."""
        cat = catalogue()
        return {"subjects": [{**s.public(), "strands": [cat.nodes[c].public() for c in s.children
                                                        if cat.nodes[c].kind == "strand"]}
                             for s in cat.subjects()]}

    async def catalogue_tree(self, request: Request, user: ApiUser) -> dict[str, Any]:
        """``GET /api/catalogue/{subject}``: its volumes, chapters and points as a tree."""
        subject = str(request.path_params["subject"])
        if subject not in catalogue() or catalogue().nodes[subject].kind != "subject":
            raise NotFound(f"no subject {subject!r} in the catalogue")
        return catalogue().tree(subject)

    async def catalogue_search(self, request: Request, user: ApiUser) -> dict[str, Any]:
        """``GET /api/catalogue/search?q=&subject=&grade=&kinds=point,chapter&limit=``: nodes whose
        zh-CN or English name (or id) contains every word of ``q``."""
        q = request.query_params
        query = q.get("q", "")
        if not query.strip() or len(query) > MAX_QUERY_CHARS:
            raise ValidationFailed("q", f"must be 1-{MAX_QUERY_CHARS} characters")
        grade: int | None = None
        if "grade" in q:
            if not q["grade"].isdigit() or not 1 <= int(q["grade"]) <= 12:
                raise ValidationFailed("grade", "must be a school grade from 1 to 12")
            grade = int(q["grade"])
        kinds = [k for k in q.get("kinds", "point,chapter").split(",") if k]
        if not kinds or any(k not in ("subject", "strand", "volume", "chapter", "point") for k in kinds):
            raise ValidationFailed("kinds", "must name subject, strand, volume, chapter or point (comma-separated)")
        limit_text = q.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_SEARCH_RESULTS:
            raise ValidationFailed("limit", f"must be a whole number from 1 to {MAX_SEARCH_RESULTS}")
        found = catalogue().search(query, q.get("subject") or None, kinds, grade, int(limit_text))
        return {"q": query, "results": [n.public() for n in found]}

    # -- competency tracking -------------------------------------------------------------------

    async def knowledge(self, request: Request, user: ApiUser) -> dict[str, Any]:
        """``GET /api/knowledge/{student_id}?lang=zh|en``: the student's knowledge state in words.
        The student sees their own; a tutor sees a student whose request they hold or took; an
        admin anyone's."""
        student_id = str(request.path_params["student_id"])
        if not USER_ID.fullmatch(student_id):
            raise NotFound("no such student")
        for_tutor = False
        if user.role == "student" and user.user_id != student_id:
            raise Forbidden("a student sees only their own knowledge state")
        if user.role == "tutor":
            t = await self.matcher.tutor(user.user_id)
            mine = {r.student_id for r in await self.matcher.tutor_requests(t)}
            if student_id not in mine:
                raise Forbidden("a tutor sees the knowledge state of their own students only")
            for_tutor = True
        lang = request.query_params.get("lang", "en")
        if lang not in ("en", "zh", "zh-CN"):
            raise ValidationFailed("lang", "must be en or zh")
        return await self.matcher.knowledge_view(student_id, lang, for_tutor=for_tutor)

    async def knowledge_export(self, request: Request, user: ApiUser) -> Response:
        """``GET /api/knowledge-export?format=csv|json`` (admin): every student's state per point."""
        fmt = request.query_params.get("format", "csv")
        if fmt not in ("json", "csv"):
            raise ValidationFailed("format", "must be csv or json")
        rows = await self.matcher.knowledge_rows()
        if fmt == "json":
            return JSONResponse({"rows": rows})
        return Response(knowledge_csv(rows), media_type="text/csv; charset=utf-8")

    async def dev_login(self, request: Request) -> Response:
        """Dev mode only: an API token for any user and role, no password."""
        role = request.query_params.get("role", "student")
        user_id = request.query_params.get("user", "")
        if role not in API_ROLES:
            return error(422, "must be student, tutor or admin", "role")
        if not USER_ID.fullmatch(user_id):
            return error(422, "must be 1-64 of A-Z a-z 0-9 _ . @ -", "user")
        expires = int(time.time()) + self.settings.api_token_ttl_s
        return JSONResponse({"user": user_id, "role": role, "expires": expires,
                             "token": self.signer.mint_api(user_id, role, expires)})

    # -- push channel --------------------------------------------------------------------------

    async def push(self, ws: WebSocket) -> None:
        """``/ws/matcher``: the first text message is ``{"token": API token}``; then the server
        sends ``welcome`` (the user's state) and every event as it happens. A tutor may send
        ``{"type": "heartbeat"}`` to stay online."""
        await ws.accept()
        try:
            first = await asyncio.wait_for(_receive_json(ws), self.settings.join_timeout_s)
            token = first.get("token", "") if first is not None else ""
            user = self.signer.check_api(token if isinstance(token, str) else "", time.time())
        except (TimeoutError, ApiAuthError, WebSocketDisconnect) as exc:
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "error", "code": 401, "message": f"sign in first: {exc}"})
                await ws.close(4001, "unauthorized")
            return
        async with self.matching.listen(user.user_id) as listener:
            try:
                await ws.send_json({"type": "welcome", **await self.snapshot(user)})
            except MatcherError as exc:
                await ws.send_json({"type": "error", "code": exc.status, "message": exc.message})
                await ws.close(4004, "unknown user")
                return
            reader = asyncio.create_task(self._read_push(ws, user))
            overflow = asyncio.create_task(listener.overflowed.wait())
            try:
                while True:
                    getter = asyncio.create_task(listener.queue.get())
                    done, _ = await asyncio.wait({getter, reader, overflow}, return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        if overflow in done:
                            await ws.close(4010, "too far behind: reconnect for the current state")
                        return
                    await ws.send_json(self.push_message(getter.result()))
            except (WebSocketDisconnect, RuntimeError):
                return
            finally:
                reader.cancel()
                overflow.cancel()

    def push_message(self, event: MatchEvent) -> dict[str, Any]:
        message: dict[str, Any] = {"type": event.kind, **event.data}
        if event.kind == "matched":
            role = "tutor" if event.user_id == event.data.get("tutor_id") else "student"
            message["join"] = self.join(str(event.data["session_id"]), event.user_id, role)
        return message

    async def _read_push(self, ws: WebSocket, user: ApiUser) -> None:
        while True:
            message = await _receive_json(ws)
            kind = message.get("type") if message is not None else None
            if kind == "heartbeat" and user.role == "tutor":
                try:
                    await self.matcher.heartbeat(user.user_id, time.time())
                except MatcherError as exc:
                    await ws.send_json({"type": "error", "code": exc.status, "message": exc.message})
            else:
                await ws.send_json({"type": "error", "code": 422, "message": "unknown message; expected heartbeat"})

    def routes(self) -> list[Route | WebSocketRoute]:
        e = self.endpoint
        student, tutor, anyone = ("student",), ("tutor",), API_ROLES
        routes: list[Route | WebSocketRoute] = [
            Route("/api/requests", e(student, self.create_request), methods=["POST"]),
            Route("/api/requests/{request_id}", e(anyone, self.get_request), methods=["GET"]),
            Route("/api/requests/{request_id}/cancel", e(student, self.cancel_request), methods=["POST"]),
            Route("/api/me", e(anyone, self.me), methods=["GET"]),
            Route("/api/tutor/availability", e(tutor, self.availability), methods=["POST"]),
            Route("/api/tutor/heartbeat", e(tutor, self.heartbeat), methods=["POST"]),
            Route("/api/offers/{request_id}/accept", e(tutor, self.accept), methods=["POST"]),
            Route("/api/offers/{request_id}/decline", e(tutor, self.decline), methods=["POST"]),
            Route("/api/sessions/{session_id}/outcome", e(student, self.outcome), methods=["POST"]),
            Route("/api/tutors/export", e(("admin",), self.export_tutors), methods=["GET"]),
            Route("/api/catalogue", e(anyone, self.catalogue_subjects), methods=["GET"]),
            Route("/api/catalogue/search", e(anyone, self.catalogue_search), methods=["GET"]),
            Route("/api/catalogue/{subject}", e(anyone, self.catalogue_tree), methods=["GET"]),
            Route("/api/knowledge/{student_id}", e(anyone, self.knowledge), methods=["GET"]),
            Route("/api/knowledge-export", e(("admin",), self.knowledge_export), methods=["GET"]),
            WebSocketRoute("/ws/matcher", self.push),
        ]
        if self.settings.dev_mode:
            routes.append(Route("/dev/login", self.dev_login))
        return routes



