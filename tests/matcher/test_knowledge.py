"""Bayesian Knowledge Tracing: the online update, the EM fit against sequences generated from known
parameters, the words a student and a tutor are shown, the researchers' CSV."""

from __future__ import annotations

import csv
import io
import random

import pytest

from matcher import knowledge as kn
from matcher.knowledge import BktParams, KnowledgeState

P = BktParams(prior=0.3, learn=0.15, guess=0.2, slip=0.1)


def test_update_follows_bayes_then_learning() -> None:
    right = kn.update(None, 1.0, P, 10.0)
    # P(known | right) = 0.3 * 0.9 / (0.3 * 0.9 + 0.7 * 0.2), then + (1 - p) * 0.15
    post = 0.27 / (0.27 + 0.14)
    assert right.p_known == pytest.approx(post + (1 - post) * 0.15)
    assert (right.observations, right.sessions, right.updated_at) == (1, 1, 10.0)
    wrong = kn.update(None, 0.0, P, 10.0)
    assert wrong.p_known < P.prior < right.p_known
    half = kn.update(None, 0.5, P, 10.0)
    assert wrong.p_known < half.p_known < right.p_known  # a soft observation lies between
    no_check = kn.update(None, None, P, 10.0)
    assert no_check.p_known == pytest.approx(0.3 + 0.7 * 0.15) and no_check.observations == 0
    s = None
    for _ in range(6):
        s = kn.update(s, 1.0, P, 20.0)
    assert s is not None and s.level == "mastered" and s.sessions == 6
    assert KnowledgeState.unpack(s.pack()) == KnowledgeState(round(s.p_known, 6), 6, 6, 20.0)
    assert BktParams.unpack(P.pack()) == P


def generate(params: BktParams, students: int, length: int, rng: random.Random) -> list[list[float]]:
    out = []
    for _ in range(students):
        known = rng.random() < params.prior
        seq = []
        for _ in range(length):
            seq.append(1.0 if rng.random() < ((1 - params.slip) if known else params.guess) else 0.0)
            known = known or rng.random() < params.learn
        out.append(seq)
    return out


@pytest.mark.parametrize("truth", [BktParams(0.25, 0.2, 0.15, 0.08), BktParams(0.5, 0.08, 0.25, 0.15)])
def test_fit_recovers_the_parameters_that_made_the_data(truth: BktParams) -> None:
    data = generate(truth, 600, 8, random.Random(3))
    got = kn.fit(data)
    for name in ("prior", "learn", "guess", "slip"):
        assert getattr(got, name) == pytest.approx(getattr(truth, name), abs=0.06), name
    assert kn.fit([]) == kn.DEFAULT


def test_weakness_weights_favour_what_is_not_known() -> None:
    states = {"a": KnowledgeState(0.1, 2, 2, 0.0), "b": KnowledgeState(0.9, 2, 2, 0.0)}
    wa, wb, wc = kn.weakness_weights(states, ["a", "b", "c"], {"c": BktParams(prior=0.5)})
    assert wa > wc > wb and wa + wb + wc == pytest.approx(1.0)
    assert kn.weakness_weights(states, [], {}) == []


def test_words_for_the_student_and_the_tutor() -> None:
    weak, mastered = KnowledgeState(0.2, 3, 3, 0.0), KnowledgeState(0.95, 3, 3, 0.0)
    assert kn.describe(weak) == "this is a weak point: worth a session"
    assert kn.describe(weak, lang="zh") == "薄弱点：值得请老师讲一讲"  # noqa: RUF001
    assert kn.describe(mastered, for_tutor=True) == "has most likely mastered this"
    assert kn.describe(None, lang="zh-CN") == "还没有检测结果"
    assert kn.describe(KnowledgeState(0.6, 0, 2, 0.0)) == "no check on this yet"


def test_csv_for_researchers_is_spreadsheet_safe() -> None:
    rows = [{"student_id": "=cmd", "subject": "math", "knowledge_point": "math.algebra.factoring",
             "p_known": 0.25, "level": "weak", "checks": 2, "sessions": 3, "updated_at": 1.5}]
    text = kn.knowledge_csv(rows)
    assert text.startswith("\ufeff")
    parsed = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert parsed[0] == list(kn.CSV_COLUMNS)
    assert parsed[1] == ["'=cmd", "math", "math.algebra.factoring", "0.25", "weak", "2", "3", "1.5"]


def test_fit_of_degenerate_data_keeps_finite_parameters() -> None:
    """Every check right from the first (no wrong answer ever seen): the EM's counts of a class
    are zero; the fit keeps the starting value for what it cannot tell, never NaN."""
    got = kn.fit([[1.0, 1.0, 1.0]] * 40)
    assert all(0.0 < v < 1.0 for v in (got.prior, got.learn, got.guess, got.slip))
    assert kn.fit([[0.0]] * 5 + [[1.0]] * 5).prior == pytest.approx(0.5, abs=0.2)
