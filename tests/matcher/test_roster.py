"""Roster files (CSV and JSON): every field checked, every bad row named by its line, all or nothing;
import and export over both stores."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matcher import MatcherError, TutorState
from matcher.memory_store import MemoryStore
from matcher.records import GRADE_BANDS, Pool, TutorRecord
from matcher.roster import (
    EXPORT_COLUMNS,
    Format,
    RosterError,
    RowProblem,
    decode_roster,
    demo_roster,
    export_roster,
    import_roster,
    parse_roster,
    roster_format,
    roster_text,
)
from matcher.service import Matcher
from matcher.store import Store
from matcher.worker import MatchWorker
from tests.matcherkit import T0, settings, store

__all__ = ["store"]

HEADER = "tutor_id,name,subject,grade_bands,strengths\n"

# A BOM and CRLF as Excel writes them, a header in another case and order, a blank line, a quoted
# comma, a quoted cell over two lines, a tutor's second row with the name left empty, upper case
# ids and the full-width semicolon of a Chinese input method.
GOOD_CSV = (
    "\ufeffTutor_ID,Name,Subject,Grade_Bands,Strengths\r\n"
    "wang.fang,Wang Fang,math,junior;senior,math.algebra;math.geometry.congruent-triangles\r\n"
    "\r\n"
    'li.na,"Li, Na",chinese,primary-lower,"chinese.pinyin;\r\nchinese.characters"\r\n'
    "wang.fang,,Physics,Junior,PHYSICS.optics\uff1b physics.mechanics ;\r\n"
)
GOOD_JSON = """[
  {"tutor_id": "wang.fang", "name": "Wang Fang",
   "teaches": [{"subject": "physics", "band": "junior"}, {"subject": "math", "band": "senior"},
               {"subject": "math", "band": "junior"}],
   "strengths": ["physics.optics", "math.algebra", "math.geometry.congruent-triangles", "physics.mechanics"]},
  {"tutor_id": "li.na", "name": "Li, Na", "teaches": [{"subject": "chinese", "band": "primary-lower"}],
   "strengths": ["chinese.pinyin", "chinese.characters"]}
]
"""
EXPECTED = [
    TutorRecord("wang.fang", "Wang Fang",
                (Pool("math", "junior"), Pool("math", "senior"), Pool("physics", "junior")),
                ("math.algebra", "math.geometry.congruent-triangles", "physics.mechanics", "physics.optics")),
    TutorRecord("li.na", "Li, Na", (Pool("chinese", "primary-lower"),), ("chinese.characters", "chinese.pinyin")),
]


def problems(text: str, fmt: Format) -> list[tuple[int | None, int | None, str]]:
    with pytest.raises(RosterError) as info:
        parse_roster(text, fmt)
    return [(p.line, p.entry, p.message) for p in info.value.problems]


def lines_and(text: str, fmt: Format) -> list[tuple[int | None, int | None]]:
    return [(line, entry) for line, entry, _ in problems(text, fmt)]


# -- good files ----------------------------------------------------------------------------------


def test_a_good_csv_file() -> None:
    assert parse_roster(GOOD_CSV, "csv") == EXPECTED


def test_the_json_form_gives_the_same_tutors() -> None:
    assert parse_roster(GOOD_JSON, "json") == EXPECTED


def test_a_header_alone_or_an_empty_array_is_an_empty_roster() -> None:
    assert parse_roster(HEADER, "csv") == []
    assert parse_roster(" [ ]\n", "json") == []


def test_each_format_converts_to_the_other() -> None:
    for fmt in ("csv", "json"):
        assert parse_roster(roster_text(EXPECTED, fmt), fmt) == EXPECTED


def test_the_demo_roster() -> None:
    tutors = demo_roster()
    assert len(tutors) == 8 and len({t.tutor_id for t in tutors}) == 8
    pools = {p for t in tutors for p in t.teaches}
    assert {p.subject for p in pools} == {"math", "chinese", "english", "physics"}
    assert {p.band for p in pools} == set(GRADE_BANDS)
    assert all(t.strengths and t.name for t in tutors)
    assert parse_roster(roster_text(tutors, "csv"), "csv") == tutors


def test_format_from_the_file_name() -> None:
    assert [roster_format(n) for n in ("a.csv", "B.JSON", "c.xlsx", "csv")] == ["csv", "json", None, None]


def test_decoding_utf8_with_bom_and_gb18030_from_excel() -> None:
    text = HEADER + "wang.fang,王芳,math,junior,math.algebra\n"
    assert decode_roster(b"\xef\xbb\xbf" + text.encode()) == text
    assert decode_roster(text.encode("gb18030")) == text
    assert parse_roster(decode_roster(text.encode("gb18030")), "csv")[0].name == "王芳"
    with pytest.raises(RosterError) as info:
        decode_roster(b"a\nb\n\x80\xff\n")
    assert info.value.problems[0].line == 3


# -- bad CSV rows --------------------------------------------------------------------------------

OK_ROW = "ok.tutor,Ok,math,junior,math.algebra\n"


@pytest.mark.parametrize(("row", "message"), [
    ("wang fang,Wang Fang,math,junior,\n", "tutor_id 'wang fang' is not a user id"),
    (",Wang Fang,math,junior,\n", "tutor_id is empty"),
    ("wang,,math,junior,\n", "name is empty"),
    ('wang,"Wang\tFang",math,junior,\n', "name contains a control character"),
    ("wang," + "W" * 101 + ",math,junior,\n", "name is longer than 100 characters"),
    ("wang,Wang,,junior,\n", "subject is empty"),
    ("wang,Wang,math!,junior,\n", "subject 'math!' is not a subject id"),
    ("wang,Wang,math,grade7,\n", "grade band 'grade7' is not one of primary-lower (grades 1-3)"),
    ("wang,Wang,math, ; ,\n", "grade_bands is empty"),
    ("wang,Wang,math,junior,linear equations\n", "strength 'linear equations' is not a knowledge point id"),
    ("wang,Wang,math,junior,algebra\n", "strength 'algebra' is not a knowledge point or area of subject 'math'"),
    ("wang,Wang,math,junior,physics.optics\n", "it must start with 'math.'"),
    ("wang,Wang,math,junior,math.algebra,extra\n", "the row has 6 cells but the header has 5"),
    ("wang,Wang,math,junior\n", "the row has 4 cells but the header has 5"),
    ('wang,"Wang" Fang,math,junior,\n', "the row is not valid CSV"),
])
def test_each_kind_of_bad_row_is_named_by_its_line(row: str, message: str) -> None:
    found = problems(HEADER + OK_ROW + row + OK_ROW.replace("ok.tutor", "ok2"), "csv")
    assert [line for line, _, _ in found] == [3]
    assert message in found[0][2]


def test_empty_trailing_cells_from_a_spreadsheet_are_fine() -> None:
    assert parse_roster(HEADER + "ok.tutor,Ok,math,junior,math.algebra,,\n", "csv")[0].tutor_id == "ok.tutor"


def test_a_row_with_several_problems_gets_each() -> None:
    found = problems(HEADER + "wang,,math,junor;seinor,algebra\n", "csv")
    assert [line for line, _, _ in found] == [2, 2, 2, 2]
    assert [m.split(" ")[0] for _, _, m in found] == ["name", "grade", "grade", "strength"]


def test_every_bad_row_is_listed_and_nothing_is_returned() -> None:
    text = (HEADER + OK_ROW                              # line 2
            + "bad one,B,math,junior,\n"                 # line 3
            + "good,G,math,senior,\n"                    # line 4
            + '"multi",M,math,junior,"math.algebra;\n'   # line 5, a cell over two lines
            + 'math.geometry"\n'                         # line 6
            + "bad2,B,math,gaokao,\n"                    # line 7
            + "\n"                                       # line 8
            + "bad3,B,english,junior,math.algebra\n")    # line 9
    assert lines_and(text, "csv") == [(3, None), (7, None), (9, None)]


def test_an_unterminated_quote_is_reported_where_it_starts() -> None:
    found = problems(HEADER + OK_ROW + 'wang,"Wang,math,junior,\n' + OK_ROW + OK_ROW, "csv")
    assert found[0][0] == 3 and "not valid CSV" in found[0][2]


def test_a_tutors_rows_merge_but_may_not_repeat_a_subject_or_disagree_on_the_name() -> None:
    text = HEADER + "wang,Wang,math,junior,\nwang,,physics,junior,\nwang,Wang,math,senior,\nwang,Wong,english,junior,\n"
    found = problems(text, "csv")
    assert [(line, m[:40]) for line, _, m in found] == [
        (4, "tutor 'wang' already has a row for subje"), (5, "name 'Wong' differs from 'Wang' on line ")]
    assert "on line 2" in found[0][2] and "on line 2" in found[1][2]


def test_a_bad_first_row_still_counts_for_the_duplicate_check() -> None:
    assert lines_and(HEADER + "wang,Wang,math,gaokao,\nwang,Wang,math,junior,\n", "csv") == [(2, None), (3, None)]


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("\n\n", "the file is empty"),
    ("tutor_id,name,subject,grade_bands\nwang,Wang,math,junior\n", "missing column 'strengths'"),
    ("tutor_id,name,subject,grade_bands,strengths,phone\n", "unknown column 'phone'"),
    ("tutor_id,name,name,subject,grade_bands,strengths\n", "repeated column 'name'"),
])
def test_a_bad_header_is_line_one(text: str, message: str) -> None:
    found = problems(text, "csv")
    assert found[0][0] == 1 and message in found[0][2]


# -- bad JSON entries ----------------------------------------------------------------------------


def entry(**fields: object) -> str:
    base: dict[str, object] = {"tutor_id": "wang", "name": "Wang", "teaches": [{"subject": "math", "band": "junior"}],
                               "strengths": ["math.algebra"]}
    return json.dumps({k: v for k, v in (base | fields).items() if v is not None})


GOOD_ENTRY = entry(tutor_id="ok")


@pytest.mark.parametrize(("bad", "message"), [
    ("3", "the entry is not an object"),
    ('{"tutor_id": "wang", "name": "Wang", "teaches": [{"subject": "math", "band": "junior"}], "name": "W"}',
     "key 'name' appears more than once"),
    (entry(phone="123"), "unknown key 'phone'"),
    (entry(teaches=None), "teaches is missing"),
    (entry(tutor_id=7), "tutor_id is not a string"),
    (entry(tutor_id="wang fang"), "tutor_id 'wang fang' is not a user id"),
    (entry(name=["Wang"]), "name is not a string"),
    (entry(name="  "), "name is empty"),
    (entry(teaches=[]), "teaches must be a non-empty array"),
    (entry(teaches={"subject": "math"}), "teaches must be a non-empty array"),
    (entry(teaches=[{"subject": "math"}]), "teaches[1] is not an object"),
    (entry(teaches=[{"subject": "math", "band": 7}]), "teaches[1]: subject and band must be strings"),
    (entry(teaches=[{"subject": "math", "band": "grade7"}]), "grade band 'grade7' is not one of"),
    (entry(teaches=[{"subject": "Math Olympiad", "band": "junior"}]), "subject 'math olympiad' is not a subject id"),
    (entry(strengths="math.algebra"), "strengths must be an array"),
    (entry(strengths=["physics.optics"]), "is not a knowledge point or area of subject 'math'"),
])
def test_each_kind_of_bad_entry_is_named_by_index_and_line(bad: str, message: str) -> None:
    found = problems(f"[\n{GOOD_ENTRY},\n\n{bad},\n{entry(tutor_id='ok2')}\n]\n", "json")
    assert [(line, e) for line, e, _ in found] == [(4, 2)] * len(found)
    assert any(message in m for _, _, m in found), found


def test_a_repeated_tutor_id_names_the_first_entry() -> None:
    found = problems(f"[{GOOD_ENTRY},\n{entry()},\n{entry(name='W2')}]", "json")
    assert [(line, e) for line, e, _ in found] == [(3, 3)]
    assert "tutor_id 'wang' is already entry 2 (line 2)" in found[0][2]


def test_every_bad_entry_is_listed_and_nothing_is_returned() -> None:
    text = "[\n" + ",\n".join([GOOD_ENTRY, entry(name=""), entry(tutor_id="b"), entry(tutor_id="c", teaches=[])]) + "]"
    assert lines_and(text, "json") == [(3, 2), (5, 4)]


@pytest.mark.parametrize(("text", "where", "message"), [
    ("", (1, None), "the file is empty"),
    ('{"tutors": []}', (1, None), "the file does not start with ["),
    (f"[{GOOD_ENTRY},\n\n{{'tutor_id': 'x'}}]", (3, 2), "not valid JSON"),
    (f"[{GOOD_ENTRY},\n]", (2, 2), "not valid JSON"),
    (f"[\n{GOOD_ENTRY}\n{GOOD_ENTRY}]", (3, None), "expected , or ] after entry 1"),
    (f"[{GOOD_ENTRY}]\n[]", (2, None), "there is text after the array's closing ]"),
    (f"[{GOOD_ENTRY}", (1, None), "expected , or ] after entry 1"),
])
def test_json_that_does_not_parse_is_named_by_its_line(text: str, where: tuple[int, int | None], message: str) -> None:
    found = problems(text, "json")
    assert [(line, e) for line, e, _ in found] == [where] and message in found[0][2]


def test_the_error_is_a_matcher_error_with_a_sentence() -> None:
    with pytest.raises(MatcherError, match=r"^2 problems in the roster, nothing imported: line 2: .*; line 3: "):
        parse_roster(HEADER + "a b,A,math,junior,\nb,B,math,gaokao,\n", "csv")
    assert str(RowProblem(4, 2, "x")) == "line 4, entry 2: x"


# -- round trips -----------------------------------------------------------------------------------

_SUBJECT = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_NAME = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30).map(str.strip).filter(bool)


@st.composite
def tutors(draw: st.DrawFn) -> TutorRecord:
    subjects = draw(st.lists(_SUBJECT, min_size=1, max_size=3, unique=True))
    bands = st.lists(st.sampled_from(GRADE_BANDS), min_size=1, unique=True)
    pools = [Pool(s, b) for s in subjects for b in draw(bands)]
    kps = st.tuples(st.sampled_from(subjects), st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}(\.[a-z0-9_-]{1,8})?",
                                                               fullmatch=True)).map(".".join)
    strengths = draw(st.lists(kps, max_size=5, unique=True))
    return TutorRecord(draw(st.from_regex(r"[A-Za-z0-9_.@-]{1,64}", fullmatch=True)), draw(_NAME),
                       tuple(sorted(pools, key=lambda p: (p.subject, GRADE_BANDS.index(p.band)))),
                       tuple(sorted(strengths)))


@given(st.lists(tutors(), max_size=5, unique_by=lambda t: t.tutor_id), st.sampled_from(["csv", "json"]))
def test_parse_reads_back_what_roster_text_writes(roster: list[TutorRecord], fmt: Format) -> None:
    assert parse_roster(roster_text(roster, fmt), fmt) == roster


@given(st.text(max_size=200), st.sampled_from(["csv", "json"]))
def test_any_text_parses_or_raises_the_roster_error(text: str, fmt: Format) -> None:
    try:
        parse_roster(text, fmt)
    except RosterError as exc:
        assert exc.problems and all(p.line is None or p.line >= 1 for p in exc.problems)


# -- import and export over both stores ----------------------------------------------------------


async def test_import_creates_tutors_and_reimport_updates_them_keeping_presence(store: Store) -> None:
    m = Matcher(store, settings())
    roster = demo_roster()
    assert await import_roster(m, roster) == 8
    assert await m.tutor_ids() == sorted(t.tutor_id for t in roster)
    for t in roster:
        got = await m.tutor(t.tutor_id)
        assert (got.name, got.teaches, got.strengths, got.state) == (t.name, t.teaches, t.strengths, TutorState.OFFLINE)
    await m.set_availability("li.jun", True, T0)
    changed = [TutorRecord("li.jun", "Li Jun", (Pool("math", "junior"),), ("math.geometry",))]
    assert await import_roster(m, changed) == 1
    got = await m.tutor("li.jun")
    assert (got.teaches, got.strengths, got.state) == (changed[0].teaches, ("math.geometry",), TutorState.AVAILABLE)
    assert len(await m.tutor_ids()) == 8  # tutors not in the file stay


async def test_import_refuses_a_bad_tutor_id_from_elsewhere(store: Store) -> None:
    with pytest.raises(MatcherError):
        await import_roster(Matcher(store), [TutorRecord("no spaces", "X", (Pool("math", "junior"),))])


async def test_export_json_is_the_profiles_and_imports_again(store: Store) -> None:
    m = Matcher(store, settings())
    await import_roster(m, demo_roster())
    exported = json.loads(await export_roster(m, "json"))
    assert exported == [await m.profile(t) for t in await m.tutor_ids()]
    again = parse_roster(await export_roster(m, "json"), "json")  # estimates are accepted and ignored
    assert sorted(again, key=lambda t: t.tutor_id) == sorted(demo_roster(), key=lambda t: t.tutor_id)


async def test_export_csv_is_a_long_table_with_learned_estimates(store: Store) -> None:
    m = Matcher(store, settings())
    await import_roster(m, [TutorRecord("wang", "Wang", (Pool("math", "junior"), Pool("math", "senior")),
                                        ("math.algebra",))])
    await m.set_availability("wang", True, T0)
    kp = "math.algebra.linear-equations"
    r = await m.create_request("s1", {"subject": "math", "grade": 7, "knowledge_points": [kp]}, T0)
    await MatchWorker(m).step(T0 + 1)
    match = await m.accept("wang", r.request_id, T0 + 2)
    await m.report_outcome(match.session_id, "s1", 5)
    rows = list(csv.DictReader(io.StringIO(await export_roster(m, "csv"))))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    table = {(row["band"], row["knowledge_point"]): (row["declared"], row["sessions"]) for row in rows}
    assert table == {("junior", ""): ("1", "1"), ("junior", kp): ("1", "1"), ("senior", ""): ("1", "0")}
    profile = await m.profile("wang")
    junior = next(e for e in profile["estimates"] if e["band"] == "junior")
    learned = next(row for row in rows if row["knowledge_point"] == kp)
    assert float(learned["mean"]) == junior["knowledge_points"][kp]["mean"] > 0.72  # a 5-star session raised it


async def test_an_empty_store_exports_an_empty_roster() -> None:
    m = Matcher(MemoryStore())
    assert json.loads(await export_roster(m, "json")) == []
    assert await export_roster(m, "csv") == ",".join(EXPORT_COLUMNS) + "\n"


def test_the_import_examples_in_the_docs_parse() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "roster.md").read_text()
    blocks = re.findall(r"```(csv|json)\n(.*?)```", doc, re.S)
    csv_example, json_example = (next(text for fmt, text in blocks if fmt == want) for want in ("csv", "json"))
    from_csv, from_json = parse_roster(csv_example, "csv"), parse_roster(json_example, "json")
    assert [t.tutor_id for t in from_csv] == ["wang.fang", "sun.hao"]
    assert from_csv[1] == from_json[0]
