"""Recordings over HTTP: the list, exports, research summaries, and the replay API (ink events
by time range, audio with range requests). Researchers and admins see every recording; a
student or tutor sees the recordings of their own sessions.

A recording is read as the current format whatever version wrote it (``recordings.loader``):
the manifest is served normalized (format 2: participants with pid and role, clock offsets by
pid), so a client reads one shape. With the live ``Archiver`` given, a recording that is being
closed (its session just ended) is waited for, so that it is listed ``complete`` at once."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from matcher.errors import Forbidden, NotFound, ValidationFailed
from recordings import export as exporting
from recordings.archiver import Archiver
from recordings.exports.tables import event_dicts, roster
from recordings.loader import RecordingNotFound, audio_file, folder_of, list_recordings, load
from recordings.manifest import read_manifest

from .auth import API_ROLES, ApiUser, TokenSigner
from .httpapi import authenticated

STAFF = ("researcher", "admin")


MS_PARAM = re.compile(r"[0-9]{1,16}")


class RecordingsApi:
    def __init__(self, root: Path, signer: TokenSigner, archiver: Archiver | None = None) -> None:
        self.root = root
        self.signer = signer
        self.archiver = archiver

    async def _folder(self, request: Request, user: ApiUser) -> Path:
        recording_id = str(request.path_params["recording_id"])
        if self.archiver is not None:
            await self.archiver.settle([recording_id])
        try:
            folder = await asyncio.to_thread(folder_of, self.root, recording_id)
        except RecordingNotFound as exc:
            raise NotFound(str(exc)) from None
        if user.role not in STAFF:
            participants = {p.user_id for p in (await asyncio.to_thread(read_manifest, folder)).participants}
            if user.user_id not in participants:
                raise Forbidden("this recording is not of one of your sessions")
        return folder

    async def index(self, request: Request, user: ApiUser) -> list[dict[str, Any]]:
        if self.archiver is not None:
            await self.archiver.settle()
        rows = await asyncio.to_thread(list_recordings, self.root)
        return rows if user.role in STAFF else [r for r in rows if user.user_id in r["participants"]]

    async def manifest(self, request: Request, user: ApiUser) -> Response:
        folder = await self._folder(request, user)
        manifest = await asyncio.to_thread(read_manifest, folder)
        return Response(manifest.to_json(), media_type="application/json")

    async def export(self, request: Request, user: ApiUser) -> Response:
        folder = await self._folder(request, user)
        fmt = str(request.path_params["fmt"])
        if fmt not in exporting.FORMATS:
            raise ValidationFailed("format", f"must be one of {', '.join(exporting.FORMATS)}")
        made = await asyncio.to_thread(exporting.export, self.root, folder.name, fmt)
        disposition = f'attachment; filename="{folder.name}{made.suffix}"'
        return Response(made.content, media_type=made.media_type, headers={"content-disposition": disposition})

    async def events(self, request: Request, user: ApiUser) -> dict[str, Any]:
        """Replay: the recording's events with ``from_ms <= session_ms < to_ms``, and its
        participants (pid, role, user id, label: the ``seat`` of each event; ``speaks``: whether it
        has a voice to fetch, which in a class most participants never have)."""
        folder = await self._folder(request, user)
        bounds = []
        for name, default in (("from_ms", 0), ("to_ms", 2**53)):
            raw = request.query_params.get(name, str(default))
            # ASCII digits only (str.isdigit takes "²" too, which int() refuses), at most 16
            if not MS_PARAM.fullmatch(raw):
                raise ValidationFailed(name, "must be a whole number of milliseconds (at most 16 digits)")
            bounds.append(int(raw))
        data = await asyncio.to_thread(load, self.root, folder.name)
        events = [e for e in event_dicts(data) if bounds[0] <= e["session_ms"] < bounds[1]]
        participants = [{**p, "speaks": p["pid"] in data.audio} for p in roster(data)]
        return {"recording": folder.name, "duration_ms": data.duration_ms, "participants": participants,
                "events": events}

    async def audio(self, request: Request, user: ApiUser) -> Response:
        """One speaker's Ogg Opus file, named by label (``tutor``, ``student``; ``viewer-7`` in a
        class) or ``{role}-{pid}``; HTTP range requests let a player seek."""
        folder = await self._folder(request, user)
        name = str(request.path_params["speaker"])
        path = await asyncio.to_thread(audio_file, folder, name)
        if path is None:
            raise NotFound(f"no {name} audio in this recording")
        return FileResponse(path, media_type="audio/ogg")

    async def corpus(self, request: Request, user: ApiUser) -> Response:
        text = await asyncio.to_thread(exporting.corpus, self.root)
        return Response(text, media_type="text/csv")

    def routes(self) -> list[Route]:
        def e(roles: tuple[str, ...], handler: Any) -> Any:
            return authenticated(self.signer, roles, handler)

        return [
            Route("/api/recordings", e(API_ROLES, self.index)),
            Route("/api/recordings/corpus.csv", e(STAFF, self.corpus)),
            Route("/api/recordings/{recording_id}", e(API_ROLES, self.manifest)),
            Route("/api/recordings/{recording_id}/export/{fmt}", e(API_ROLES, self.export)),
            Route("/api/recordings/{recording_id}/events", e(API_ROLES, self.events)),
            Route("/api/recordings/{recording_id}/audio/{speaker}.opus", e(API_ROLES, self.audio)),
        ]
