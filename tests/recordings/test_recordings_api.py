"""Recordings over HTTP and the CLI: who may see what, every export format of a real recorded
session, the replay API's time ranges, and audio served with range requests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from recordings.exports.inkml import parse_inkml
from sessionserver.auth import TokenSigner
from tests.audiokit import encode_tone
from tests.conftest import SECRET, StartServer
from wire import Point, Role


def bearer(user: str, role: str) -> dict[str, str]:
    return {"authorization": "Bearer " + TokenSigner(SECRET).mint_api(user, role, int(time.time()) + 600)}


async def recorded_session(start_server: StartServer, root: Path) -> tuple[str, list[Point], str]:
    srv = await start_server(recordings_dir=str(root), room_idle_ttl_s=0.05, ping_interval_s=0.2)
    tutor = srv.client("api-rec", Role.TUTOR, "wang")
    student = srv.client("api-rec", Role.STUDENT, "stu7")
    await tutor.connect()
    await student.connect()
    recorder = srv.hub.rooms["api-rec"].recorder
    assert recorder is not None
    points = [Point(500 + 9 * i, 800 + 4 * i, t=8 * i, pressure=300 + 5 * i) for i in range(24)]
    stroke = await tutor.begin_stroke()
    for i in range(0, 24, 3):
        await tutor.add_points(stroke, points[i:i + 3])
    await tutor.end_stroke(stroke)
    for i, payload in enumerate(encode_tone(440.0, 25)):
        await tutor.send_audio(i, payload)
        await asyncio.sleep(0.02)  # a microphone's pace
    await student.wait_for(lambda: any(s.ended for s in student.replica.strokes(tutor.pid)))
    await tutor.close()
    await student.close()
    await asyncio.wait_for(recorder.done.wait(), 10)
    return srv.base, points, recorder.folder.name


async def test_exports_access_replay_and_ranges(start_server: StartServer, tmp_path: Path) -> None:
    base, points, rec = await recorded_session(start_server, tmp_path)
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        assert (await http.get("/api/recordings")).status_code == 401
        mine = (await http.get("/api/recordings", headers=bearer("stu7", "student"))).json()
        assert [r["id"] for r in mine] == [rec]
        assert (await http.get("/api/recordings", headers=bearer("other", "student"))).json() == []
        assert (await http.get(f"/api/recordings/{rec}", headers=bearer("other", "student"))).status_code == 403
        manifest = (await http.get(f"/api/recordings/{rec}", headers=bearer("stu7", "student"))).json()
        assert manifest["format"] == 2 and manifest["protocol"] == 2 and manifest["status"] == "complete"
        assert [(p["pid"], p["role"], p["user_id"]) for p in manifest["participants"]] == [
            (1, "tutor", "wang"), (2, "student", "stu7")]
        assert set(manifest["clock_offsets"]) <= {"1", "2"}
        assert (await http.get("/api/recordings/nope-1", headers=bearer("r", "researcher"))).status_code == 404
        assert (await http.get("/api/recordings/..%2F..%2Fetc-1", headers=bearer("r", "researcher"))).status_code == 404
        staff = bearer("r", "researcher")
        bad = await http.get(f"/api/recordings/{rec}/export/pdf", headers=staff)
        assert bad.status_code == 422 and bad.json()["field"] == "format"
        inkml = (await http.get(f"/api/recordings/{rec}/export/inkml", headers=staff)).text
        traces = parse_inkml(inkml)
        assert [(round(p["X"]), round(p["Y"]), round(p["F"])) for p in traces[0].points] == [
            (p.x, p.y, p.pressure) for p in points]
        csv_rows = (await http.get(f"/api/recordings/{rec}/export/csv", headers=staff)).text.strip().splitlines()
        assert len(csv_rows) == 1 + len(points)
        doc = (await http.get(f"/api/recordings/{rec}/export/json", headers=staff)).json()
        assert doc["session_id"] == "api-rec" and doc["audio"]["tutor"]["packets"] >= 25
        wav = await http.get(f"/api/recordings/{rec}/export/wav", headers=staff)
        assert wav.content[:4] == b"RIFF" and wav.headers["content-type"] == "audio/wav"
        html = (await http.get(f"/api/recordings/{rec}/export/html", headers=staff)).text
        assert "<canvas" in html and "http://" not in html and "https://" not in html
        summary = (await http.get(f"/api/recordings/{rec}/export/summary", headers=staff)).json()
        assert summary
        ET.fromstring((await http.get(f"/api/recordings/{rec}/export/svg", headers=staff)).text)
        events = (await http.get(f"/api/recordings/{rec}/events", headers=bearer("stu7", "student"))).json()
        assert any(e.get("type") == "stroke_points" for e in events["events"])
        assert events["participants"] == [
            {"pid": 1, "role": "tutor", "user_id": "wang", "label": "tutor", "speaks": True},
            {"pid": 2, "role": "student", "user_id": "stu7", "label": "student", "speaks": False}]
        assert {(e["seat"], e["pid"]) for e in events["events"]} == {("tutor", 1), ("student", 2)}
        last = max(e["session_ms"] for e in events["events"])
        later = (await http.get(f"/api/recordings/{rec}/events", params={"from_ms": last + 1},
                                headers=staff)).json()
        assert later["events"] == []
        for hostile in ("-1", "\u00b2", "1" * 5000, "١٢", " 1"):  # the probe's superscript two and 5,000 digits
            bad = await http.get(f"/api/recordings/{rec}/events", params={"from_ms": hostile}, headers=staff)
            assert (bad.status_code, bad.json()["field"]) == (422, "from_ms"), hostile
        whole = await http.get(f"/api/recordings/{rec}/audio/tutor.opus", headers=staff)
        assert whole.status_code == 200 and whole.content[:4] == b"OggS"
        part = await http.get(f"/api/recordings/{rec}/audio/tutor.opus", headers={**staff, "range": "bytes=4-99"})
        assert part.status_code == 206 and part.content == whole.content[4:100]
        assert (await http.get(f"/api/recordings/{rec}/audio/nobody.opus", headers=staff)).status_code == 404
        by_pid = await http.get(f"/api/recordings/{rec}/audio/tutor-1.opus", headers=staff)
        assert by_pid.status_code == 200 and by_pid.content == whole.content
        assert (await http.get(f"/api/recordings/{rec}/audio/student.opus", headers=staff)).status_code == 404
        corpus = (await http.get("/api/recordings/corpus.csv", headers=staff)).text.splitlines()
        assert len(corpus) == 2
        assert (await http.get("/api/recordings/corpus.csv", headers=bearer("stu7", "student"))).status_code == 403
    await asyncio.to_thread(check_cli, tmp_path, rec, points)


def check_cli(root: Path, rec: str, points: list[Point]) -> None:
    cli = [sys.executable, "-m", "sessionserver.cli", "recordings", "--dir", str(root)]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, check=True).stdout
    assert rec in listed and "complete" in listed
    out = root / "out.inkml"
    subprocess.run([*cli, "export", rec, "--format", "inkml", "--output", str(out)], check=True)
    assert parse_inkml(out.read_text())[0].points[0]["X"] == points[0].x
    summary_cli = json.loads(subprocess.run([*cli, "summary", rec], capture_output=True, check=True).stdout)
    assert summary_cli
    missing = subprocess.run([*cli, "export", "nope-1", "--format", "csv"], capture_output=True, text=True)
    assert missing.returncode == 1 and "no recording" in missing.stderr


async def test_an_ended_session_is_listed_complete_at_once(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(recordings_dir=str(tmp_path), room_idle_ttl_s=600)  # no eviction to wait for
    tutor = srv.client("ends-now", Role.TUTOR, "wang")
    student = srv.client("ends-now", Role.STUDENT, "stu7")
    await tutor.connect()
    await student.connect()
    stroke = await tutor.begin_stroke()
    await tutor.add_points(stroke, [Point(10 * i, 10 * i, t=8 * i, pressure=300) for i in range(8)])
    await tutor.end_stroke(stroke)
    await student.wait_for(lambda: any(s.ended for s in student.replica.strokes(tutor.pid)))
    async with httpx.AsyncClient(base_url=f"http://{srv.base}") as http:
        live = (await http.get("/api/recordings", headers=bearer("r", "researcher"))).json()
        assert [r["status"] for r in live] == ["recording"]  # its participants follow at the next flush
        t0 = time.monotonic()
        srv.hub.end_session("ends-now", "its tutor ended it")
        (row,) = (await http.get("/api/recordings", headers=bearer("stu7", "student"))).json()
        assert row["status"] == "complete" and row["participants"] == ["wang", "stu7"]
        assert time.monotonic() - t0 < 2.0
        doc = (await http.get(f"/api/recordings/{row['id']}/export/json", headers=bearer("r", "researcher"))).json()
        assert doc["status"] == "complete" and sum(e["type"] == "stroke_points" for e in doc["events"]) >= 1
    await tutor.wait_closed()
    await student.wait_closed()
