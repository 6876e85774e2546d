"""The InkML export describes its input devices and is valid InkML.

A session recorded through the real archiver (``test_recovery_equal._feed``: two participants,
strokes with pressure and tilt, an undo) and the committed protocol-1 recording are exported as
InkML and checked:

* against the W3C InkML 1.0 schema (``data/inkml/``, see its README), with lxml;
* for what the schema cannot say: every ``contextRef``, ``brushRef``, ``traceFormatRef``,
  ``inkSourceRef``, ``timestampRef`` and ``respectTo`` names an element of the right kind; each
  trace has as many values per point as its format has channels, each within the channel's
  ``min``/``max`` and of its ``type``;
* one ``inkSource`` per participant with its ``traceFormat`` inside (X, Y, F, T, OTx, OTy with
  their units) and the channels' resolution, and each trace in its author's device context;
* a pen-gateway device the manifest describes (``devices``) is its participant's inkSource, with
  its model and sample rate, through recovery and the loader;
* read back by the project's reader (``parse_inkml``): the strokes and points the loader gives
  (``replay(load(...))``) come back equal.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from lxml import etree  # type: ignore[import-untyped]

from recordings.archiver import Archiver
from recordings.export import export
from recordings.exports.inkml import CHANNELS, NS, parse_inkml
from recordings.exports.strokes import replay
from recordings.loader import load
from recordings.manifest import Device, Manifest, ManifestError, RecordingStatus, read_manifest, write_manifest
from recordings.recovery import recover
from tests.recordings.test_recovery_equal import _feed

pytestmark = pytest.mark.timeout(60)
DATA = Path(__file__).parent / "data"
SCHEMA_DIR = DATA / "inkml"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
REFS = {"contextRef": "context", "brushRef": "brush", "traceFormatRef": "traceFormat",
        "inkSourceRef": "inkSource", "timestampRef": "timestamp", "respectTo": "timestamp"}


class _LocalSchemas(etree.Resolver):  # type: ignore[misc]
    """The W3C's xml.xsd from data/inkml/ (a test does not reach the network)."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        if system_url.endswith("/xml.xsd"):
            return self.resolve_filename(str(SCHEMA_DIR / "xml.xsd"), context)
        return None


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser()
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "inkml.xsd"), parser))


@pytest.fixture
async def recorded(tmp_path: Path) -> Path:
    archiver = Archiver(tmp_path, 0.02, wall_clock=lambda: 1_790_000_000.25)
    await archiver.start()
    _feed(archiver)
    await archiver.close(archiver.recorders["eq-3"], "session ended")
    await archiver.stop()
    return tmp_path


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def check_structure(text: str) -> None:
    """The spec's constraints the schema leaves to prose (see the module docstring)."""
    root = ET.fromstring(text)
    ids = [e.get(XML_ID) for e in root.iter() if e.get(XML_ID)]
    assert len(ids) == len(set(ids)), "xml:id values are not unique"
    by_id = {e.get(XML_ID): e for e in root.iter() if e.get(XML_ID)}
    for element in root.iter():
        for attr, kind in REFS.items():
            if (target := element.get(attr)) is not None:
                assert target.startswith("#") and target[1:] in by_id, f"{attr}={target} resolves to nothing"
                assert by_id[target[1:]].tag == _q(kind), f"{attr}={target} is not a {kind}"
    for trace in root.iter(_q("trace")):
        context = by_id[trace.attrib["contextRef"][1:]]
        fmt = by_id[context.attrib["traceFormatRef"][1:]]
        channels = fmt.findall(_q("channel"))
        for chunk in (trace.text or "").split(","):
            values = chunk.split()
            assert len(values) == len(channels), f"{trace.get(XML_ID)}: {chunk!r}"
            for value, channel in zip(values, channels, strict=True):
                number = float(value)
                if channel.get("type") == "integer":
                    assert value.lstrip("-").isdigit(), f"{channel.get('name')}={value} is not an integer"
                if channel.get("min") is not None:
                    assert float(channel.attrib["min"]) <= number <= float(channel.attrib["max"])


def check_devices(text: str) -> dict[str, str]:
    """One inkSource per participant, as the module docstring says; returns each trace's source."""
    root = ET.fromstring(text)
    by_id = {e.get(XML_ID): e for e in root.iter() if e.get(XML_ID)}
    sources = root.findall(f"{_q('definitions')}/{_q('inkSource')}")
    participants = [a.get("type", "").removeprefix("participant.") for a in root.findall(_q("annotation"))
                    if a.get("type", "").startswith("participant.")]
    assert [s.get(XML_ID) for s in sources] == [f"device-{label}" for label in participants]
    for source in sources:
        assert source.get("model") == "browser pointer"
        fmt = source.find(_q("traceFormat"))
        assert fmt is not None
        got = [(c.get("name"), c.get("type"), c.get("units")) for c in fmt.findall(_q("channel"))]
        assert got == [("X", "integer", "page"), ("Y", "integer", "page"), ("F", "integer", "dev"),
                       ("T", "decimal", "ms"), ("OTx", "integer", "deg"), ("OTy", "integer", "deg")]
        assert [(c.get("name"), c.get("min"), c.get("max")) for c in fmt.findall(_q("channel"))][2] == (
            "F", "0", "4095")
        resolution = {p.get("channel"): (p.get("value"), p.get("units"))
                      for p in source.iter(_q("channelProperty")) if p.get("name") == "resolution"}
        assert resolution == {c.name: c.resolution for c in CHANNELS if c.resolution}
    out: dict[str, str] = {}
    for trace in root.iter(_q("trace")):
        context = by_id[trace.attrib["contextRef"][1:]]
        out[trace.attrib[XML_ID]] = context.attrib["inkSourceRef"][1:]
    return out


