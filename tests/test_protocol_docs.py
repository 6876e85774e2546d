"""``docs/protocol.md`` against the code, so the specification cannot drift from the encoder.

The document's byte examples are fenced blocks with the info string ``hex``. Their leading ``#``
lines (the header) say what the bytes are:

    # frame: MESSAGE                     one frame: decode_frame gives MESSAGE, encode gives the bytes
    # points: ink(FLAGS, POINTS[, START]) a points blob: POINTS[START:] following POINTS[:START]
    # stream: MESSAGE                    MESSAGE as a length-prefixed frame (StreamDecoder, frame_bytes)

MESSAGE and the arguments are Python expressions over the protocol's names and the assignments of
the document's "example data" block, evaluated by a small AST walker (names, calls, constants,
lists, tuples, slices, unary minus and ``|``; nothing else). Below the header, a line that starts
with a hex byte holds bytes (``|`` separates fields; two spaces start a comment); a line that
starts with a space is a comment. The other checks: the error, close-code, message-type, limits
and settings tables, the message layouts such as ``[12, cseq, stroke]``, and the measured ink
sizes of section 5.6 (the script in the document is run and its output compared).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pytest

from sessionserver.settings import Settings
from wire import (
    HAS_PRESSURE,
    HAS_TILT,
    CatchUp,
    CloseCode,
    ErrorCode,
    Limits,
    MsgType,
    Point,
    PointState,
    Rights,
    Role,
    StreamDecoder,
    Tool,
    decode_frame,
    decode_points,
    encode,
    encode_points,
    frame_bytes,
)
from wire import messages as m

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "protocol.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
LIMITS = Limits()

HEX_TOKENS = re.compile(r"[0-9a-f]{2}(?:(?: \| | )[0-9a-f]{2})*")
HEX_SPAN = re.compile(r"[0-9a-f]{2}(?:[ |]+[0-9a-f]{2})+")  # two or more bytes written out
LAYOUT = re.compile(r"`\[(\d+)((?:, [a-z_0-9]+)*)\]`")
KINDS = ("frame", "points", "stream")

MESSAGE_CLASSES: dict[MsgType, type] = {
    MsgType.JOIN: m.Join, MsgType.WELCOME: m.Welcome, MsgType.SNAPSHOT: m.Snapshot, MsgType.EVENT: m.Event,
    MsgType.STROKE_BEGIN: m.StrokeBegin, MsgType.STROKE_POINTS: m.StrokePoints, MsgType.STROKE_END: m.StrokeEnd,
    MsgType.PAGE_ADD: m.PageAdd, MsgType.PAGE_SWITCH: m.PageSwitch, MsgType.UNDO: m.Undo, MsgType.CLEAR: m.Clear,
    MsgType.PRESENCE: m.Presence, MsgType.MUTE: m.Mute, MsgType.PING: m.Ping, MsgType.PONG: m.Pong,
    MsgType.ACK: m.Ack, MsgType.ERROR: m.Error, MsgType.AUDIO: m.Audio, MsgType.AUDIO_RELAY: m.AudioRelay,
    MsgType.RTC_OFFER: m.RtcOffer, MsgType.RTC_ANSWER: m.RtcAnswer, MsgType.RTC_CANDIDATE: m.RtcCandidate,
    MsgType.RTC_CLOSE: m.RtcClose, MsgType.HAND: m.Hand, MsgType.QUESTION: m.Question, MsgType.STAGE: m.Stage,
    MsgType.MODERATE: m.Moderate, MsgType.ROSTER: m.Roster, MsgType.AUDIO_LATE: m.AudioLate,
    MsgType.GRANT: m.Grant, MsgType.RESTORE: m.Restore,
}


def ink(flags: int, points: Sequence[Point], start: int = 0) -> bytes:
    """The blob of ``points[start:]`` as the continuation of a stroke holding ``points[:start]``."""
    state = PointState()
    encode_points(list(points[:start]), flags, state)
    return encode_points(list(points[start:]), flags, state)


BASE_NAMES: dict[str, object] = {
    **{cls.__name__: cls for cls in MESSAGE_CLASSES.values()},
    "SnapshotStroke": m.SnapshotStroke, "RosterEntry": m.RosterEntry, "Point": Point, "Role": Role,
    "Rights": Rights, "Tool": Tool, "CatchUp": CatchUp, "StageAction": m.StageAction, "ModAction": m.ModAction,
    "ErrorCode": ErrorCode, "HAS_PRESSURE": HAS_PRESSURE, "HAS_TILT": HAS_TILT, "ink": ink,
    "LatePacket": m.LatePacket,
    "RosterChange": m.RosterChange,
}


# --- reading the document ---------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    info: str
    lines: tuple[str, ...]


def fenced_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info, start = lines[i][3:].strip(), i
            i += 1
            body: list[str] = []
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"line {start + 1}: fenced block is not closed"
            blocks.append(Block(start + 1, info, tuple(body)))
        i += 1
    return blocks


def prose(text: str) -> str:
    """``text`` without its fenced blocks."""
    return re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)


def section(heading: str) -> str:
    """The text under the heading that starts with ``heading`` (e.g. ``"### 7.1 "``), up to the next
    heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    match = re.search(rf"^{re.escape(heading)}.*$", DOC, re.M)
    assert match, f"no heading {heading!r}"
    end = re.compile(rf"^#{{1,{len(level)}}} ", re.M).search(DOC, match.end())
    return DOC[match.end() : end.start() if end else len(DOC)]


