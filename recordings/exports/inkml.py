"""InkML 1.0 (W3C Recommendation, 20 September 2011, namespace http://www.w3.org/2003/InkML).

One ``<ink>`` document per recording:

* ``<definitions>`` holds the ``<timestamp>`` of session clock 0; per input device (``devices``:
  each participant's browser pointer) an ``<inkSource>`` with its ``<traceFormat>`` (channels X, Y
  in page units, F pressure 0..4095, T session ms, OTx/OTy tilt in degrees), its ``<sampleRate>``
  where known and the channels' ``resolution`` (``<channelProperties>``), and a ``<context>``
  naming them (``inkSourceRef``, ``traceFormatRef``, ``timestampRef``); and one ``<brush>`` per
  distinct tool, color and width.
* one ``<traceGroup>`` per page (``<annotation type="page">``), holding one ``<trace>`` per
  stroke in the order strokes began; ``xml:id`` is ``{label}-{stroke}`` (``tutor-12``; labels:
  ``model.py``); each trace's ``contextRef`` names its author's device context.
* strokes removed by undo or clear are kept; the page's ``<annotation type="removed">`` lists
  their trace ids (a ``trace`` holds only point data, so the flag lives on the group).

Time. InkML gives two ways, both used here and consistent with each other:

* the T channel (the reserved channel names table of the spec's traceFormat section: "T: time
  (of the sample point)") with ``units="ms"`` and ``respectTo`` pointing at the ``<timestamp>``
  (``channel`` element, attribute respectTo: the values are relative to that reference), so
  each point's T is its session time in ms;
* each trace's ``timeOffset`` (``trace`` element: the start of the trace relative to the
  timestamp of its context, in ms) and ``duration``, rounded to whole ms (the schema's type for
  both is ``xsd:integer``; T holds the exact times).

The document validates against the W3C InkML 1.0 schema (``tests/recordings/test_inkml_source.py``).

The ``<timestamp>`` (``timestamp`` element, attribute ``time``: absolute time in ms since
1970-01-01 UTC) is the recording's start. Section numbers are not quoted because they differ
between the drafts and the Recommendation; the element names above are those of the 2011 REC.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from wire import HAS_PRESSURE
from wire import messages as m

from .model import RecordingData
from .strokes import Stroke, ms_text, replay

NS = "http://www.w3.org/2003/InkML"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_TIMESTAMP_ID = "session-start"
PAGE_UNIT = "page"  # a user unit (the spec allows any): the wire protocol's integer page coordinate


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel of a device's ``traceFormat``, and its ``resolution`` channel property."""

    name: str
    type: str
    min: int | None
    max: int | None
    units: str | None
    resolution: tuple[str, str] | None  # (value, units): the smallest step a value can take


# What every device of a recording reports, as the wire carries it (wire.ink.Point): integer page
# coordinates, pressure 0..4095 (0 when the device has none), tilt in whole degrees, and the
# point's session time in ms (decimal: device times mapped with a measured clock offset).
CHANNELS = (
    Channel("X", "integer", 0, 65535, PAGE_UNIT, ("1", PAGE_UNIT)),
    Channel("Y", "integer", 0, 65535, PAGE_UNIT, ("1", PAGE_UNIT)),
    Channel("F", "integer", 0, 4095, "dev", ("1", "dev")),
    Channel("T", "decimal", None, None, "ms", None),
    Channel("OTx", "integer", -90, 90, "deg", ("1", "deg")),
    Channel("OTy", "integer", -90, 90, "deg", ("1", "deg")),
)


@dataclass(frozen=True, slots=True)
class InkDevice:
    """An input device of the recording, written as an ``inkSource`` with its ``traceFormat`` and a
    ``context`` that the device's traces name with ``contextRef``. ``sample_rate_hz`` is None
    where the rate is not known (a browser's pointer events come as the browser pleases)."""

    id: str  # the inkSource's xml:id; the context is context-{id}, the format format-{id}
    pid: int
    model: str
    description: str
    sample_rate_hz: float | None = None

    @property
    def context_id(self) -> str:
        return f"context-{self.id}"


