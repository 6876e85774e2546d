"""Pairing a writing pad: the tutor's page gets a code with its join token, the pen gateway
claims it once for a token of the same seat, and joins; wrong, used and expired codes, the
claim rate and the outstanding bound each get their exact answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from pen_gateway.cli import pair
from pen_gateway.errors import PairingError as GatewayPairingError
from pen_gateway.gateway import Gateway
from pen_gateway.spool import Spool
from sessionserver.pairing import PairingBook, PairingError, normalise
from tests.conftest import RunningServer, StartServer
from wire import Role


def test_book_single_use_ttl_bounds() -> None:
    book = PairingBook(ttl_s=10, max_codes=2, claims_per_minute=3)
    code = book.issue("s1", "li.jun", Role.TUTOR, 2_000_000_000, now=0.0)
    assert len(code) == 6 and normalise(f" {code[:3].lower()}-{code[3:]} ") == code
    assert book.claim(code, now=1.0).session_id == "s1"
    with pytest.raises(PairingError) as used:
        book.claim(code, now=2.0)
    assert used.value.status == 404
    late = book.issue("s1", "li.jun", Role.TUTOR, 2_000_000_000, now=100.0)
    with pytest.raises(PairingError) as expired:
        book.claim(late, now=110.0)
    assert expired.value.status == 404
    for t in (111.0, 112.0):  # with the one at 110: three within a minute
        with pytest.raises(PairingError):
            book.claim("AAAAAA", now=t)
    with pytest.raises(PairingError) as rate:
        book.claim("AAAAAA", now=113.0)
    assert (rate.value.status, rate.value.message) == (429, "more than 3 pairing attempts a minute; wait and try again")
    book.issue("s2", "a", Role.TUTOR, 2_000_000_000, now=200.0)
    book.issue("s3", "b", Role.TUTOR, 2_000_000_000, now=200.0)
    book.issue("s3", "b", Role.TUTOR, 2_000_000_000, now=200.0)  # the same seat again replaces its code
    with pytest.raises(PairingError) as full:
        book.issue("s4", "c", Role.TUTOR, 2_000_000_000, now=200.0)
    assert (full.value.status, full.value.message) == (503, "2 pairing codes are outstanding; try again in a minute")


async def test_pair_and_join_as_the_tutor(server: RunningServer, tmp_path: Path) -> None:
    session = "pair-1"
    page_token = server.token(session, Role.TUTOR, "li.jun")
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        refused = await http.post("/api/pairing", json={"session": session},
                                  headers={"authorization": f"Bearer {server.token(session, Role.STUDENT)}"})
        assert refused.status_code == 401
        got = await http.post("/api/pairing", json={"session": session},
                              headers={"authorization": f"Bearer {page_token}"})
        assert got.status_code == 200
        code = got.json()["code"]
        assert got.json()["expires_in_s"] == server.settings.pairing_code_ttl_s
    grant = await asyncio.to_thread(pair, f"http://{server.base}", code.lower())
    assert grant["session"] == session and grant["role"] == "tutor"
    with pytest.raises(GatewayPairingError, match="wrong or has expired"):
        await asyncio.to_thread(pair, f"http://{server.base}", code)  # once only
    student = server.client(session, Role.STUDENT)
    await student.connect()
    gw = Gateway(server.url(session), grant["token"], adapter=None, audio=None, spool=Spool(tmp_path / "s"))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    await student.wait_for(lambda: gw.joined > 0, timeout=10)
    assert gw.session.welcome is not None and gw.session.welcome.user_id == "li.jun"
    assert gw.session.welcome.role is Role.TUTOR
    stop.set()
    await asyncio.wait_for(task, 10)
    await student.close()


async def test_pair_and_present_a_class_from_the_writing_pad(server: RunningServer, tmp_path: Path) -> None:
    room = "class-0000000000fe"
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        viewer_token = server.token(room, Role.VIEWER, "s.1")
        refused = await http.post("/api/pairing", json={"session": room},
                                  headers={"authorization": f"Bearer {viewer_token}"})
        assert refused.status_code == 401
        got = await http.post("/api/pairing", json={"session": room},
                              headers={"authorization": f"Bearer {server.token(room, Role.PRESENTER, 't.he')}"})
        assert got.status_code == 200
    grant = await asyncio.to_thread(pair, f"http://{server.base}", got.json()["code"])
    assert grant["session"] == room and grant["role"] == "presenter"
    viewer = server.client(room, Role.VIEWER, "s.1")
    await viewer.connect()
    gw = Gateway(server.url(room), grant["token"], adapter=None, audio=None, spool=Spool(tmp_path / "s"),
                 role=Role.from_label(grant["role"]))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    await viewer.wait_for(lambda: gw.joined > 0, timeout=10)
    assert gw.session.welcome is not None and gw.session.welcome.role is Role.PRESENTER
    assert gw.session.welcome.user_id == "t.he"
    stop.set()
    await asyncio.wait_for(task, 10)
    await viewer.close()


async def test_claims_are_rate_limited_with_the_exact_answer(start_server: StartServer) -> None:
    server = await start_server(pairing_claims_per_minute=2)
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        for _ in range(2):
            assert (await http.post("/api/pairing/claim", json={"code": "ZZZ-ZZZ"})).status_code == 404
        r = await http.post("/api/pairing/claim", json={"code": "ZZZ-ZZZ"})
        assert r.status_code == 429
        assert r.json() == {"error": "more than 2 pairing attempts a minute; wait and try again"}
        bad = await http.post("/api/pairing/claim", content=b"[1]")
        assert bad.status_code == 422
