"""Tutor rosters: the files the education commission's staff fill in from ECAM's application form
(CSV, or the equivalent JSON), and the export of tutors' profiles with their learned estimates.
The formats are documented in ``docs/roster.md``.

Parsing is pure (text in, records out) and all or nothing: ``parse_roster`` checks every field of
every row, then either returns the tutors or raises one ``RosterError`` that lists each problem
with its line. ``import_roster`` and ``export_roster`` are the async operations over a ``Matcher``;
``demo_roster`` is the small roster that dev mode seeds.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from .errors import MatcherError
from .expertise import declared
from .records import GRADE_BANDS, IDENT, USER_ID, Pool, TutorRecord
from .service import Matcher

Format = Literal["csv", "json"]
COLUMNS = ("tutor_id", "name", "subject", "grade_bands", "strengths")
JSON_KEYS = ("tutor_id", "name", "teaches", "strengths")
EXPORT_COLUMNS = ("tutor_id", "subject", "band", "knowledge_point", "declared", "mean", "sessions")
MAX_NAME_CHARS = 100
_SEPARATOR = re.compile("[;\uff1b]")  # ";" and the full-width U+FF1B a Chinese input method types
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_BANDS = ", ".join(f"{b} ({g})" for b, g in zip(GRADE_BANDS, ("grades 1-3", "4-6", "7-9", "10-12"), strict=True))
_ID_RULE = "lowercase letters, digits and . _ - (at most 64, starting with a letter or digit)"


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One problem in a roster file: its physical line (None when the file has no lines to point
    at), the 1-based entry of a JSON array, and a sentence."""

    line: int | None
    entry: int | None
    message: str

    def __str__(self) -> str:
        where = [] if self.line is None else [f"line {self.line}"]
        where += [] if self.entry is None else [f"entry {self.entry}"]
        return f"{', '.join(where)}: {self.message}" if where else self.message


class RosterError(MatcherError):
    """A roster file has bad rows; nothing of it may be imported. ``problems`` lists every one."""

    status = 422

    def __init__(self, problems: Sequence[RowProblem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line or 0, p.entry or 0)))
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in the roster, nothing imported: "
                         + "; ".join(str(p) for p in self.problems))


# -- reading ---------------------------------------------------------------------------------------


def roster_format(filename: str) -> Format | None:
    """The format a file name's extension says (``.csv`` or ``.json``), or None."""
    lower = filename.lower()
    return "csv" if lower.endswith(".csv") else "json" if lower.endswith(".json") else None


def decode_roster(data: bytes) -> str:
    """A roster file's text: UTF-8 (with or without the BOM Excel writes), else GB18030, which is
    what Excel on a Chinese Windows saves a CSV as."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        line = data.count(b"\n", 0, first_bad) + 1
        raise RosterError([RowProblem(line, None, "the file is neither UTF-8 nor GB18030 text")]) from None


def parse_roster(text: str, fmt: Format) -> list[TutorRecord]:
    """Every tutor of a roster file, in the order of the file; raises ``RosterError`` listing every
    bad row (and returns nothing) if there is one."""
    text = text.removeprefix("\ufeff")
    builder = _Builder()
    if fmt == "csv":
        _read_csv(text, builder)
    elif fmt == "json":
        _read_json(text, builder)
    else:
        raise ValueError(f"unknown roster format {fmt!r}")
    if builder.problems:
        raise RosterError(builder.problems)
    return builder.tutors()


@dataclass
class _Tutor:
    line: int | None
    entry: int | None
    name: str
    pools: set[Pool] = field(default_factory=set)
    strengths: set[str] = field(default_factory=set)
    subject_lines: dict[str, int | None] = field(default_factory=dict)


@dataclass
class _Builder:
    """Collects rows and problems; a tutor's rows merge (CSV: one row per subject)."""

    problems: list[RowProblem] = field(default_factory=list)
    by_id: dict[str, _Tutor] = field(default_factory=dict)

    def tutors(self) -> list[TutorRecord]:
        return [TutorRecord(tutor_id, t.name,
                            tuple(sorted(t.pools, key=lambda p: (p.subject, GRADE_BANDS.index(p.band)))),
                            tuple(sorted(t.strengths)))
                for tutor_id, t in self.by_id.items()]


def _where(t: _Tutor) -> str:
    if t.entry is None:
        return f"line {t.line}"
    return f"entry {t.entry}" + ("" if t.line is None else f" (line {t.line})")


