"""The real tablet recordings in ``../shared/data/evemu`` (see its README), loaded for tests.

They are looked for beside the checkout (``../shared/data/evemu``), then where the programme's
machines keep them (``/work/shared/data/evemu``), or wherever ``TUTORWIRE_EVEMU_DIR`` says: a
clean checkout in another folder (as CI makes) finds them too."""

from __future__ import annotations

import os
from pathlib import Path

from pen_gateway import evcodes as c
from pen_gateway.evdev_parser import PenCaps, caps_from_evemu
from pen_gateway.evemu import EvemuDevice, RawEvent, read

_PLACES = [Path(os.environ["TUTORWIRE_EVEMU_DIR"])] if os.environ.get("TUTORWIRE_EVEMU_DIR") else []
_PLACES += [Path(__file__).resolve().parents[2].parent / "shared" / "data" / "evemu",
            Path("/work/shared/data/evemu")]
DATA = next((p for p in _PLACES if p.is_dir()), _PLACES[0])
# recording -> its description (the same file when the recording carries its header)
RECORDINGS = {
    "UC-LOGIC Tablet WP5540U Pen.events": "UC-LOGIC Tablet WP5540U Pen.events",
    "Genius EasyPen i405X.events": "Genius EasyPen i405X.desc",
    "Wacom Intuos4 6x9.stylus-drag.events": "Wacom Intuos4 6x9 Pen.desc",
}


def load(name: str) -> tuple[PenCaps, list[RawEvent]]:
    dev = EvemuDevice()
    desc = RECORDINGS[name]
    if desc != name:
        read((DATA / desc).read_text().splitlines(), dev)
    _, events = read((DATA / name).read_text().splitlines(), dev)
    assert dev.bad_lines == 0
    return caps_from_evemu(dev.name, dev.axes, dev.bits.get(c.EV_KEY)), events
