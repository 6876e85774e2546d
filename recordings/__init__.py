"""Session recordings: the on-disk layout of ``docs/recordings.md`` and its crash recovery.

Modules: ``eventlog`` (the framed, CRC-checked event log), ``ogg`` (Ogg Opus per speaker on the
session timeline), ``manifest`` (what a recording is, written atomically), ``layout`` (the file
names) and ``recovery`` (close out folders a crash left open); each has a sans-I/O core under a
thin file shell. ``recording`` writes one recording's files (synchronously, off the loop);
``archiver`` is the event loop's side with its writer thread; ``resume`` goes on with a recording
on the node its session moved to; ``folderlock`` is the writer's lock on a folder, which recovery
respects; ``loader`` reads recordings of either protocol version back for ``export`` and ``exports``.

Errors (raised only for misuse; damaged files are never an exception, they come back as a report
with the byte offset and the reason)::

    RecordingError
    ├── eventlog.LogError          a record that cannot be written, a writer on a foreign file
    ├── ogg.OggError               a packet that is not Opus or disagrees with its sample count
    ├── resume.FolderBusy          a folder another process kept writing past a resume's wait
    └── manifest.ManifestError     a manifest that does not validate
        └── manifest.IllegalTransition   e.g. complete -> recording
"""

from __future__ import annotations


class RecordingError(Exception):
    """Base of every error this package raises on purpose."""
