"""The `tutorwire` command as a user runs it: a real server process, dev tokens, minted tokens."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from sessionserver.cli import main
from sessionserver.client import SessionClient
from tests.conftest import free_port
from wire import Point, Role

TUTORWIRE = os.path.join(os.path.dirname(sys.executable), "tutorwire")


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    recordings = tempfile.TemporaryDirectory(prefix="tutorwire-cli-")  # not ./recordings
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    full_env |= {"TUTORWIRE_RECORDINGS_DIR": recordings.name} | (env or {})
    proc = subprocess.Popen([TUTORWIRE, "serve", "--port", str(port), *args], env=full_env,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # uvicorn says when it is listening
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail(f"server exited with {proc.wait()}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        recordings.cleanup()


async def test_serve_dev_mode_lets_two_clients_exchange_ink() -> None:
    with serving("--dev") as base:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{base}/healthz")).json()["status"] == "ok"
            grants = [(await http.get(f"http://{base}/dev/join", params={"session": "demo", "role": r})).json()
                      for r in ("tutor", "student")]
            bad = await http.get(f"http://{base}/dev/join", params={"role": "admin"})
            assert bad.status_code == 422 and bad.json()["field"] == "role"
            # the user is bounded in UTF-8 bytes, as the join checks it (docs/protocol.md 2.1)
            long_name = await http.get(f"http://{base}/dev/join", params={"user": "李" * 86})  # 258 bytes
            assert long_name.status_code == 422 and long_name.json()["field"] == "user"
            fits = await http.get(f"http://{base}/dev/join", params={"user": "李" * 85})  # 255 bytes
            assert fits.status_code == 200
        tutor, student = (SessionClient(f"ws://{base}{g['ws_path']}", g["token"], Role.from_label(g["role"]))
                          for g in grants)
        await tutor.connect()
        await student.connect()
        stroke = await tutor.begin_stroke(0)
        points = [Point(100 + i, 200 + i, 4 * i, 500) for i in range(10)]
        await tutor.add_points(stroke, points)
        await tutor.end_stroke(stroke)
        await student.wait_for(lambda: any(s.ended for s in student.replica.strokes(tutor.pid)))
        assert student.replica.strokes(tutor.pid)[0].points == points
        await tutor.close()
        await student.close()


async def test_without_dev_mode_there_are_no_dev_tokens_and_minted_tokens_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "a-production-secret-of-enough-length"
    monkeypatch.setenv("TUTORWIRE_SECRET", secret)
    assert main(["token", "--session", "cls1", "--user", "t1", "--role", "tutor"]) == 0
    token = capsys.readouterr().out.strip()
    with serving(env={"TUTORWIRE_SECRET": secret}) as base:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{base}/dev/join")).status_code == 404
        client = SessionClient(f"ws://{base}/ws/session/cls1", token, Role.TUTOR)
        welcome = await client.connect()
        assert welcome.user_id == "t1" and welcome.role is Role.TUTOR and welcome.pid == 1
        await client.close()


def test_token_needs_the_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TUTORWIRE_SECRET", raising=False)
    assert main(["token", "--session", "s", "--user", "u", "--role", "student"]) == 2
    assert "TUTORWIRE_SECRET" in capsys.readouterr().err


def test_a_bad_setting_is_reported_by_name() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    result = subprocess.run([TUTORWIRE, "serve"], env=env | {"TUTORWIRE_MAX_PAGES": "many"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "TUTORWIRE_MAX_PAGES='many' is not a valid int" in result.stderr