def _tutor_id_problem(v: str) -> str | None:
    if not v:
        return "tutor_id is empty"
    if not USER_ID.fullmatch(v):
        return f"tutor_id {v!r} is not a user id: 1-64 of A-Z a-z 0-9 _ . @ -"
    return None


def _name_problem(v: str) -> str | None:
    if not v:
        return "name is empty"
    if len(v) > MAX_NAME_CHARS:
        return f"name is longer than {MAX_NAME_CHARS} characters"
    if _CONTROL.search(v):
        return "name contains a control character (a line break or tab)"
    return None


def _subject_problem(v: str) -> str | None:
    if not v:
        return "subject is empty"
    if not IDENT.fullmatch(v):
        return f"subject {v!r} is not a subject id: {_ID_RULE}"
    return None


def _band_problem(v: str) -> str | None:
    if v not in GRADE_BANDS:
        return f"grade band {v!r} is not one of {_BANDS}"
    return None


def _strength_problem(v: str, subjects: Iterable[str]) -> str | None:
    if not IDENT.fullmatch(v):
        return f"strength {v!r} is not a knowledge point id: {_ID_RULE}"
    subjects = list(subjects)
    if not any(v.startswith(s + ".") for s in subjects):
        if len(subjects) == 1:
            return (f"strength {v!r} is not a knowledge point or area of subject {subjects[0]!r} "
                    f"(it must start with '{subjects[0]}.', e.g. {subjects[0]}.algebra)")
        return f"strength {v!r} is not a knowledge point or area of the tutor's subjects {', '.join(subjects)}"
    return None


# -- CSV -----------------------------------------------------------------------------------------


def _split(cell: str) -> list[str]:
    return list(dict.fromkeys(item.strip().lower() for item in _SEPARATOR.split(cell) if item.strip()))


def _read_csv(text: str, b: _Builder) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns: list[str] | None = None
    while True:
        line = reader.line_num + 1  # a quoted cell may span lines; a row is reported by its first
        try:
            row = next(reader, None)
        except csv.Error as exc:
            b.problems.append(RowProblem(line, None, f"the row is not valid CSV ({exc}); the rest was not read"))
            return
        if row is None:
            break
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            columns = _header(row, line, b)
            if columns is None:
                return
            continue
        _csv_row(row, columns, line, b)
    if columns is None:
        b.problems.append(RowProblem(1, None, f"the file is empty; its first line must be the header "
                                              f"{','.join(COLUMNS)}"))


def _header(row: list[str], line: int, b: _Builder) -> list[str] | None:
    columns = [c.strip().lower() for c in row]
    while columns and not columns[-1]:
        columns.pop()
    expected = f"the header must name the columns {','.join(COLUMNS)} (in any order)"
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in COLUMNS if c not in columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    for what, names in (("unknown column", unknown), ("missing column", missing), ("repeated column", repeated)):
        if names:
            b.problems.append(RowProblem(line, None, f"{what}{'s' if len(names) > 1 else ''} "
                                                     f"{', '.join(map(repr, names))}: {expected}"))
    return None if unknown or missing or repeated else columns


def _csv_row(row: list[str], columns: list[str], line: int, b: _Builder) -> None:
    extra = row[len(columns):]
    if len(row) < len(columns) or any(c.strip() for c in extra):
        b.problems.append(RowProblem(line, None, f"the row has {len(row)} cells but the header has {len(columns)} "
                                                 "(a cell with a comma in it must be in double quotes)"))
        return
    cell = {c: v.strip() for c, v in zip(columns, row, strict=False)}
    tutor_id, name, subject = cell["tutor_id"], cell["name"], cell["subject"].lower()
    bands, strengths = _split(cell["grade_bands"]), _split(cell["strengths"])
    known = b.by_id.get(tutor_id)
    problems = [_tutor_id_problem(tutor_id), None if known and not name else _name_problem(name),
                _subject_problem(subject)]
    problems += [_band_problem(band) for band in bands] if bands else ["grade_bands is empty"]
    if not problems[2]:
        problems += [_strength_problem(s, [subject]) for s in strengths]
    if known and name and known.name and name != known.name:
        problems.append(f"name {name!r} differs from {known.name!r} on {_where(known)}, the tutor's first row "
                        "(a later row may leave the name empty)")
    if known and not problems[2] and subject in known.subject_lines:
        problems.append(f"tutor {tutor_id!r} already has a row for subject {subject!r} on line "
                        f"{known.subject_lines[subject]}; put all of a subject's grade bands and strengths on one row")
    b.problems += [RowProblem(line, None, p) for p in problems if p]
    if problems[0]:
        return
    # A bad row still counts as the tutor's row, so that the rows after it are checked against it;
    # the records are only built when there is no problem at all.
    t = known or b.by_id.setdefault(tutor_id, _Tutor(line, None, name))
    if not problems[2]:
        t.subject_lines.setdefault(subject, line)
    t.pools |= {Pool(subject, band) for band in bands if band in GRADE_BANDS}
    t.strengths |= set(strengths)


