"""InkML 1.0 (W3C Recommendation, 20 September 2011, namespace http://www.w3.org/2003/InkML).

One ``<ink>`` document per recording:

* ``<definitions>`` holds one ``<context>`` with the ``<traceFormat>`` (channels X, Y, F, T, OTx,
  OTy) and the ``<timestamp>`` of session clock 0, and one ``<brush>`` per distinct tool, color
  and width.
* one ``<traceGroup>`` per page (``<annotation type="page">``), holding one ``<trace>`` per
  stroke in the order strokes began; ``xml:id`` is ``{label}-{stroke}`` (``tutor-12``; labels: ``model.py``).
* strokes removed by undo or clear are kept; the page's ``<annotation type="removed">`` lists
  their trace ids (a ``trace`` holds only point data, so the flag lives on the group).

Time. InkML gives two ways, both used here and consistent with each other:

* the T channel (the reserved channel names table of the spec's traceFormat section: "T: time
  (of the sample point)") with ``units="ms"`` and ``respectTo`` pointing at the ``<timestamp>``
  (``channel`` element, attribute respectTo: the values are relative to that reference), so
  each point's T is its session time in ms;
* each trace's ``timeOffset`` (``trace`` element: the start of the trace relative to the
  timestamp of its context, in ms) and ``duration``.

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
_CONTEXT_ID = "session"
_TIMESTAMP_ID = "session-start"


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
    context = ET.SubElement(defs, _q("context"), {_XML_ID: _CONTEXT_ID})
    ET.SubElement(context, _q("timestamp"), {_XML_ID: _TIMESTAMP_ID, "time": str(round(data.started_unix * 1000))})
    fmt = ET.SubElement(context, _q("traceFormat"))
    ET.SubElement(fmt, _q("channel"), {"name": "X", "type": "integer", "min": "0", "max": "65535"})
    ET.SubElement(fmt, _q("channel"), {"name": "Y", "type": "integer", "min": "0", "max": "65535"})
    ET.SubElement(fmt, _q("channel"), {"name": "F", "type": "integer", "min": "0", "max": "4095"})
    ET.SubElement(fmt, _q("channel"), {"name": "T", "type": "decimal", "units": "ms",
                                        "respectTo": f"#{_TIMESTAMP_ID}"})
    for tilt in ("OTx", "OTy"):
        ET.SubElement(fmt, _q("channel"), {"name": tilt, "type": "integer", "units": "deg",
                                            "min": "-90", "max": "90"})
    seen_brushes: set[str] = set()
    for s in strokes:
        if _brush_id(s) not in seen_brushes:
            seen_brushes.add(_brush_id(s))
            _add_brush(defs, s)
    for page in sorted({s.page for s in strokes}):
        group = ET.SubElement(ink, _q("traceGroup"), {_XML_ID: f"page-{page}", "contextRef": f"#{_CONTEXT_ID}"})
        ET.SubElement(group, _q("annotation"), {"type": "page"}).text = str(page)
        on_page = [s for s in strokes if s.page == page]
        removed = [s.key for s in on_page if s.removed]
        if removed:
            ET.SubElement(group, _q("annotation"), {"type": "removed"}).text = " ".join(removed)
        for s in on_page:
            attrs = {_XML_ID: s.key, "brushRef": f"#{_brush_id(s)}", "contextRef": f"#{_CONTEXT_ID}"}
            if s.points:
                first, last = s.points[0].session_ms, s.points[-1].session_ms
                attrs["timeOffset"] = ms_text(first)
                attrs["duration"] = ms_text(last - first)
            ET.SubElement(group, _q("trace"), attrs).text = _trace_text(s)
    ET.indent(ink)
    return ET.tostring(ink, encoding="unicode", xml_declaration=True) + "\n"


def _number(text: str) -> float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def parse_inkml(text: str) -> list[InkTrace]:
    """The traces of an InkML document as ``to_inkml`` writes it (explicit values only: no
    difference or velocity encodings, no ``'``/``"`` prefixes), in document order."""
    root = ET.fromstring(text)
    fmt = root.find(f".//{_q('traceFormat')}")
    names = [c.attrib["name"] for c in fmt.iter(_q("channel"))] if fmt is not None else ["X", "Y"]
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
            points = [
                dict(zip(names, (_number(v) for v in chunk.split()), strict=True))
                for chunk in (trace.text or "").split(",") if chunk.strip()
            ]
            offset, duration = trace.get("timeOffset"), trace.get("duration")
            out.append(InkTrace(
                tid, page, (trace.get("brushRef") or "").lstrip("#") or None,
                None if offset is None else _number(offset), None if duration is None else _number(duration),
                tid in removed, points,
            ))
    return out
