"""The knowledge-point catalogue: subjects, their curriculum strands, textbook volumes, chapters and
knowledge points for grades 7-12, each with a stable id and a zh-CN and an English name.

The tree lives in the data files beside this module (``maths_sciences.txt``, ``languages.txt``;
their header says the format). Two trees share the points: a point sits in one chapter of one
volume (the textbook's order) and its id starts with its strand's id (``math.algebra.factoring``
is in strand ``math.algebra`` and in chapter ``math.g8a.c14``), so a tutor who declares the strand
``math.algebra`` a strength covers every algebra point in every grade.

A request may name points, chapters or strands of its subject (``check_request_points``). Parsing
is pure and strict: ``parse`` raises ``CatalogueError`` with the line of the first problem.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from ..errors import MatcherError, ValidationFailed

Kind = Literal["subject", "strand", "volume", "chapter", "point"]
DATA_FILES = ("maths_sciences.txt", "languages.txt")
REQUESTABLE: frozenset[str] = frozenset({"point", "chapter", "strand"})
NODE_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_LINE = re.compile(r"(subject|strand|volume|chapter|point) (\S+)(?: (\d{1,2}))? (.+?) \| (.+)")


class CatalogueError(MatcherError):
    """The catalogue's data file is malformed (a programming error, found by the tests)."""


@dataclass(frozen=True, slots=True)
class Node:
    kind: Kind
    id: str
    zh: str
    en: str
    subject: str
    parent: str | None  # the volume of a chapter, the chapter of a point, the subject otherwise
    grade: int | None = None  # of a volume, and of its chapters and points
    strand: str | None = None  # of a point
    children: tuple[str, ...] = field(default=(), compare=False)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "zh": self.zh, "en": self.en,
                               "subject": self.subject}
        if self.grade is not None:
            out["grade"] = self.grade
        if self.parent is not None and self.kind in ("chapter", "point"):
            out["parent"] = self.parent
        if self.strand is not None:
            out["strand"] = self.strand
        return out

    def name(self, lang: str) -> str:
        return self.zh if lang.lower().startswith("zh") else self.en


class Catalogue:
    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes: dict[str, Node] = {n.id: n for n in nodes}
        self.order = [n.id for n in nodes]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def get(self, node_id: str) -> Node | None:
        return self.nodes.get(node_id)

    def subjects(self) -> list[Node]:
        return [self.nodes[i] for i in self.order if self.nodes[i].kind == "subject"]

    def of_kind(self, kind: Kind, subject: str | None = None) -> list[Node]:
        return [n for i in self.order if (n := self.nodes[i]).kind == kind and subject in (None, n.subject)]

    def points_under(self, node_id: str) -> list[str]:
        """The knowledge points a node stands for: itself (a point), a chapter's or volume's
        points, a strand's points in every grade, a subject's all."""
        node = self.nodes[node_id]
        if node.kind == "point":
            return [node.id]
        if node.kind == "strand":
            return [p.id for p in self.of_kind("point", node.subject) if p.strand == node.id]
        if node.kind == "subject":
            return [p.id for p in self.of_kind("point", node.subject)]
        return [p for c in node.children for p in self.points_under(c)]

    def search(self, query: str, subject: str | None = None, kinds: Iterable[str] = ("point", "chapter"),
               grade: int | None = None, limit: int = 50) -> list[Node]:
        """Nodes whose zh-CN name, English name or id contains ``query`` (case-insensitive; every
        space-separated word must match), in textbook order."""
        words = [w for w in query.casefold().split() if w]
        wanted = set(kinds)
        out: list[Node] = []
        for node_id in self.order:
            n = self.nodes[node_id]
            if n.kind not in wanted or (subject is not None and n.subject != subject):
                continue
            if grade is not None and n.grade is not None and n.grade != grade:
                continue
            haystack = f"{n.zh}\n{n.en}\n{n.id}".casefold()
            if all(w in haystack for w in words):
                out.append(n)
                if len(out) >= limit:
                    break
        return out

    def tree(self, subject: str) -> dict[str, Any]:
        """A subject as nested volumes, chapters and points, and its strands (the list API)."""
        s = self.nodes.get(subject)
        if s is None or s.kind != "subject":
            raise ValidationFailed("subject", f"no subject {subject!r} in the catalogue")

        def nest(node_id: str) -> dict[str, Any]:
            n = self.nodes[node_id]
            out = n.public()
            kids = [c for c in n.children if self.nodes[c].kind != "strand"]
            if kids:
                out["children"] = [nest(c) for c in kids]
            return out

        out = nest(subject)
        out["strands"] = [self.nodes[c].public() for c in s.children if self.nodes[c].kind == "strand"]
        return out

    def check_request_points(self, subject: str, ids: Sequence[str]) -> None:
        """Each id must be a point, chapter or strand of ``subject``; else ``ValidationFailed``
        naming the first that is not."""
        for kp in ids:
            node = self.nodes.get(kp)
            if node is None:
                raise ValidationFailed("knowledge_points", f"{kp!r} is not in the knowledge-point catalogue")
            if node.subject != subject or node.kind not in REQUESTABLE:
                raise ValidationFailed("knowledge_points",
                                       f"{kp!r} is not a knowledge point, chapter or strand of {subject}")


