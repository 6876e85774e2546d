"""Item 3 of issue 23: a JSON log line carries the session id, the participant and the code as
fields of their own, not only inside the message: the server's lines about a join and a close,
formatted as ``TUTORWIRE_LOG_FORMAT=json`` formats them."""

from __future__ import annotations

import json
import logging

import pytest

from sessionserver.logs import JsonFormatter
from tests.conftest import StartServer
from wire import CloseCode, Role


async def test_join_and_close_lines_carry_session_participant_and_code(
        start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    server = await start_server()
    caplog.set_level(logging.INFO, logger="tutorwire")
    tutor = server.client("logged-1", Role.TUTOR)
    await tutor.connect()
    again = server.client("logged-1", Role.TUTOR)  # the same participant: the first is replaced (4009)
    await again.connect()
    assert await tutor.wait_closed() == CloseCode.REPLACED
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name.startswith("tutorwire.")]
    joined = [line for line in lines if "joined" in line["message"]]
    closing = [line for line in lines if line["message"].startswith("closing")]
    assert joined and all(line["session_id"] == "logged-1" and line["pid"] == 1 for line in joined)
    assert any(line.get("code") == CloseCode.REPLACED and line["session_id"] == "logged-1" and line["pid"] == 1
               for line in closing)
    await again.close()
