"""One entry point for every export format, shared by the CLI and the HTTP API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exports.inkml import to_inkml
from .exports.model import RecordingData
from .exports.replay_html import replay_bundle
from .exports.summary import corpus_csv, summary, timeline_svg
from .exports.tables import events_json, points_csv
from .exports.wav import mixed_wav
from .loader import list_recordings, load


@dataclass(frozen=True, slots=True)
class Export:
    content: bytes
    media_type: str
    suffix: str


def _text(media_type: str, suffix: str, make: Callable[[RecordingData], str]) -> Callable[[RecordingData], Export]:
    return lambda data: Export(make(data).encode(), media_type, suffix)


FORMATS: dict[str, Callable[[RecordingData], Export]] = {
    "inkml": _text("application/inkml+xml", ".inkml", to_inkml),
    "csv": _text("text/csv", ".csv", points_csv),
    "json": _text("application/json", ".json", events_json),
    "wav": lambda data: Export(mixed_wav(data), "audio/wav", ".wav"),
    "html": _text("text/html", ".html", replay_bundle),
    "summary": _text("application/json", ".summary.json", lambda d: json.dumps(summary(d), indent=2)),
    "svg": _text("image/svg+xml", ".svg", timeline_svg),
}


def export(root: Path, recording_id: str, fmt: str) -> Export:
    """``fmt`` of one recording; ``KeyError`` for an unknown format, ``RecordingNotFound``."""
    make = FORMATS[fmt]
    return make(load(root, recording_id))


Track = Callable[[list[dict[str, Any]], int], Iterable[dict[str, Any]]]


def _as_is(rows: list[dict[str, Any]], total: int) -> Iterable[dict[str, Any]]:
    return rows


def corpus(root: Path, track: Track = _as_is) -> str:
    """The cross-session CSV: one row of research summary per recording under ``root``.
    ``track`` wraps the loop over the recordings (a progress bar, given their number)."""
    rows = list_recordings(root)
    return corpus_csv([summary(load(root, r["id"])) for r in track(rows, len(rows))])
