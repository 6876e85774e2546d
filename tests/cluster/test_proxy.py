"""The documented HAProxy configuration (deploy/haproxy/haproxy.cfg, Debian's haproxy) in front
of three real nodes: clients know only the proxy's address; grants and redirects name the
room's node through it (``?node=``), a session works end to end, and when the room's node is
killed its clients come back through the same address to the node that took the room over."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.nodes import Cluster, cluster
from sessionserver.client import SessionClient
from tests.conftest import free_port
from wire import ErrorCode, Point, Role

pytestmark = pytest.mark.timeout(120)
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"


def pen(n: int, start: int = 0) -> list[Point]:
    return [Point(10 * i, 5 * i, 4 * i, 400) for i in range(start, start + n)]


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    proxy_port, ports = free_port(), [free_port() for _ in range(3)]
    text = CONFIG.read_text().replace("127.0.0.1:8000", f"127.0.0.1:{proxy_port}")
    for i, port in enumerate(ports):
        text = text.replace(f"127.0.0.1:800{i + 1}", f"127.0.0.1:{port}")
    assert re.search(r"127\.0\.0\.1:800\d\b", text) is None  # every address of the file was replaced
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    with cluster(3, ports=ports, node_url=lambda node, _: f"http://127.0.0.1:{proxy_port}/?node={node}") as c:
        proxy = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{proxy_port}"
            deadline = time.monotonic() + 15
            while True:  # the proxy's health checks see every node up
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proxy.poll() is not None:
                    pytest.fail(f"haproxy did not come up: {proxy.stderr.read() if proxy.stderr else ''}")
                time.sleep(0.05)  # a process starting: nothing to await but its port
            yield c, base
        finally:
            proxy.terminate()
            proxy.wait(10)


async def test_one_public_address_in_front_of_three_nodes(proxied: tuple[Cluster, str]) -> None:
    c, base = proxied
    async with httpx.AsyncClient() as http:
        grants = [(await http.get(f"{base}/dev/join", params={"session": "proxied", "role": r})).json()
                  for r in ("tutor", "student")]
    assert all(g["ws_url"].startswith(base.replace("http", "ws") + "/ws/session/proxied?node=n") for g in grants)
    home = c.nodes[int(grants[0]["ws_url"][-1]) - 1]
    entry = base.replace("http", "ws") + "/ws/session/proxied"  # what a client falls back to: the proxy
    tutor = SessionClient(entry, grants[0]["token"], Role.TUTOR, auto_reconnect=True)
    student = SessionClient(grants[1]["ws_url"], grants[1]["token"], Role.STUDENT, auto_reconnect=True,
                            fallback_urls=[entry])
    try:
        await tutor.connect(timeout=10)
        await student.connect(timeout=10)
        stroke = await tutor.begin_stroke()
        await tutor.add_points(stroke, pen(30))
        await tutor.wait_for(lambda: not tutor.outbox.in_flight and not tutor.outbox.waiting, 10)
        epoch = tutor.welcome.epoch if tutor.welcome else 0
        home.kill()
        await tutor.add_points(stroke, pen(20, 30))
        await tutor.end_stroke(stroke)
        await tutor.wait_for(lambda: tutor.connected and tutor.reconnects > 0, 15)
        await student.wait_for(lambda: any(s.ended and s.points == pen(50) for s in student.replica.strokes()), 15)
        assert tutor.welcome is not None and tutor.welcome.epoch != epoch  # taken over (restore.renumber)
        assert [s.points for s in tutor.replica.strokes()] == [pen(50)]
        # a client of the proxy reaches the home of a room through it, redirected when needed
        assert all(e.code != ErrorCode.MOVED or e.message.startswith(entry) for e in tutor.errors + student.errors)
    finally:
        await tutor.close()
        await student.close()
