"""Fixtures: the real session server on a free loopback port, in the test's event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, settings

from sessionserver.app import create_app, server_config
from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from sessionserver.hub import Hub
from sessionserver.settings import Settings
from wire import Limits, Role

SECRET = "tests-only-secret-0123456789abcdefghijkl"

# CI shares two cores with the servers the tests start: timing-based health checks and example
# deadlines say more about the machine's load than about the code, so neither fails a test.
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    settings: Settings
    server: uvicorn.Server
    port: int
    hub: Hub
    app: Any = None

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, session: str) -> str:
        return f"ws://{self.base}/ws/session/{session}"

    def token(self, session: str, role: Role, user: str = "", ttl: int = 600) -> str:
        return TokenSigner(SECRET).mint(session, user or role.label, role, int(time.time()) + ttl)

    def client(self, session: str, role: Role, user: str = "") -> SessionClient:
        return SessionClient(self.url(session), self.token(session, role, user), role)

    async def pair(self, session: str) -> tuple[SessionClient, SessionClient]:
        """A tutor and a student joined in that order (so pids 1 and 2 in a new room)."""
        tutor, student = self.client(session, Role.TUTOR), self.client(session, Role.STUDENT)
        await tutor.connect()
        await student.connect()
        return tutor, student


StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StartServer]:
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(limits: dict[str, Any] | None = None, **overrides: Any) -> RunningServer:
        port = free_port()
        lim = dataclasses.replace(Limits(), **(limits or {}))
        overrides.setdefault("recordings_dir", str(tmp_path_factory.mktemp("recordings")))
        # the in-process server shares its loop and core with the test's clients: its overload
        # shedder would measure the test too (tests/ops/ set their own bounds)
        overrides.setdefault("overload_cpu", 0.0)
        overrides.setdefault("overload_lag_ms", 0.0)
        settings = Settings(host="127.0.0.1", port=port, secret=SECRET, limits=lim, **overrides)
        app = create_app(settings)
        server = uvicorn.Server(server_config(dataclasses.replace(settings, log_level="warning"), app))
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)  # uvicorn exposes no started event; poll its flag
        return RunningServer(settings, server, port, app.state.hub, app)

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, task in running:
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()
