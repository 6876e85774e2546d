"""A live class recorded through the real server: the presenter's and the stage speaker's ink and
voice, the hands, the questions, the stage's turns, moderation and the viewers' coming and going
(Roster events) on the recording's one timeline; every export and the replay's events endpoint
handle its many participants."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import struct
import time
from pathlib import Path

import httpx
import pytest

from recordings.export import FORMATS, export
from recordings.exports import inkml
from recordings.exports.strokes import replay
from recordings.loader import load
from recordings.ogg import SILENCE_PACKETS
from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from tests.audiokit import encode_tone
from tests.conftest import SECRET, StartServer
from tests.recordkit import assert_players_accept
from wire import Point, Role
from wire import messages as m

pytestmark = pytest.mark.timeout(90)
ROOM = "class-0000000000cc"
FILL = {p for p, _ in SILENCE_PACKETS}
VIEWERS = 6


async def draw(client: SessionClient, n: int, x0: int) -> None:
    stroke = await client.begin_stroke(page=0, device_t0=1_700_000_000_000)
    await client.add_points(stroke, [Point(x0 + 9 * i, 3000 + 4 * i, t=8 * i, pressure=500) for i in range(n)])
    await client.end_stroke(stroke)


async def speak(client: SessionClient, freq: float, packets: int) -> list[bytes]:
    payloads = encode_tone(freq, packets)
    for i, payload in enumerate(payloads):
        await client.send_audio(i, payload)
        await asyncio.sleep(0.02)  # a microphone's pace, not synchronisation
    return payloads


async def test_a_class_is_recorded_and_every_export_handles_it(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(recordings_dir=str(tmp_path), room_idle_ttl_s=0.05, ping_interval_s=0.2)
    presenter = srv.client(ROOM, Role.PRESENTER, "t.zhao")
    await presenter.connect()
    audience = [srv.client(ROOM, Role.VIEWER, f"s.{i}") for i in range(VIEWERS)]
    await asyncio.gather(*(v.connect() for v in audience))
    recorder = srv.hub.rooms[ROOM].recorder
    assert recorder is not None
    speaker, asker, quiet = audience[0], audience[1], audience[2]
    everyone = {c.pid for c in (presenter, *audience)}
    await presenter.wait_for(lambda: everyone <= set(presenter.replica.participants))

    await draw(presenter, 30, 1000)
    teacher_voice = await speak(presenter, 440.0, 25)
    await speak(asker, 550.0, 10)  # off stage: never forwarded, never recorded
    await speaker.send_op(lambda cseq: m.Hand(cseq, True))
    await asker.send_op(lambda cseq: m.Question(cseq, "为什么 x 是负数?"))
    await presenter.wait_for(lambda: presenter.replica.participants[speaker.pid].hand_ms > 0
                             and len(presenter.replica.questions) == 1)
    await presenter.send_op(lambda cseq: m.Stage(cseq, speaker.pid, m.StageAction.INVITE))
    await speaker.wait_for(lambda: speaker.replica.participants[speaker.pid].stage == 1)
    await speaker.send_op(lambda cseq: m.Stage(cseq, speaker.pid, m.StageAction.ACCEPT))
    await speaker.wait_for(lambda: speaker.replica.participants[speaker.pid].stage == 2)
    await draw(speaker, 12, 6000)
    student_voice = await speak(speaker, 660.0, 25)
    await presenter.wait_for(lambda: any(s.ended for s in presenter.replica.strokes(speaker.pid)))
    await presenter.send_op(lambda cseq: m.Stage(cseq, speaker.pid, m.StageAction.LEAVE))
    await asker.send_op(lambda cseq: m.Hand(cseq, True))
    await presenter.wait_for(lambda: presenter.replica.participants[asker.pid].hand_ms > 0)
    await presenter.send_op(lambda cseq: m.Moderate(cseq, 0, m.ModAction.LOWER_ALL_HANDS))
    await presenter.wait_for(lambda: presenter.replica.participants[asker.pid].hand_ms == 0)
    await quiet.close()  # one leaves early: its going is in a Roster
    await presenter.wait_for(lambda: not presenter.replica.participants[quiet.pid].online)
    for c in (presenter, *audience):
        if c is not quiet:
            await c.close()
    await asyncio.wait_for(recorder.done.wait(), 10)
    folder = tmp_path / recorder.folder.name

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    roles = {p["pid"]: (p["role"], p["user_id"]) for p in manifest["participants"]}
    assert roles == {presenter.pid: ("presenter", "t.zhao"), **{v.pid: ("viewer", f"s.{i}") for i, v in
                                                                 enumerate(audience)}}
    data = load(tmp_path, folder.name)

    # the floor on the timeline, in the order the room decided it
    floor = [(type(e.body).__name__, e.pid) for e in data.events if isinstance(e.body, m.ClassOp)]
    assert floor == [("Hand", speaker.pid), ("Question", asker.pid), ("Stage", presenter.pid),
                     ("Stage", speaker.pid), ("Stage", presenter.pid), ("Hand", asker.pid),
                     ("Moderate", presenter.pid)]
    rosters = [e.body for e in data.events if isinstance(e.body, m.Roster)]
    comings = [(c.pid, c.online) for r in rosters for c in r.changes]
    assert {pid for pid, online in comings if online} == {v.pid for v in audience}
    assert (quiet.pid, False) in comings
    assert [e.session_ms for e in data.events] == sorted(e.session_ms for e in data.events)

    # voices: the presenter's and the stage speaker's, as sent (never re-encoded); nobody else's
    assert set(data.audio) == {presenter.pid, speaker.pid}
    heard = {pid: [p for p, _ in track.packets if p not in FILL] for pid, track in data.audio.items()}
    assert heard == {presenter.pid: teacher_voice, speaker.pid: student_voice}
    assert_players_accept(folder / f"audio-viewer-{speaker.pid}.opus")

    # every export
    made = {fmt: export(tmp_path, folder.name, fmt) for fmt in FORMATS}
    assert all(x.content for x in made.values()), [f for f, x in made.items() if not x.content]
    label = f"viewer-{speaker.pid}"
    assert {s.label for s in replay(data)} == {"presenter", label}
    assert {t.id.rsplit("-", 1)[0] for t in inkml.parse_inkml(made["inkml"].content.decode())} == {"presenter", label}
    seats = {r["seat"] for r in csv.DictReader(io.StringIO(made["csv"].content.decode()))}
    assert seats == {"presenter", label}
    doc = json.loads(made["json"].content)
    assert len(doc["roster"]) == VIEWERS + 1 and doc["participants"][label] == "s.0"
    rows = {row["type"]: row for row in doc["events"]}
    assert rows["question"]["text"] == "为什么 x 是负数?" and rows["question"]["seat"] == f"viewer-{asker.pid}"
    assert rows["hand"]["raised"] is True and rows["moderate"]["action"] == "lower_all_hands"
    assert {r["action"] for r in doc["events"] if r["type"] == "stage"} == {"invite", "accept", "leave"}
    assert any(c["pid"] == quiet.pid and not c["online"] for r in doc["events"] if r["type"] == "roster"
               for c in r["changes"])
    wav = made["wav"].content
    assert wav[:4] == b"RIFF" and struct.unpack("<I", wav[40:44])[0] > 48_000  # > 0.5 s of 16-bit mono
    summ = json.loads(made["summary"].content)
    assert set(summ["speakers"]) >= {"presenter", label}
    assert summ["speakers"][label]["points"] == 12
    assert b"<svg" in made["svg"].content and b"presenter" in made["html"].content

    # the replay page's endpoint: the participants, and which of them have a voice to fetch
    token = TokenSigner(SECRET).mint_api("r.1", "researcher", int(time.time()) + 600)
    async with httpx.AsyncClient(base_url=f"http://{srv.base}", headers={"authorization": f"Bearer {token}"}) as http:
        answer = (await http.get(f"/api/recordings/{folder.name}/events")).json()
    speaks = {p["label"]: p["speaks"] for p in answer["participants"]}
    assert speaks == {"presenter": True, label: True, **{f"viewer-{v.pid}": False for v in audience[1:]}}