def parse(lines: Iterable[tuple[str, int, str]]) -> Catalogue:
    """Nodes from ``(file, line number, text)`` triples; see the data files' header."""
    nodes: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    subject = volume = chapter = None
    grade: int | None = None
    for where, number, raw in lines:
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        m = _LINE.fullmatch(text)
        fail = functools.partial(_problem, f"{where}:{number}")
        if m is None:
            raise fail("expected 'kind id [grade] zh-CN | English'")
        kind, node_id, grade_text, zh, en = m.groups()
        if not NODE_ID.fullmatch(node_id) or node_id in nodes:
            raise fail(f"id {node_id!r} is malformed or used twice")
        if (grade_text is not None) != (kind == "volume"):
            raise fail("a volume, and only a volume, names its grade")
        parent: str | None
        strand = None
        if kind == "subject":
            subject, volume, chapter, parent = node_id, None, None, None
        else:
            if subject is None or not node_id.startswith(subject + "."):
                raise fail(f"{kind} {node_id!r} must start with its subject's id")
            parent = subject
            if kind == "volume":
                grade = int(grade_text)
                if not 7 <= grade <= 12:
                    raise fail("grades run from 7 to 12")
                volume, chapter = node_id, None
            elif kind == "chapter":
                if volume is None or not node_id.startswith(volume + "."):
                    raise fail(f"chapter {node_id!r} must follow its volume and start with its id")
                parent, chapter = volume, node_id
            elif kind == "point":
                if chapter is None:
                    raise fail("a point must follow its chapter")
                parent = chapter
                strand = ".".join(node_id.split(".")[:2])
                if nodes.get(strand, {}).get("kind") != "strand":
                    raise fail(f"point {node_id!r} does not start with a strand of {subject}")
        nodes[node_id] = {"kind": kind, "id": node_id, "zh": zh, "en": en, "subject": subject, "parent": parent,
                          "grade": grade if kind in ("volume", "chapter", "point") else None, "strand": strand,
                          "children": []}
        if parent is not None:
            nodes[parent]["children"].append(node_id)
        order.append(node_id)
    for n in nodes.values():
        if n["kind"] in ("volume", "chapter") and not n["children"]:
            raise CatalogueError(f"{n['kind']} {n['id']!r} is empty")
    return Catalogue([Node(**{**nodes[i], "children": tuple(nodes[i]["children"])}) for i in order])


def _problem(where: str, message: str) -> CatalogueError:
    return CatalogueError(f"{where}: {message}")


def _data_lines() -> Iterator[tuple[str, int, str]]:
    for name in DATA_FILES:
        text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            yield name, number, line


@functools.cache
def catalogue() -> Catalogue:
    """The shipped catalogue (parsed once per process)."""
    return parse(_data_lines())
