"""The ASGI application: routes that translate HTTP and WebSocket into the cores."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from recordings.archiver import Archiver, SyncConfig
from wire import ONE_ON_ONE_RIGHTS, PROTOCOL_VERSION, CloseCode, ErrorCode, Role, encode
from wire import messages as m

from . import __version__
from .auth import TokenSigner
from .classes import ClassCatalogue, MemoryClassStore
from .classes.attendance import AttendanceRecorder
from .classes.redis_store import RedisClassStore
from .classes_api import ClassesApi
from .cluster.node import cluster_node, session_url
from .connection import Connection
from .fastws import SessionLink, SessionRoute, upgrade_protocol
from .httpguard import guarded_protocol
from .hub import Hub
from .matcher_api import MatcherApi
from .matching import Matching
from .metrics import HttpErrorCounter, Metrics
from .overload import BUSY_CLOSE, BUSY_ERROR, BusyGuard, OverloadConfig, Shedder
from .recordings_api import RecordingsApi
from .settings import Settings, rtc_config
from .web import web_routes

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SESSION_PATH = "/ws/session/"  # + a session id: the session WebSocket (on picows, see fastws)


def create_app(settings: Settings, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The session server for ``settings``; ``clock`` is the monotonic session clock."""
    signer = TokenSigner(settings.signing_secret())
    archiver = (Archiver(Path(settings.recordings_dir), settings.recording_flush_s,
                         max_backlog_bytes=settings.recording_backlog_bytes,
                         sync=SyncConfig(settings.recording_clock_hold_ms, settings.recording_clock_hold_packets,
                                         settings.recording_clock_settle_samples)) if settings.record else None)
    hub = Hub(settings, clock, archiver)
    cluster = cluster_node(settings, hub)  # several nodes on Redis (docs/cluster.md), or None
    rtc = rtc_config(settings)
    shedder = Shedder(OverloadConfig(settings.overload_lag_ms, settings.overload_cpu, settings.overload_window_s,
                                     settings.overload_retry_s))
    metrics = Metrics(hub, archiver, shedder, settings.metrics_token, settings.metrics_networks)
    hub.shedder = shedder  # new participants of live rooms are refused while busy (Connection._admit)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, "protocol": PROTOCOL_VERSION,
                             "rooms": len(hub.rooms)})

    def session_connection(session_id: str, link: SessionLink) -> Connection | RefusedSession:
        """A session WebSocket's connection, once picows has answered its handshake."""
        if not SESSION_ID.fullmatch(session_id):
            return RefusedSession(link, m.Error(ErrorCode.WRONG_SESSION, "session id must be 1-64 of A-Z a-z 0-9 _ -"),
                                  CloseCode.FORBIDDEN, "bad session id")
        busy = None if session_id in hub.rooms else shedder.refusal("join")  # a new room: new work
        if busy is not None:
            return RefusedSession(link, m.Error(BUSY_ERROR, busy.message), BUSY_CLOSE, busy.message)
        return Connection(link, session_id, hub, signer, settings, clock, rtc)

    async def dev_join(request: Request) -> JSONResponse:
        """Dev mode only: a join token for either role of a demo (one-on-one) session, no sign-in
        needed."""
        session_id = request.query_params.get("session", "demo")
        role = request.query_params.get("role", "tutor")
        user_id = request.query_params.get("user") or f"{role}-{secrets.token_hex(3)}"
        if not SESSION_ID.fullmatch(session_id):
            return JSONResponse({"field": "session", "error": "must be 1-64 of A-Z a-z 0-9 _ -"}, 422)
        if role not in {r.label for r in ONE_ON_ONE_RIGHTS}:
            return JSONResponse({"field": "role", "error": "must be tutor or student"}, 422)
        if len(user_id.encode()) > settings.limits.max_string_bytes:
            return JSONResponse({"field": "user", "error": "is too long"}, 422)
        expires = int(time.time()) + settings.dev_token_ttl_s
        token = signer.mint(session_id, user_id, Role.from_label(role), expires)
        grant = {"session": session_id, "role": role, "user": user_id, "token": token, "expires": expires,
                 "ws_path": f"/ws/session/{session_id}"}
        if cluster is not None:  # the room's node: its WebSocket URL (placed now if new)
            grant["ws_url"] = session_url(await cluster.place(session_id), f"/ws/session/{session_id}")
        return JSONResponse(grant)

    matching = Matching(settings)
    class_store = (RedisClassStore(settings.redis_url, settings.redis_prefix) if settings.redis_url
                   else MemoryClassStore())
    classes = ClassCatalogue(class_store, settings.classes)
    attendance = AttendanceRecorder(classes)
    hub.presence_hooks.append(attendance)
    matching.on_session_ended.append(lambda session_id: hub.end_session(session_id, "its tutor ended it"))
    routes: list[Route | WebSocketRoute] = [
        Route("/healthz", healthz),
        Route("/metrics", metrics.endpoint),
        *MatcherApi(settings, signer, matching, hub.is_ended,
                    place=cluster.grant_url if cluster is not None else None).routes(),
        *RecordingsApi(Path(settings.recordings_dir), signer, archiver).routes(),
        *ClassesApi(classes, signer, lambda c: hub.end_session(c.room_id, "its teacher ended the class"),
                    place=cluster.grant_url if cluster is not None else None).routes(),
    ]
    if settings.dev_mode:
        routes.append(Route("/dev/join", dev_join))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if archiver is not None:
            await archiver.start()
        await matching.start()
        if cluster is not None:
            await cluster.start()
        metrics.matcher.start(matching.store)
        shedder.start()
        try:
            yield
        finally:
            if cluster is not None:
                await cluster.stop()
            shedder.stop()
            await metrics.matcher.stop()
            await matching.stop()
            if isinstance(class_store, RedisClassStore):
                await class_store.close()
            if archiver is not None:
                await archiver.stop()

    new_work = frozenset({("POST", "/api/requests")})  # refused while the server is busy
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[
        Middleware(HttpErrorCounter), Middleware(BusyGuard, shedder=shedder, guarded=new_work)])
    app.router.routes.extend(web_routes(settings, signer=signer))
    app.state.hub = hub
    app.state.signer = signer
    app.state.matching = matching
    app.state.classes = classes
    app.state.attendance = attendance
    app.state.settings = settings
    app.state.shedder = shedder
    app.state.metrics = metrics
    app.state.session_route = SessionRoute(SESSION_PATH, session_connection, settings.transport_max_frame_bytes,
                                           settings.close_grace_s)
    return app


