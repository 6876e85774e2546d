"""Every real tablet recording replayed through the whole gateway to the real server: the
student receives each stroke point for point, and the gateway's spool empties."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pen_gateway.gateway import Gateway
from pen_gateway.replay import ReplayAdapter, evemu_timeline
from pen_gateway.settings import GatewaySettings
from pen_gateway.spool import Spool
from tests.conftest import RunningServer
from wire import Role

from .evemu_data import DATA, RECORDINGS
from .kit import delivered, expected_strokes, running


@pytest.mark.parametrize("name", sorted(RECORDINGS))
async def test_recording_through_the_gateway(name: str, server: RunningServer, tmp_path: Path) -> None:
    desc = RECORDINGS[name]
    desc_lines = (DATA / desc).read_text().splitlines() if desc != name else None
    info, timeline = evemu_timeline((DATA / name).read_text().splitlines(), desc_lines)
    want = expected_strokes(info, timeline)
    session = f"replay-{len(name)}"
    student = server.client(session, Role.STUDENT)
    await student.connect()
    adapter = ReplayAdapter(DATA / name, desc=DATA / desc if desc != name else None, speed=8.0)
    spool = Spool(tmp_path / "spool")
    gw = Gateway(server.url(session), server.token(session, Role.TUTOR), adapter=adapter, audio=None, spool=spool,
                 settings=GatewaySettings(spool_dir=str(tmp_path)))
    async with running(gw):
        await gw.input_done.wait()
        await student.wait_for(lambda: gw.joined > 0 and gw.drained, timeout=20)
        pid = gw.session.replica.pid
        await student.wait_for(lambda: len(delivered(student, pid)) == len(want)
                               and all(s.ended for s in student.replica.strokes(pid)), timeout=20)
    assert delivered(student, pid) == want
    assert gw.session.errors == [] and student.errors == []
    assert not spool.ops
    await student.close()
    await asyncio.sleep(0)
