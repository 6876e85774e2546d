"""Replay a recorded pen at real speed or faster: an evemu recording of a tablet (through the
same parser as a live device) or an InkML file (one of our recordings as its InkML export,
``GET /api/recordings/{id}/export/inkml``: the first device's traces; or any InkML with X and Y
channels). The file readers are sans-I/O (text in, a timeline out); ``ReplayAdapter`` paces it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path

from . import evcodes as c
from .adapters import PacedAdapter, renumber
from .device import DeviceInfo, Loss, PageTurn, PenEvent, Phase, Sample, TiltKind
from .errors import DeviceError
from .evdev_parser import EvdevParser, caps_from_evemu
from .evemu import EvemuDevice, iter_events, read
from .pages import PAGE_HEIGHT, PAGE_WIDTH


def evemu_timeline(lines: Iterable[str], desc_lines: Iterable[str] | None = None) -> tuple[DeviceInfo, list[PenEvent]]:
    dev = EvemuDevice()
    if desc_lines is not None:
        read(desc_lines, dev)
    events = list(iter_events(lines, dev))
    if c.ABS_X not in dev.axes or c.ABS_Y not in dev.axes:
        raise DeviceError("the evemu recording declares no ABS_X/ABS_Y axes",
                          "give its description too (--device replay:FILE.events,FILE.desc)")
    parser = EvdevParser(caps_from_evemu(dev.name, dev.axes, dev.bits.get(c.EV_KEY)))
    out: list[PenEvent] = []
    for e in events:
        out.extend(parser.feed(e.sec, e.usec, e.type, e.code, e.value))
    return parser.info, out


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.replace(",", " ").split()]


def inkml_timeline(text: str) -> tuple[DeviceInfo, list[PenEvent]]:
    """Each ``trace`` is a stroke; channels named in the first ``traceFormat`` (X, Y, and T in
    ms, F for pressure when present; otherwise points are 4 ms apart)."""
    root = ET.fromstring(text)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    fmt = root.find(f".//{ns}traceFormat")  # the first device's channels (a recording's export: the tutor's)
    names = [ch.get("name", "") for ch in fmt.iter(f"{ns}channel")] if fmt is not None else []
    names = names or ["X", "Y"]
    ix, iy = names.index("X"), names.index("Y")
    it = names.index("T") if "T" in names else None
    ip = names.index("F") if "F" in names else None
    strokes: list[list[list[float]]] = []
    for trace in root.iter(f"{ns}trace"):
        pts = [_floats(p) for p in (trace.text or "").split(",") if p.strip()]
        if pts and all(len(p) == len(names) for p in pts):  # traces of another format are another device's
            strokes.append(pts)
    if not strokes:
        raise DeviceError("the InkML file holds no trace", "export a recording with ink, or pick another file")
    xs = [p[ix] for s in strokes for p in s]
    ys = [p[iy] for s in strokes for p in s]
    pmax = int(max((p[ip] for s in strokes for p in s), default=0)) if ip is not None else 0
    if min(xs) >= 0 and min(ys) >= 0 and max(xs) <= PAGE_WIDTH and max(ys) <= PAGE_HEIGHT:
        # page units already (our recordings' export): the page onto the page, point for point
        info = DeviceInfo("InkML replay", 0, PAGE_WIDTH, 0, PAGE_HEIGHT, 1.0, 1.0, pmax, TiltKind.NONE, 240.0)
    else:
        info = DeviceInfo("InkML replay", int(min(xs)), int(max(xs)) + 1, int(min(ys)), int(max(ys)) + 1,
                          0.0, 0.0, pmax, TiltKind.NONE, 240.0)
    out: list[PenEvent] = []
    t = 0.0
    for stroke in strokes:
        base = t
        for i, p in enumerate(stroke):
            t = base + (p[it] - stroke[0][it]) / 1000.0 if it is not None else base + 0.004 * i
            pressure = int(p[ip]) if ip is not None else 1
            out.append(Sample(0, t, int(p[ix]), int(p[iy]), max(1, pressure), Phase.DOWN if i == 0 else Phase.MOVE))
        out.append(Sample(0, t + 0.004, int(stroke[-1][ix]), int(stroke[-1][iy]), 0, Phase.UP))
        t += 0.1
    return info, list(renumber(out))


class ReplayAdapter(PacedAdapter):
    """``path``: ``FILE.events`` (with ``desc`` its ``.desc`` when the recording has no
    header) or ``FILE.inkml``; ``loops`` plays it that many times end to end."""

    def __init__(self, path: str | Path, *, desc: str | Path | None = None, speed: float = 1.0,
                 loops: int = 1) -> None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
            desc_text = Path(desc).read_text(encoding="utf-8", errors="replace") if desc else None
        except OSError as exc:
            raise DeviceError(f"cannot read {exc.filename}: {exc.strerror}", "check the replay file's path") from None
        if p.suffix.lower() in (".inkml", ".xml"):
            info, timeline = inkml_timeline(text)
        else:
            info, timeline = evemu_timeline(text.splitlines(), desc_text.splitlines() if desc_text else None)
        super().__init__(info, renumber(_looped(timeline, loops)), speed=speed)


def _looped(timeline: list[PenEvent], loops: int) -> Iterator[PenEvent]:
    if not timeline:
        return
    span = timeline[-1].host_s - timeline[0].host_s + 0.2
    for n in range(loops):
        for e in timeline:
            if isinstance(e, Sample | Loss | PageTurn):
                yield _shift(e, n * span)


def _shift(e: Sample | Loss | PageTurn, by: float) -> PenEvent:
    import dataclasses

    return dataclasses.replace(e, host_s=e.host_s + by)