async def test_the_inkml_export_is_valid_and_names_each_device(schema: etree.XMLSchema, recorded: Path) -> None:
    text = export(recorded, "eq-3", "inkml").content.decode()
    document = etree.fromstring(text.encode())
    assert schema.validate(document), schema.error_log
    check_structure(text)
    sources = check_devices(text)
    data = load(recorded, "eq-3")
    strokes = replay(data)
    assert sources == {s.key: f"device-{data.label(s.pid)}" for s in strokes}
    assert sources == {"tutor-1": "device-tutor", "student-1": "device-student", "tutor-2": "device-tutor"}


async def test_the_reader_gives_back_the_recorded_strokes(recorded: Path) -> None:
    data = load(recorded, "eq-3")
    traces = parse_inkml(export(recorded, "eq-3", "inkml").content.decode())
    strokes = replay(data)
    assert [t.id for t in traces] == [s.key for s in sorted(strokes, key=lambda s: s.page)]
    by_key = {s.key: s for s in strokes}
    for trace in traces:
        s = by_key[trace.id]
        assert (trace.page, trace.removed) == (s.page, s.removed)
        assert trace.source == f"device-{data.label(s.pid)}" and trace.context == f"context-device-{data.label(s.pid)}"
        assert trace.points == [{"X": p.x, "Y": p.y, "F": p.pressure, "T": p.session_ms, "OTx": p.tilt_x,
                                 "OTy": p.tilt_y} for p in s.points]
        assert trace.time_offset == round(s.points[0].session_ms)
    assert {t.id for t in traces if t.removed} == {"tutor-2"}
    assert any(p["F"] and p["OTx"] for t in traces for p in t.points)  # pressure and tilt came through


def test_the_protocol_1_recording_exports_valid_inkml(schema: etree.XMLSchema, tmp_path: Path) -> None:
    shutil.copytree(DATA / "recording-v1" / "v1-demo-7", tmp_path / "v1-demo-7")
    text = export(tmp_path, "v1-demo-7", "inkml").content.decode()
    assert schema.validate(etree.fromstring(text.encode())), schema.error_log
    check_structure(text)
    assert set(check_devices(text).values()) == {"device-tutor", "device-student"}
    data = load(tmp_path, "v1-demo-7")
    by_page = sorted(replay(data), key=lambda s: s.page)  # traces come page by page, in stroke order
    assert [(t.id, len(t.points)) for t in parse_inkml(text)] == [(s.key, len(s.points)) for s in by_page]


async def test_a_pen_gateway_device_the_manifest_describes(schema: etree.XMLSchema, recorded: Path) -> None:
    """A manifest's ``devices`` (kept by recovery, read by the loader) gives the participant's
    inkSource the pen's model and sample rate; the others keep their browser pointer."""
    folder = recorded / "eq-3"
    pen = Device(1, "pen-gateway", "Example Pen 2", 200.0)
    live = dataclasses.replace(read_manifest(folder), status=RecordingStatus.RECORDING, devices=[pen])
    assert Manifest.from_json(live.to_json()) == live
    write_manifest(folder, live, check_lifecycle=False)  # as a crash would leave it, devices known
    assert recover(folder, now_unix=1_790_000_100.0) is not None
    assert read_manifest(folder).devices == [pen]
    data = load(recorded, "eq-3")
    assert data.devices == {1: pen}
    text = export(recorded, "eq-3", "inkml").content.decode()
    assert schema.validate(etree.fromstring(text.encode())), schema.error_log
    check_structure(text)
    root = ET.fromstring(text)
    sources = {s.get(XML_ID): s for s in root.iter(_q("inkSource"))}
    assert sources["device-tutor"].get("model") == "Example Pen 2"
    rate = sources["device-tutor"].find(_q("sampleRate"))
    assert rate is not None and rate.get("value") == "200"
    assert sources["device-student"].get("model") == "browser pointer"
    assert sources["device-student"].find(_q("sampleRate")) is None
    assert {t.id: t.source for t in parse_inkml(text)}["tutor-1"] == "device-tutor"


@pytest.mark.parametrize("bad", [{"pid": 0}, {"kind": "mouse"}, {"model": 3}, {"sample_rate_hz": 0},
                                 {"sample_rate_hz": "fast"}])
def test_a_manifest_device_that_does_not_validate(bad: dict[str, object]) -> None:
    doc = json.loads(Manifest("s", 1, RecordingStatus.RECORDING, 1.0, devices=[Device(1, "pen-gateway")]).to_json())
    doc["devices"][0].update(bad)
    with pytest.raises(ManifestError, match=r"devices\[0\]"):
        Manifest.from_json(json.dumps(doc))
    assert "devices" not in json.loads(Manifest("s", 1, RecordingStatus.RECORDING, 1.0).to_json())