def devices(data: RecordingData) -> list[InkDevice]:
    """The recording's input devices, one per participant in export order: the device the
    recording describes for it (``RecordingData.devices``: a pen gateway's pen, with its model and
    sample rate), else its browser pointer."""
    out: list[InkDevice] = []
    for pid in data.people():
        label, described = data.label(pid), data.devices.get(pid)
        if described is not None and described.kind == "pen-gateway":
            out.append(InkDevice(f"device-{label}", pid, described.model or "pen gateway",
                                 f"{label}: a pen through the pen gateway", described.sample_rate_hz))
        else:
            out.append(InkDevice(f"device-{label}", pid, "browser pointer",
                                 f"{label}: pointer events (pen, touch or mouse) of the web client"))
    return out


@dataclass(frozen=True, slots=True)
class InkTrace:
    """A trace as ``parse_inkml`` reads it back."""

    id: str
    page: int
    brush: str | None
    time_offset: float | None
    duration: float | None
    removed: bool
    points: list[dict[str, float]]  # channel name -> value, one dict per point
    context: str | None = None  # the xml:id its contextRef names
    source: str | None = None  # the xml:id of the inkSource of that context


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _brush_id(s: Stroke) -> str:
    return f"{s.tool.name.lower()}-{s.color:08x}-{s.width}"


def _add_brush(parent: ET.Element, s: Stroke) -> None:
    brush = ET.SubElement(parent, _q("brush"), {_XML_ID: _brush_id(s)})
    rgb, alpha = s.color >> 8, s.color & 0xFF

    def prop(name: str, value: str) -> None:
        ET.SubElement(brush, _q("brushProperty"), {"name": name, "value": value})

    prop("width", str(s.width))  # in page units, like X and Y
    prop("color", f"#{rgb:06X}")
    prop("transparency", str(255 - alpha))  # 0 opaque .. 255 invisible
    prop("tip", "ellipse")
    if s.tool is m.Tool.HIGHLIGHTER:
        prop("rasterOp", "maskPen")
    prop("ignorePressure", "false" if s.flags & HAS_PRESSURE else "true")
    ET.SubElement(brush, _q("annotation"), {"type": "tool"}).text = s.tool.name.lower()


def _add_device(defs: ET.Element, device: InkDevice) -> None:
    source = ET.SubElement(defs, _q("inkSource"), {_XML_ID: device.id, "model": device.model,
                                                   "description": device.description})
    fmt = ET.SubElement(source, _q("traceFormat"), {_XML_ID: f"format-{device.id}"})
    for c in CHANNELS:
        attrs = {"name": c.name, "type": c.type}
        if c.min is not None and c.max is not None:
            attrs.update(min=str(c.min), max=str(c.max))
        if c.units:
            attrs["units"] = c.units
        if c.name == "T":
            attrs["respectTo"] = f"#{_TIMESTAMP_ID}"
        ET.SubElement(fmt, _q("channel"), attrs)
    if device.sample_rate_hz is not None:
        ET.SubElement(source, _q("sampleRate"), {"uniform": "true", "value": ms_text(device.sample_rate_hz)})
    props = ET.SubElement(source, _q("channelProperties"))
    for c in CHANNELS:
        if c.resolution is not None:
            value, units = c.resolution
            ET.SubElement(props, _q("channelProperty"), {"channel": c.name, "name": "resolution",
                                                         "value": value, "units": units})
    ET.SubElement(defs, _q("context"), {_XML_ID: device.context_id, "inkSourceRef": f"#{device.id}",
                                        "traceFormatRef": f"#format-{device.id}",
                                        "timestampRef": f"#{_TIMESTAMP_ID}"})


def _trace_text(s: Stroke) -> str:
    return ", ".join(
        f"{p.x} {p.y} {p.pressure} {ms_text(p.session_ms)} {p.tilt_x} {p.tilt_y}" for p in s.points
    )