def table(text: str, header: Sequence[str]) -> list[list[str]]:
    """The rows of the Markdown table in ``text`` whose header row is ``header``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and cells(line) == list(header):
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(cells(row))
            return rows
    raise AssertionError(f"no table with header {list(header)}")


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def number(cell: str) -> float:
    """A table number such as ``65 536``, ``200.0`` or ``**1007**``."""
    return float(cell.replace("*", "").replace("`", "").replace(" ", "").replace("\u202f", ""))


# --- evaluating example expressions -----------------------------------------------------------


def evaluate(node: ast.expr, names: Mapping[str, object]) -> object:
    """The value of ``node``, allowing only the few forms the examples need."""
    match node:
        case ast.Constant(value=value) if isinstance(value, int | str | bytes):
            return value
        case ast.Name(id=name):
            if name not in names:
                raise NameError(f"{name!r} is neither a protocol name nor example data")
            return names[name]
        case ast.Attribute(value=base, attr=attr):
            enum = evaluate(base, names)
            if not (isinstance(enum, type) and issubclass(enum, Enum)):
                raise TypeError(f"only enum members can be named with a dot, not {ast.unparse(node)}")
            return enum[attr]
        case ast.Call(func=func, args=args, keywords=keywords):
            target = evaluate(func, names)
            if not callable(target) or any(isinstance(a, ast.Starred) for a in args):
                raise TypeError(f"cannot call {ast.unparse(func)}")
            call: Callable[..., object] = target
            kwargs: dict[str, object] = {}
            for kw in keywords:
                if kw.arg is None:
                    raise TypeError("** is not allowed in an example")
                kwargs[kw.arg] = evaluate(kw.value, names)
            return call(*(evaluate(a, names) for a in args), **kwargs)
        case ast.List(elts=elts):
            return [evaluate(e, names) for e in elts]
        case ast.Tuple(elts=elts):
            return tuple(evaluate(e, names) for e in elts)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            negated = evaluate(operand, names)
            if not isinstance(negated, int):
                raise TypeError(f"cannot negate {ast.unparse(operand)}")
            return -negated
        case ast.BinOp(left=left, op=ast.BitOr(), right=right):
            a, b = evaluate(left, names), evaluate(right, names)
            if not (isinstance(a, int) and isinstance(b, int)):
                raise TypeError(f"| needs integers: {ast.unparse(node)}")
            return a | b
        case ast.Subscript(value=value, slice=ast.Slice(lower=lower, upper=upper, step=None)):
            seq = evaluate(value, names)
            lo = None if lower is None else evaluate(lower, names)
            hi = None if upper is None else evaluate(upper, names)
            if not (isinstance(seq, list | tuple) and isinstance(lo, int | None) and isinstance(hi, int | None)):
                raise TypeError(f"cannot slice {ast.unparse(node)}")
            return seq[lo:hi]
    raise TypeError(f"{ast.unparse(node)!r} is not allowed in an example")


def example_names() -> dict[str, object]:
    """The protocol's names plus the assignments of the document's ``# example data`` block."""
    names = dict(BASE_NAMES)
    data = [b for b in fenced_blocks(DOC) if b.info == "python" and b.lines[:1] == ("# example data",)]
    assert len(data) == 1, "the document needs exactly one python block starting '# example data'"
    for stmt in ast.parse("\n".join(data[0].lines)).body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise AssertionError(f"example data may only assign names: {ast.unparse(stmt)}")
        names[stmt.targets[0].id] = evaluate(stmt.value, names)
    return names


