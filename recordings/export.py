"""One entry point for every export format, shared by the CLI and the HTTP API."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .exports import inkml, replay_html, summary, tables, wav
from .exports.model import RecordingData
from .loader import list_recordings, load


@dataclass(frozen=True, slots=True)
class Export:
    content: bytes
    media_type: str
    suffix: str


def _text(media_type: str, suffix: str, make: Callable[[RecordingData], str]) -> Callable[[RecordingData], Export]:
    return lambda data: Export(make(data).encode(), media_type, suffix)


FORMATS: dict[str, Callable[[RecordingData], Export]] = {
    "inkml": _text("application/inkml+xml", ".inkml", inkml.to_inkml),
    "csv": _text("text/csv", ".csv", tables.points_csv),
    "json": _text("application/json", ".json", tables.events_json),
    "wav": lambda data: Export(wav.mixed_wav(data), "audio/wav", ".wav"),
    "html": _text("text/html", ".html", replay_html.replay_bundle),
    "summary": _text("application/json", ".summary.json", lambda d: json.dumps(summary.summary(d), indent=2)),
    "svg": _text("image/svg+xml", ".svg", summary.timeline_svg),
}


def export(root: Path, recording_id: str, fmt: str) -> Export:
    """``fmt`` of one recording; ``KeyError`` for an unknown format, ``RecordingNotFound``."""
    make = FORMATS[fmt]
    return make(load(root, recording_id))


def corpus(root: Path) -> str:
    """The cross-session CSV: one row of research summary per recording under ``root``."""
    return summary.corpus_csv([summary.summary(load(root, r["id"])) for r in list_recordings(root)])
