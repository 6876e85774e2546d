"""``tutorwire recordings list|export|summary|corpus|recover``: the archive on this machine
(``TUTORWIRE_RECORDINGS_DIR`` or ``--dir``; layout in ``docs/recordings.md``).

Exit status: 0 done; 1 no such recording or format; 2 the folder cannot be read. Work over many
recordings (``corpus``) shows a progress bar on a terminal (standard error) and nothing in a pipe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from recordings.export import FORMATS

    rec = sub.add_parser("recordings", help="list, export and summarise session recordings")
    rec.add_argument("--dir", help="the recordings folder (TUTORWIRE_RECORDINGS_DIR, default ./recordings)")
    actions = rec.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="one line per recording").set_defaults(func=_list)
    exp = actions.add_parser("export", help="one recording as InkML, CSV, JSON, WAV, a replay page, ...")
    exp.add_argument("recording", help="its id (see list)")
    exp.add_argument("--format", required=True, choices=sorted(FORMATS))
    exp.add_argument("--output", help="write here instead of standard output")
    exp.set_defaults(func=_export)
    summ = actions.add_parser("summary", help="talk time, ink and silences of one recording (JSON)")
    summ.add_argument("recording")
    summ.set_defaults(func=_summary)
    corpus = actions.add_parser("corpus", help="a CSV with one research summary row per recording")
    corpus.add_argument("--output")
    corpus.set_defaults(func=_corpus)
    actions.add_parser("recover", help="close recordings a crash left open (the server does it at start)"
                       ).set_defaults(func=_recover)


def _root(args: argparse.Namespace) -> Path:
    return Path(args.dir or Settings.from_env().recordings_dir)


def _write(args: argparse.Namespace, content: bytes) -> None:
    if getattr(args, "output", None):
        Path(args.output).write_bytes(content)
    else:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()


def _list(args: argparse.Namespace) -> int:
    from recordings.loader import list_recordings

    for row in list_recordings(_root(args)):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started_unix"]))
        print(f"{row['id']}\t{row['status']}\t{started}\t{row['duration_ms'] / 1000:.0f} s\t"
              f"{','.join(row['participants'])}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from recordings.export import export
    from recordings.loader import RecordingNotFound

    try:
        made = export(_root(args), args.recording, args.format)
    except RecordingNotFound as exc:
        print(f"tutorwire recordings: {exc}", file=sys.stderr)
        return 1
    _write(args, made.content)
    return 0


def _summary(args: argparse.Namespace) -> int:
    args.format, args.output = "summary", None
    return _export(args)


def _corpus(args: argparse.Namespace) -> int:
    from recordings.export import corpus

    from .progress import progress

    _write(args, corpus(_root(args), lambda rows, total: progress(rows, "recordings", total)).encode())
    return 0


def _recover(args: argparse.Namespace) -> int:
    from recordings.recovery import recover_all

    for report in recover_all(_root(args), time.time()):
        print(json.dumps(report.to_dict(), default=str))
    return 0
