"""The server's logs: one JSON object a line when asked, and no token in any line. The last test
runs ``tutorwire serve`` as a process at debug level, uses join and API tokens the way clients
do (good ones, a forged one, an expired one, one sent as a bad bearer), and greps everything the
process wrote for every token it used."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from sessionserver.logs import REDACTED, JsonFormatter, Redact, redact
from tests.conftest import SECRET, free_port
from tests.inkdata import draw, handwriting
from wire import Role


def record(message: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("tutorwire.test", logging.WARNING, __file__, 1, message, args,
                            (type(exc), exc, exc.__traceback__) if exc else None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_the_fields_and_the_extras() -> None:
    line = JsonFormatter().format(record("join of %s refused", "li", session_id="demo", pid=2, code=2002))
    doc = json.loads(line)
    assert (doc["level"], doc["logger"], doc["message"]) == ("warning", "tutorwire.test", "join of li refused")
    assert (doc["session_id"], doc["pid"], doc["code"]) == ("demo", 2, 2002)
    assert doc["time"].endswith("Z") and "\n" not in line


def test_tokens_and_bearer_credentials_are_redacted_everywhere() -> None:
    token = TokenSigner(SECRET).mint("s", "u", Role.TUTOR, int(time.time()) + 60)
    assert redact(f"bad token {token}!") == f"bad token {REDACTED}!"
    assert redact("Authorization: Bearer abcdefgh12345678") == f"Authorization: Bearer {REDACTED}"
    try:
        raise ValueError(f"could not decode {token}")
    except ValueError as err:
        rec = record("failed with %s", token, exc=err)
    assert Redact().filter(rec)
    text = JsonFormatter().format(rec)
    assert token not in text and text.count(REDACTED) >= 2


@pytest.mark.timeout(60)
async def test_a_whole_server_run_logs_no_token_it_was_given(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env.update(TUTORWIRE_SECRET=SECRET, TUTORWIRE_LOG_LEVEL="debug", TUTORWIRE_LOG_FORMAT="json",
               TUTORWIRE_DEV_MODE="true", TUTORWIRE_RECORDINGS_DIR=str(tmp_path / "rec"),
               TUTORWIRE_MATCHER_WORKER="false")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("tutorwire")), "serve", "--port", str(port),
            env=env, stdout=out, stderr=subprocess.STDOUT)
    used: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                try:
                    await http.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # a process starting: nothing to await but its port
            signer = TokenSigner(SECRET)
            tutor_token = signer.mint("logs", "wang", Role.TUTOR, int(time.time()) + 60)
            expired = signer.mint("logs", "li", Role.STUDENT, int(time.time()) - 5)
            forged = TokenSigner("another-secret-0123456789abcdefghijkl").mint("logs", "li", Role.STUDENT,
                                                                             int(time.time()) + 60)
            login = (await http.get("/dev/login", params={"user": "li", "role": "student"})).json()["token"]
            joined = (await http.get("/dev/join", params={"session": "logs", "role": "student"})).json()["token"]
            used += [tutor_token, expired, forged, login, joined]
            url = f"ws://127.0.0.1:{port}/ws/session/logs"
            tutor = SessionClient(url, tutor_token, Role.TUTOR)
            student = SessionClient(url, joined, Role.STUDENT)
            await tutor.connect()
            await student.connect()
            await draw(tutor, handwriting(20, seed=1))
            for bad in (expired, forged):
                with pytest.raises(ConnectionRefusedError):
                    await SessionClient(url, bad, Role.STUDENT).connect()
            assert (await http.get("/api/me", headers={"authorization": f"Bearer {forged}"})).status_code == 401
            assert (await http.get("/api/me", headers={"authorization": f"Bearer {login}"})).status_code == 200
            await tutor.close()
            await student.close()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    assert all(json.loads(line)["level"] for line in lines)  # every line one JSON object
    assert [t for t in used if t in text] == []
    assert SECRET not in text
