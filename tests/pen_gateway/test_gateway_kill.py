"""SIGKILL of the gateway process in the middle of a stroke, during an outage (so the spool holds
ink the server never saw), then a restart on the same spool: the student gets every point the
killed process had spooled, once, in order, and the stroke it left open is ended."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from pathlib import Path

import pytest

from pen_gateway.replay import evemu_timeline
from pen_gateway.spool import MAGIC, OP, parse_records
from tests.conftest import RunningServer
from tests.impair import ImpairedLink
from wire import Role, decode_frame
from wire import messages as m
from wire.limits import Limits

from .evemu_data import DATA
from .kit import delivered, expected_strokes

ROOT = Path(__file__).resolve().parents[2]
NAME = "UC-LOGIC Tablet WP5540U Pen.events"


def spooled_points(path: Path) -> int:
    records, _ = parse_records(path.read_bytes()[len(MAGIC):])
    limits = Limits(max_points_per_message=2**31, max_points_per_stroke=2**31, max_frame_bytes=1 << 20)
    ops = [decode_frame(p, limits) for k, p in records if k == OP]
    return sum(op.count for op in ops if isinstance(op, m.StrokePoints))


async def gateway(server: RunningServer, port: int, spool: Path, session: str,
                  *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pen_gateway", "--server", f"http://127.0.0.1:{port}", "--session", session,
        "--token", server.token(session, Role.TUTOR), "--spool", str(spool), "--quiet", *extra, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


@pytest.mark.timeout(90)
async def test_sigkill_mid_session_and_restart_lose_nothing(server: RunningServer, tmp_path: Path) -> None:
    session = "pen-kill"
    link = await ImpairedLink(server.port).start()
    student = server.client(session, Role.STUDENT)
    await student.connect()
    info, once = evemu_timeline((DATA / NAME).read_text().splitlines())
    want = expected_strokes(info, once) * 3
    spool = tmp_path / "spool"
    first = await gateway(server, link.port, spool, session, "--device", f"replay:{DATA / NAME}", "--loops", "3",
                          "--speed", "2", "--audio", "none")
    await student.wait_for(lambda: student.replica.pid_of(Role.TUTOR) is not None, timeout=20)
    tutor = student.replica.pid_of(Role.TUTOR)
    assert tutor is not None
    pid: int = tutor
    # the first stroke arrives whole, then the network goes away mid-way through the second
    await student.wait_for(lambda: len(delivered(student, pid)) >= 2 and len(delivered(student, pid)[1]) > 10,
                           timeout=30)
    await link.go_down()
    before = sum(len(s) for s in delivered(student, pid))
    await asyncio.sleep(1.0)  # the tutor writes on, offline: only the spool has this ink
    first.send_signal(signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL
    shutil.copy(spool / "spool", tmp_path / "at-kill")
    await link.come_back()
    second = await gateway(server, link.port, spool, session, "--device", "none", "--audio", "none",
                           "--exit-when-done", "--verbose")
    _, err = await asyncio.wait_for(second.communicate(), 30)
    assert second.returncode == 0, err.decode()
    got = delivered(student, pid)
    await student.wait_for(lambda: all(s.ended for s in student.replica.strokes(pid)), timeout=10)
    got = delivered(student, pid)
    total = sum(len(s) for s in got)
    assert total > before  # what was written offline arrived after the restart
    # each stroke is the written one, the last a prefix of it (the kill cut it): nothing lost
    # before the cut, nothing twice
    assert got[:-1] == want[: len(got) - 1]
    assert got[-1] == want[len(got) - 1][: len(got[-1])]
    # nothing the killed process had spooled is missing (the spool keeps unacknowledged ops only,
    # so delivered-before-the-outage plus spooled covers all the ink it took)
    assert total >= spooled_points(tmp_path / "at-kill")
    assert all(s.ended for s in student.replica.strokes(pid))
    assert "resuming" in err.decode()  # the restart said it took the spool's ink
    await student.close()
