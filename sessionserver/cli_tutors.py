"""``tutorwire tutors import FILE`` and ``tutorwire tutors export``: the tutor roster in the shared
Redis store (formats in ``docs/roster.md``); ``tutorwire tutors knowledge``: students' knowledge
states as CSV (columns in ``docs/matcher.md``).

Exit status: 0 done; 1 the file has bad rows (each printed with its line; nothing imported) or the
matcher refused; 2 the command cannot run (no Redis configured, Redis unreachable, file unreadable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .settings import Settings

if TYPE_CHECKING:
    from matcher.records import TutorRecord
    from matcher.roster import Format

T = TypeVar("T")


def redis_target() -> tuple[str, str] | None:
    """The shared store's URL and key prefix, or None when none is configured (embedded server)."""
    settings = Settings.from_env()
    return (settings.redis_url, settings.redis_prefix) if settings.redis_url.strip() else None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tutors = sub.add_parser("tutors", help="import or export the tutor roster (TUTORWIRE_REDIS_URL)")
    actions = tutors.add_subparsers(dest="action", required=True)
    imp = actions.add_parser("import", help="create or update tutors from a CSV or JSON roster file")
    imp.add_argument("file", help="the roster file (docs/roster.md)")
    imp.add_argument("--format", choices=["csv", "json"], help="the file's format (default: from its extension)")
    imp.set_defaults(func=_import)
    exp = actions.add_parser("export", help="write every tutor's profile with learned estimates")
    exp.add_argument("--format", choices=["json", "csv"], default="json", help="json (profiles) or csv (long format)")
    exp.add_argument("--output", help="write to this file instead of standard output")
    exp.set_defaults(func=_export, what="tutors")
    kno = actions.add_parser("knowledge", help="write every student's knowledge state per point (CSV, for research)")
    kno.add_argument("--output", help="write to this file instead of standard output")
    kno.set_defaults(func=_export, what="knowledge", format="csv")


def _fail(message: str, status: int) -> int:
    print(f"tutorwire tutors: {message}", file=sys.stderr)
    return status


def _import(args: argparse.Namespace) -> int:
    from matcher.roster import RosterError, decode_roster, parse_roster, roster_format

    fmt: Format | None = args.format or roster_format(args.file)
    if fmt is None:
        return _fail(f"cannot tell the format of {args.file} from its extension; pass --format csv or json", 2)
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}", 2)
    try:
        tutors = parse_roster(decode_roster(data), fmt)
    except RosterError as exc:
        for p in exc.problems:
            where = ":".join(str(x) for x in (args.file, p.line) if x is not None)
            print(f"{where}: {'' if p.entry is None else f'entry {p.entry}: '}{p.message}", file=sys.stderr)
        return _fail(f"{len(exc.problems)} problem(s) in {args.file}; nothing was imported", 1)
    target = redis_target()
    if target is None:
        for t in tutors:
            print(f"would import {t.tutor_id} ({t.name}): {', '.join(p.key for p in t.teaches)}; "
                  f"strengths {', '.join(t.strengths) or '(none)'}")
        return _fail(f"{args.file} is valid ({len(tutors)} tutors), but nothing was imported: import writes to the "
                     "shared Redis store named by TUTORWIRE_REDIS_URL, which is not set. The embedded server (no "
                     "Redis) loads a roster at start from the file named by TUTORWIRE_ROSTER_FILE instead.", 2)
    try:
        count = _run(_import_into(*target, tutors))
    except _Failed as failed:
        return failed.status
    print(f"imported {count} tutors into Redis (prefix {target[1]!r})")
    return 0


async def _import_into(url: str, prefix: str, tutors: list[TutorRecord]) -> int:
    from matcher.redis_store import RedisStore
    from matcher.roster import import_roster
    from matcher.service import Matcher

    from .progress import progress

    store = RedisStore(url, prefix)
    try:
        await store.redis.ping()  # type: ignore[misc]
        return await import_roster(Matcher(store), progress(tutors, "tutors", len(tutors)))
    finally:
        await store.close()


def _export(args: argparse.Namespace) -> int:
    target = redis_target()
    if target is None:
        return _fail("export reads the shared Redis store named by TUTORWIRE_REDIS_URL, which is not set (an "
                     "embedded server keeps its tutors in its own memory, out of reach of this command)", 2)
    try:
        text = _run(_export_from(*target, args.format, args.what))
    except _Failed as failed:
        return failed.status
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode())  # UTF-8 whatever the terminal's locale; names may be in hanzi
        sys.stdout.buffer.flush()
        return 0
    try:
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror}", 2)
    return 0


async def _export_from(url: str, prefix: str, fmt: Format, what: str = "tutors") -> str:
    from matcher.knowledge import knowledge_csv
    from matcher.redis_store import RedisStore
    from matcher.roster import export_roster
    from matcher.service import Matcher

    from .progress import progress

    store = RedisStore(url, prefix)
    try:
        if what == "knowledge":
            return knowledge_csv(await Matcher(store).knowledge_rows())
        return await export_roster(Matcher(store), fmt, lambda ids: progress(ids, "tutors", len(ids)))
    finally:
        await store.close()


class _Failed(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``; a Redis or matcher failure is printed and raised as ``_Failed``."""
    from redis.exceptions import RedisError

    from matcher.errors import MatcherError

    try:
        return asyncio.run(main)
    except (RedisError, OSError, ValueError) as exc:  # ValueError: a malformed TUTORWIRE_REDIS_URL
        raise _Failed(_fail(f"cannot use the Redis store at TUTORWIRE_REDIS_URL: {exc}", 2)) from exc
    except MatcherError as exc:
        raise _Failed(_fail(exc.message, 1)) from exc