class RefusedSession:
    """A session WebSocket refused before its join (a bad session id): the error, then the close."""

    def __init__(self, link: SessionLink, error: m.Error, code: int, reason: str) -> None:
        self.link, self.error, self.code, self.reason = link, error, code, reason

    def opened(self) -> None:
        self.link.write(encode(self.error))
        self.link.close(self.code, self.reason)

    def frame_received(self, data: bytes) -> None:
        pass

    def text_received(self) -> None:
        pass

    def resumed(self) -> None:
        pass

    def peer_closed(self, code: int) -> None:
        pass

    def lost(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def server_config(settings: Settings, app: Starlette | None = None) -> uvicorn.Config:
    """How uvicorn runs the app: the session WebSocket is handed to picows at the upgrade
    (``sessionserver/fastws``), other WebSockets stay on uvicorn's own, with per-message
    deflate off (ink is compact already, and deflate would cost CPU per listener) and the
    transport's frame cap above the protocol's own."""
    app = app or create_app(settings)
    return uvicorn.Config(
        app, host=settings.host, port=settings.port,
        log_level=settings.log_level, ws_max_size=settings.transport_max_frame_bytes,
        ws_per_message_deflate=False, lifespan="on", ws=upgrade_protocol(app.state.session_route),
        http=guarded_protocol(settings.header_timeout_s, settings.max_connections,
                              frozenset(o.strip() for o in settings.allowed_origins.split(",") if o.strip())),
    )