NAMES = example_names()


@dataclass(frozen=True)
class HexExample:
    line: int
    kind: str
    expr: ast.expr
    data: bytes


def parse_example(block: Block) -> HexExample:
    header: list[str] = []
    data = bytearray()
    for offset, raw in enumerate(block.lines, start=1):
        where = f"line {block.line + offset}"
        if raw.startswith("#"):
            assert not data, f"{where}: the # header must come before the bytes"
            header.append(raw[1:].strip())
        elif not raw.strip() or raw[0] == " ":
            continue  # a comment line
        else:
            content = raw.split("  ", 1)[0]
            assert HEX_TOKENS.fullmatch(content), f"{where}: not a line of hex bytes: {raw!r}"
            data += bytes.fromhex(content.replace("|", " "))
    kind, _, expr = " ".join(header).partition(":")
    assert kind in KINDS, f"line {block.line}: the header must start with one of {KINDS}, not {kind!r}"
    assert data, f"line {block.line}: the example has no bytes"
    return HexExample(block.line, kind, ast.parse(expr.strip(), mode="eval").body, bytes(data))


HEX_BLOCKS = [b for b in fenced_blocks(DOC) if b.info == "hex"]


def _block_id(block: Block) -> str:
    first = block.lines[0] if block.lines else ""
    return f"line{block.line}:{first[2:40]}"


# --- the examples -----------------------------------------------------------------------------


def test_the_document_has_examples_of_every_kind() -> None:
    kinds = [parse_example(b).kind for b in HEX_BLOCKS]
    assert all(kinds.count(k) for k in KINDS), kinds
    framed = {type(evaluate(e.expr, NAMES)) for e in map(parse_example, HEX_BLOCKS) if e.kind == "frame"}
    assert framed >= set(MESSAGE_CLASSES.values()) - {m.Presence, m.Roster}, "every frame type needs an example"


@pytest.mark.parametrize("block", HEX_BLOCKS, ids=_block_id)
def test_hex_example_decodes_to_its_message_and_encodes_to_its_bytes(block: Block) -> None:
    example = parse_example(block)
    if example.kind == "points":
        check_points(example)
        return
    msg = evaluate(example.expr, NAMES)
    assert type(msg) in MESSAGE_CLASSES.values(), f"{ast.unparse(example.expr)} is not a message"
    frame = encode(msg)  # type: ignore[arg-type]  # checked just above
    if example.kind == "stream":
        assert frame_bytes(frame) == example.data
        decoder = StreamDecoder(LIMITS.max_frame_bytes)
        frames: list[bytes] = []
        for i in range(len(example.data)):  # byte by byte
            decoder.feed(example.data[i : i + 1])
            frames += decoder.frames()
        assert frames == [frame] and decoder.pending == 0
    else:
        assert frame == example.data, f"encode gives {frame.hex(' ')}"
    assert decode_frame(frame, LIMITS) == msg


def check_points(example: HexExample) -> None:
    call = example.expr
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "ink", (
        "a points example is ink(FLAGS, POINTS[, START])"
    )
    args = [evaluate(a, NAMES) for a in call.args]
    assert len(args) in (2, 3) and not call.keywords
    flags, points, start = args[0], args[1], args[2] if len(args) == 3 else 0
    assert isinstance(flags, int) and isinstance(start, int) and isinstance(points, list)
    assert all(isinstance(p, Point) for p in points)
    assert ink(flags, points, start) == example.data, f"encode_points gives {ink(flags, points, start).hex(' ')}"
    state = PointState()
    decode_points(ink(flags, points[:start]), start, flags, state, LIMITS)
    assert decode_points(example.data, len(points) - start, flags, state, LIMITS) == points[start:]