# -- JSON ----------------------------------------------------------------------------------------


class _Object(dict[str, Any]):
    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    obj.repeated = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


def _read_json(text: str, b: _Builder) -> None:
    """A JSON array of tutor objects, decoded entry by entry so that each problem names the line
    its entry starts on."""
    decoder = json.JSONDecoder(object_pairs_hook=_object)

    def skip(pos: int) -> int:
        m = _WHITESPACE.match(text, pos)
        return pos if m is None else m.end()

    def line_at(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    pos = skip(0)
    if text[pos:pos + 1] != "[":
        what = "the file is empty" if pos == len(text) else "the file does not start with ["
        b.problems.append(RowProblem(line_at(pos), None, f"{what}: a JSON roster is an array of tutor objects, "
                                                         '[{"tutor_id": ..., "name": ..., "teaches": [...]}, ...]'))
        return
    pos = skip(pos + 1)
    entry = 0
    if text[pos:pos + 1] == "]":
        pos = skip(pos + 1)
    else:
        while True:
            entry += 1
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                b.problems.append(RowProblem(exc.lineno, entry, f"not valid JSON: {exc.msg} (column {exc.colno})"))
                return
            _json_entry(value, line_at(pos), entry, b)
            pos = skip(end)
            if text[pos:pos + 1] == ",":
                pos = skip(pos + 1)
                continue
            if text[pos:pos + 1] == "]":
                pos = skip(pos + 1)
                break
            b.problems.append(RowProblem(line_at(pos), None, f"expected , or ] after entry {entry}"))
            return
    if pos != len(text):
        b.problems.append(RowProblem(line_at(pos), None, "there is text after the array's closing ]"))


def _json_entry(v: Any, line: int, entry: int, b: _Builder) -> None:
    problems = _json_entry_problems(v)
    tutor_id = v.get("tutor_id") if isinstance(v, dict) else None
    if not isinstance(tutor_id, str) or _tutor_id_problem(tutor_id):
        b.problems += [RowProblem(line, entry, p) for p in problems]
        return
    if tutor_id in b.by_id:
        problems.append(f"tutor_id {tutor_id!r} is already {_where(b.by_id[tutor_id])}; each tutor is one entry")
    b.problems += [RowProblem(line, entry, p) for p in problems]
    if problems:
        b.by_id.setdefault(tutor_id, _Tutor(line, entry, ""))  # so that a later duplicate names this entry
        return
    t = b.by_id[tutor_id] = _Tutor(line, entry, v["name"].strip())
    t.pools = {Pool(p["subject"].strip().lower(), p["band"].strip().lower()) for p in v["teaches"]}
    t.strengths = {s.strip().lower() for s in v.get("strengths", [])}


def _json_entry_problems(v: Any) -> list[str]:
    if not isinstance(v, dict):
        return ['the entry is not an object {"tutor_id": ..., "name": ..., "teaches": [...], "strengths": [...]}']
    problems: list[str | None] = [f"key {k!r} appears more than once" for k in getattr(v, "repeated", [])]
    # "estimates" is what `tutors export` adds; accepting it lets an export be imported again.
    unknown = [k for k in v if k not in (*JSON_KEYS, "estimates")]
    missing = [k for k in JSON_KEYS[:3] if k not in v]
    problems += [f"unknown key {k!r} (the keys are {', '.join(JSON_KEYS)})" for k in unknown]
    problems += [f"{k} is missing" for k in missing]
    tutor_id, name = v.get("tutor_id"), v.get("name")
    if "tutor_id" in v:
        problems.append(_tutor_id_problem(tutor_id) if isinstance(tutor_id, str) else "tutor_id is not a string")
    if "name" in v:
        problems.append(_name_problem(name.strip()) if isinstance(name, str) else "name is not a string")
    subjects: list[str] = []
    teaches_ok = True
    teaches = v.get("teaches", [])
    if not isinstance(teaches, list) or ("teaches" in v and not teaches):
        problems.append('teaches must be a non-empty array of {"subject": ..., "band": ...}')
        teaches, teaches_ok = [], False
    for i, pool in enumerate(teaches, 1):
        if not isinstance(pool, dict) or sorted(pool) != ["band", "subject"] or getattr(pool, "repeated", []):
            problems.append(f'teaches[{i}] is not an object {{"subject": ..., "band": ...}}')
            teaches_ok = False
        elif not isinstance(pool["subject"], str) or not isinstance(pool["band"], str):
            problems.append(f"teaches[{i}]: subject and band must be strings")
            teaches_ok = False
        else:
            subject = pool["subject"].strip().lower()
            problems += [_subject_problem(subject), _band_problem(pool["band"].strip().lower())]
            teaches_ok = teaches_ok and _subject_problem(subject) is None
            subjects.append(subject)
    strengths = v.get("strengths", [])
    if not isinstance(strengths, list) or not all(isinstance(s, str) for s in strengths):
        problems.append("strengths must be an array of knowledge point ids (strings)")
    elif teaches_ok and subjects:
        problems += [_strength_problem(s.strip().lower(), dict.fromkeys(subjects)) for s in strengths]
    return [p for p in problems if p]


# -- writing ---------------------------------------------------------------------------------------


def roster_text(tutors: Iterable[TutorRecord], fmt: Format) -> str:
    """The tutors in the import format (``parse_roster`` reads it back): to convert a roster from
    one format to the other or to start one. Each strength must lie under a subject the tutor
    teaches, as ``parse_roster`` requires."""
    tutors = list(tutors)
    if fmt == "json":
        entries = [{"tutor_id": t.tutor_id, "name": t.name,
                    "teaches": [{"subject": p.subject, "band": p.band} for p in t.teaches],
                    "strengths": list(t.strengths)} for t in tutors]
        return json.dumps(entries, ensure_ascii=False, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for t in tutors:
        placed: set[str] = set()
        for subject in dict.fromkeys(p.subject for p in t.teaches):
            strengths = [s for s in t.strengths if s.startswith(subject + ".")]
            placed |= set(strengths)
            writer.writerow([t.tutor_id, t.name, subject, ";".join(p.band for p in t.teaches if p.subject == subject),
                             ";".join(strengths)])
        if lost := [s for s in t.strengths if s not in placed]:
            raise ValueError(f"tutor {t.tutor_id!r}: strengths {lost} lie under none of the tutor's subjects")
    return out.getvalue()


def demo_roster() -> list[TutorRecord]:
    """The small demo roster dev mode seeds (``matcher/demo_roster.json``)."""
    return parse_roster(resources.files(__package__).joinpath("demo_roster.json").read_text("utf-8"), "json")


# -- the store -----------------------------------------------------------------------------------


async def import_roster(matcher: Matcher, tutors: Iterable[TutorRecord]) -> int:
    """Create or update each tutor's profile (name, subjects and bands, strengths), keeping their
    presence and learned estimates; how many were written. Tutors not in ``tutors`` stay as they
    are. Parse the whole file first: ``parse_roster`` is where a bad row stops the import."""
    count = 0
    for t in tutors:
        await matcher.upsert_tutor(t)
        count += 1
    return count


async def export_roster(matcher: Matcher, fmt: Format,
                        track: Callable[[list[str]], Iterable[str]] = lambda ids: ids) -> str:
    """Every tutor's profile with learned estimates. JSON: an array of ``Matcher.profile`` objects.
    CSV: the long format of ``EXPORT_COLUMNS``, one row per tutor and subject/band (the band as a
    whole, with ``knowledge_point`` empty) and one per knowledge point with sessions in it.
    ``track`` sees the tutor ids go by (the CLI's progress bar)."""
    profiles = [await matcher.profile(tutor_id) for tutor_id in track(await matcher.tutor_ids())]
    if fmt == "json":
        return json.dumps(profiles, ensure_ascii=False, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for p in profiles:
        t = TutorRecord(p["tutor_id"], strengths=tuple(p["strengths"]))
        for e in p["estimates"]:
            subject, band = e["subject"], e["band"]
            in_subject = any(s == subject or s.startswith(subject + ".") for s in t.strengths)
            writer.writerow([t.tutor_id, subject, band, "", int(in_subject), e["mean"], f"{e['sessions']:g}"])
            for kp, k in e["knowledge_points"].items():
                writer.writerow([t.tutor_id, subject, band, kp, int(declared(t, kp)), k["mean"], f"{k['sessions']:g}"])
    return out.getvalue()
