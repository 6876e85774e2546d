"""The knowledge-point catalogue: its data files parse, ids are stable and well formed, every
subject covers its grades, search works in either language, and malformed data is refused."""

from __future__ import annotations

import pytest

from matcher.catalogue import Catalogue, CatalogueError, catalogue, parse
from matcher.errors import ValidationFailed

# As the textbooks have them: physics from grade 8, chemistry from 9, junior biology in 7-8 only.
SUBJECT_GRADES = {"math": range(7, 13), "chinese": range(7, 13), "english": range(7, 13),
                  "biology": (7, 8, 10, 11, 12), "physics": range(8, 13), "chemistry": range(9, 13)}


def test_every_subject_covers_its_grades_with_chapters_and_points() -> None:
    cat = catalogue()
    assert [s.id for s in cat.subjects()] == ["math", "physics", "chemistry", "biology", "chinese", "english"]
    for subject, grades in SUBJECT_GRADES.items():
        volumes = cat.of_kind("volume", subject)
        assert {v.grade for v in volumes} == set(grades), subject
        for v in volumes:
            assert v.children and all(cat.nodes[c].kind == "chapter" and cat.nodes[c].children for c in v.children)
        points = cat.of_kind("point", subject)
        assert len(points) >= 30, subject
        for p in points:
            assert p.zh and p.en and p.zh != p.en and p.strand is not None and p.id.startswith(p.strand + ".")


def test_the_ids_the_old_requests_used_are_catalogue_ids() -> None:
    cat = catalogue()
    assert cat.nodes["math.algebra.linear-equations"].parent == "math.g7a.c3"  # 一元一次方程
    assert cat.nodes["math.algebra.factoring"].parent == "math.g8a.c14"
    assert cat.nodes["math.algebra"].kind == "strand"
    assert "math.algebra.factoring" in cat.points_under("math.algebra")
    assert cat.points_under("math.g8a.c14") == ["math.number.polynomial-multiplication", "math.algebra.factoring"]


def test_search_in_either_language() -> None:
    cat = catalogue()
    assert [n.id for n in cat.search("因式分解")] == ["math.g8a.c14", "math.algebra.factoring"]
    assert "math.algebra.factoring" in [n.id for n in cat.search("factoris")]
    assert [n.id for n in cat.search("ohm LAW", kinds=["point"])] == [
        "physics.electricity.ohms-law", "physics.electricity.emf-closed-circuit"]  # junior, then senior
    assert all(n.subject == "chemistry" for n in cat.search("平衡", subject="chemistry"))
    assert all(n.grade == 9 for n in cat.search("函数", grade=9))
    assert len(cat.search("the", limit=3)) == 3
    assert cat.search("zzzz-nothing") == []


def test_requests_are_checked_against_it() -> None:
    cat = catalogue()
    cat.check_request_points("math", ["math.algebra.factoring", "math.g8a.c14", "math.algebra"])
    with pytest.raises(ValidationFailed, match="'kp1' is not in the knowledge-point catalogue"):
        cat.check_request_points("math", ["kp1"])
    with pytest.raises(ValidationFailed, match="not a knowledge point, chapter or strand of math"):
        cat.check_request_points("math", ["physics.electricity.ohms-law"])
    with pytest.raises(ValidationFailed, match="not a knowledge point, chapter or strand of math"):
        cat.check_request_points("math", ["math.g8a"])  # a volume is too wide


def test_tree_lists_volumes_chapters_points() -> None:
    tree = catalogue().tree("physics")
    assert tree["id"] == "physics" and tree["zh"] == "物理"
    first = tree["children"][0]
    assert first["kind"] == "volume" and first["grade"] == 8
    assert first["children"][0]["children"][0]["kind"] == "point"
    assert {s["id"] for s in tree["strands"]} >= {"physics.mechanics", "physics.optics"}
    with pytest.raises(ValidationFailed):
        catalogue().tree("music")


def lines(text: str) -> list[tuple[str, int, str]]:
    return [("t.txt", i, line) for i, line in enumerate(text.splitlines(), 1)]


GOOD = """subject m 数学 | Maths
strand m.a 代数 | Algebra
volume m.g7a 7 七年级上册 | Grade 7
chapter m.g7a.c1 第一章 | Chapter 1
point m.a.x 一 | One
"""


@pytest.mark.parametrize(("text", "message"), [
    (GOOD + "point m.a.x 二 | Two\n", "t.txt:6: id 'm.a.x' is malformed or used twice"),
    (GOOD + "point m.b.y 二 | Two\n", "t.txt:6: point 'm.b.y' does not start with a strand of m"),
    (GOOD + "chapter m.g8.c1 第一章 | Chapter 1\n", "t.txt:6: chapter 'm.g8.c1' must follow its volume"),
    (GOOD + "volume m.g13 13 高四 | Grade 13\n", "t.txt:6: grades run from 7 to 12"),
    (GOOD + "volume m.g9 9 九年级 | Grade 9\n", "volume 'm.g9' is empty"),
    (GOOD + "point m.a.z no English name\n", "t.txt:6: expected 'kind id [grade] zh-CN | English'"),
    ("strand m.a 代数 | Algebra\n", "t.txt:1: strand 'm.a' must start with its subject's id"),
])
def test_malformed_data_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(CatalogueError) as info:
        parse(lines(text))
    assert message in info.value.message


def test_good_data_parses() -> None:
    cat = parse(lines(GOOD))
    assert isinstance(cat, Catalogue) and cat.points_under("m") == ["m.a.x"]