def test_no_bytes_are_written_outside_checked_examples() -> None:
    """Hex in prose or in other blocks would escape the checks above."""
    spans = [s for s in re.findall(r"`([^`\n]+)`", prose(DOC)) if HEX_SPAN.fullmatch(s)]
    assert spans == []
    for block in fenced_blocks(DOC):
        if block.info != "hex":
            stray = [line for line in block.lines if HEX_SPAN.fullmatch(line.split("  ", 1)[0])]
            assert stray == [], f"line {block.line}: bytes outside a hex block"


# --- tables and layouts -----------------------------------------------------------------------


def test_error_code_table_is_errors_py() -> None:
    rows = table(section("### 7.1 "), ["code", "name", "sent when", "connection"])
    assert {int(r[0]): r[1] for r in rows} == {int(c): c.name for c in ErrorCode}
    assert len(rows) == len(ErrorCode)


def test_close_code_table_is_errors_py() -> None:
    rows = table(section("### 7.2 "), ["code", "name", "used when"])
    assert {int(r[0]): r[1] for r in rows} == {int(c): c.name for c in CloseCode}
    assert len(rows) == len(CloseCode)


def test_message_type_table_is_msgtype() -> None:
    rows = table(section("## 4. "), ["type", "name", "direction", "purpose"])
    camel = {t: "".join(w.capitalize() for w in t.name.split("_")) for t in MsgType}
    assert {int(r[0]): r[1] for r in rows} == {int(t): camel[t] for t in MsgType}


def test_limits_table_is_limits() -> None:
    rows = table(section("### 8.1 "), ["field", "default", "variable", "checked on", "error"])
    assert [r[0] for r in rows] == [f.name for f in dataclasses.fields(Limits)]
    for name, default, variable, *_ in rows:
        assert number(default) == getattr(LIMITS, name), name
        assert variable == f"`TUTORWIRE_{name.upper()}`"


def test_settings_table_matches_settings() -> None:
    settings = Settings()
    rows = table(section("### 8.2 "), ["field", "default", "variable", "effect"])
    assert rows
    for name, default, variable, _ in rows:
        if name == "transport_max_frame_bytes":
            assert settings.transport_max_frame_bytes == max(4 * LIMITS.max_frame_bytes, 1 << 20)
            continue
        assert name in {f.name for f in dataclasses.fields(Settings)}, f"{name} is not a setting"
        value = getattr(settings, name)
        if isinstance(value, bool | str):
            assert default.strip("`") == str(value).lower() or (value == "" and default == "empty"), name
        else:
            assert number(default) == value, name
        assert variable == f"`TUTORWIRE_{name.upper()}`"


def test_message_layouts_name_the_fields_in_order() -> None:
    """Every ``[type, field, ...]`` in the text lists the message's fields in wire order."""
    seen: set[MsgType] = set()
    for number_text, fields_text in LAYOUT.findall(prose(DOC)):
        kind = MsgType(int(number_text))
        names = [f for f in fields_text.split(", ") if f]
        wire = [f.name for f in dataclasses.fields(MESSAGE_CLASSES[kind])]
        # an Event body carries an op without its cseq
        assert names in (wire, [f for f in wire if f != "cseq"]), f"[{kind}, {', '.join(names)}] vs {wire}"
        seen.add(kind)
    assert seen == set(MsgType)
    stroke_record = [f.name for f in dataclasses.fields(m.SnapshotStroke)]
    assert f"`[{', '.join(stroke_record)}]`" in DOC


def test_measured_ink_sizes_are_what_the_script_prints() -> None:
    text = section("### 5.6 ")
    scripts = [b for b in fenced_blocks(text) if b.info == "sh"]
    assert len(scripts) == 1
    lines = list(scripts[0].lines)
    start = next(i for i, line in enumerate(lines) if line.endswith("<<'EOF'"))
    code = "\n".join(lines[start + 1 : lines.index("EOF")])
    result = subprocess.run([sys.executable, "-"], input=code, cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=True)
    assert result.stdout.strip() in text