def to_inkml(data: RecordingData) -> str:
    """The recording's ink as an InkML 1.0 document (UTF-8 text with an XML declaration)."""
    ET.register_namespace("", NS)
    strokes = replay(data)
    ink = ET.Element(_q("ink"), {"documentID": f"tutorwire:{data.session_id}"})
    for name, value in (("session_id", data.session_id), ("status", data.status),
                        ("duration_ms", str(data.duration_ms))):
        ET.SubElement(ink, _q("annotation"), {"type": name}).text = value
    for label, user in data.user_ids().items():
        ET.SubElement(ink, _q("annotation"), {"type": f"participant.{label}"}).text = user
    defs = ET.SubElement(ink, _q("definitions"))
    ET.SubElement(defs, _q("timestamp"), {_XML_ID: _TIMESTAMP_ID, "time": str(round(data.started_unix * 1000))})
    context_of: dict[int, str] = {}
    for device in devices(data):
        _add_device(defs, device)
        context_of.setdefault(device.pid, device.context_id)
    seen_brushes: set[str] = set()
    for s in strokes:
        if _brush_id(s) not in seen_brushes:
            seen_brushes.add(_brush_id(s))
            _add_brush(defs, s)
    for page in sorted({s.page for s in strokes}):
        group = ET.SubElement(ink, _q("traceGroup"), {_XML_ID: f"page-{page}"})
        ET.SubElement(group, _q("annotation"), {"type": "page"}).text = str(page)
        on_page = [s for s in strokes if s.page == page]
        removed = [s.key for s in on_page if s.removed]
        if removed:
            ET.SubElement(group, _q("annotation"), {"type": "removed"}).text = " ".join(removed)
        for s in on_page:
            attrs = {_XML_ID: s.key, "brushRef": f"#{_brush_id(s)}", "contextRef": f"#{context_of[s.pid]}"}
            if s.points:  # whole ms: the schema's integer (the T channel has the exact times)
                first, last = round(s.points[0].session_ms), round(s.points[-1].session_ms)
                attrs["timeOffset"] = str(first)
                attrs["duration"] = str(last - first)
            ET.SubElement(group, _q("trace"), attrs).text = _trace_text(s)
    ET.indent(ink)
    return ET.tostring(ink, encoding="unicode", xml_declaration=True) + "\n"


def _number(text: str) -> float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _channels(fmt: ET.Element | None) -> list[str]:
    return [c.attrib["name"] for c in fmt.findall(_q("channel"))] if fmt is not None else ["X", "Y"]


def parse_inkml(text: str) -> list[InkTrace]:
    """The traces of an InkML document as ``to_inkml`` writes it (explicit values only: no
    difference or velocity encodings, no ``'``/``"`` prefixes), in document order. A trace's
    channels are those of its context's ``traceFormat`` (by ``traceFormatRef``, or the format of
    its ``inkSourceRef``), else those of the document's first ``traceFormat``."""
    root = ET.fromstring(text)
    by_id = {e.get(_XML_ID): e for e in root.iter() if e.get(_XML_ID)}

    def ref(element: ET.Element | None, attr: str) -> ET.Element | None:
        target = element.get(attr) if element is not None else None
        return by_id.get(target.removeprefix("#")) if target else None

    default = _channels(root.find(f".//{_q('traceFormat')}"))
    out: list[InkTrace] = []
    for group in root.iter(_q("traceGroup")):
        page = -1
        removed: set[str] = set()
        for note in group.findall(_q("annotation")):
            if note.get("type") == "page":
                page = int(note.text or "-1")
            elif note.get("type") == "removed":
                removed = set((note.text or "").split())
        for trace in group.findall(_q("trace")):
            tid = trace.get(_XML_ID, "")
            context = ref(trace, "contextRef")
            if context is None:
                context = ref(group, "contextRef")
            source = ref(context, "inkSourceRef")
            fmt = ref(context, "traceFormatRef")
            if fmt is None and source is not None:
                fmt = source.find(_q("traceFormat"))
            names = _channels(fmt) if fmt is not None else default
            points = [
                dict(zip(names, (_number(v) for v in chunk.split()), strict=True))
                for chunk in (trace.text or "").split(",") if chunk.strip()
            ]
            offset, duration = trace.get("timeOffset"), trace.get("duration")
            out.append(InkTrace(
                tid, page, (trace.get("brushRef") or "").lstrip("#") or None,
                None if offset is None else _number(offset), None if duration is None else _number(duration),
                tid in removed, points,
                context.get(_XML_ID) if context is not None else None,
                source.get(_XML_ID) if source is not None else None,
            ))
    return out
