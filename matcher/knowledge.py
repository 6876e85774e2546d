"""Competency tracking: each student's knowledge state per knowledge point, by Bayesian Knowledge
Tracing (Corbett and Anderson, 1995).

A point's model has four parameters: ``prior`` (known before any practice), ``learn`` (a session on
it teaches it), ``guess`` (a right answer without knowing it) and ``slip`` (a wrong answer while
knowing it). A student's state is the posterior probability that they know the point.

- ``update`` is the online step for one observation: Bayes' rule on the check result (the share of
  the post-session check answered right, a soft observation in [0, 1]), then the learning
  transition of the session. A session without a check is a learning opportunity alone.
- ``fit`` estimates a point's parameters from every student's sequence of check results with
  pyBKT's expectation-maximisation (Baum-Welch on the two-state hidden Markov model, no
  forgetting), bounded so that the model stays identifiable (guess and slip below one half). Only
  pyBKT's fit module is imported: ``pyBKT.models`` fails on import against current scikit-learn
  (its metrics table calls log_loss with lists). Checked against sequences generated from known
  parameters.

Everything here is pure; ``service`` stores states and observations and ``workingset`` reads them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MASTERED = 0.85  # a state at or above this reads "mastered" to the student
WEAK = 0.5  # below this the point reads "weak"


@dataclass(frozen=True, slots=True)
class BktParams:
    prior: float = 0.3
    learn: float = 0.15
    guess: float = 0.2
    slip: float = 0.1

    def pack(self) -> str:
        return f"{self.prior:.6f}|{self.learn:.6f}|{self.guess:.6f}|{self.slip:.6f}"

    @classmethod
    def unpack(cls, text: str) -> BktParams:
        p, t, g, s = (float(x) for x in text.split("|"))
        return cls(p, t, g, s)


DEFAULT = BktParams()


@dataclass(frozen=True, slots=True)
class KnowledgeState:
    p_known: float
    observations: int  # checks seen
    sessions: int  # sessions on the point (with or without a check)
    updated_at: float

    def pack(self) -> str:
        return f"{self.p_known:.6f}|{self.observations}|{self.sessions}|{self.updated_at:.3f}"

    @classmethod
    def unpack(cls, text: str) -> KnowledgeState:
        p, o, s, t = text.split("|")
        return cls(float(p), int(o), int(s), float(t))

    @property
    def level(self) -> str:
        if self.p_known >= MASTERED:
            return "mastered"
        return "weak" if self.p_known < WEAK else "learning"


def posterior(p_known: float, correct: float, params: BktParams) -> float:
    """P(known | a check with share ``correct`` right), before the session's learning step."""
    c = min(max(correct, 0.0), 1.0)
    like_known = c * (1 - params.slip) + (1 - c) * params.slip
    like_unknown = c * params.guess + (1 - c) * (1 - params.guess)
    num = p_known * like_known
    den = num + (1 - p_known) * like_unknown
    return num / den if den > 0 else p_known


def update(state: KnowledgeState | None, correct: float | None, params: BktParams, now: float) -> KnowledgeState:
    """The state after one session on the point, with its check result (None: no check)."""
    p = params.prior if state is None else state.p_known
    if correct is not None:
        p = posterior(p, correct, params)
    p = p + (1 - p) * params.learn
    obs = (0 if state is None else state.observations) + (correct is not None)
    sessions = (0 if state is None else state.sessions) + 1
    return KnowledgeState(min(max(p, 0.0), 1.0), obs, sessions, now)


def weakness_weights(states: Mapping[str, KnowledgeState], kps: Sequence[str],
                     params: Mapping[str, BktParams], floor: float = 0.05) -> list[float]:
    """How much each requested point counts in a request's fit: its chance of not being known
    (plus a small floor, so a mastered point still counts a little), summing to 1."""
    if not kps:
        return []
    raw = []
    for kp in kps:
        s = states.get(kp)
        p = s.p_known if s is not None else params.get(kp, DEFAULT).prior
        raw.append(floor + 1 - p)
    total = sum(raw)
    return [w / total for w in raw]


def fit(sequences: Sequence[Sequence[float]], start: BktParams = DEFAULT, iterations: int = 100,
        tolerance: float = 0.005) -> BktParams:
    """Maximum-likelihood BKT parameters for one point from each student's check results in
    order, by pyBKT's expectation-maximisation (``pyBKT.fit.EM_fit``, no forgetting). pyBKT
    observes right or wrong: a check counts as right when at least half of it was answered right.
    Every observation is also a learning opportunity. Guess and slip stay below one half (above
    it the model is no longer identifiable: knowing would look like not knowing)."""
    # pyBKT.models cannot be imported with scikit-learn >= 1.6 (its metrics table calls log_loss
    # with lists at import time); the fit itself needs numpy alone.
    from pyBKT.fit import EM_fit, M_step

    seqs = [np.asarray(s, dtype=float) for s in sequences if len(s) > 0]
    if not seqs:
        return start
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    observed = np.concatenate(seqs)
    data = {"data": np.where(observed >= 0.5, 2, 1).astype(np.int32)[None, :],  # 1 wrong, 2 right
            "starts": np.cumsum(lengths) - lengths + 1, "lengths": lengths,
            "resources": np.ones(observed.size, dtype=np.int64)}
    model = {"prior": start.prior, "learns": np.array([start.learn]), "forgets": np.array([0.0]),
             "guesses": np.array([start.guess]), "slips": np.array([start.slip]),
             "As": np.array([[[1 - start.learn, 0.0], [start.learn, 1.0]]]),
             "emissions": np.array([[[1 - start.guess, start.guess], [start.slip, 1 - start.slip]]]),
             "pi_0": np.array([[1 - start.prior], [start.prior]])}
    # pyBKT's E-step (EM_fit.run) and M-step (M_step.run), driven as EM_fit.EM_fit drives them:
    # its driver stores each log-likelihood as a (1, 1) array into a scalar slot, which numpy 2
    # refuses.
    fixed = {"forgets": np.array([0.0])}
    counts = {"all_trans_softcounts": np.zeros((1, 2, 2)), "all_emission_softcounts": np.zeros((1, 2, 2)),
              "all_initial_softcounts": np.zeros((2, 1))}
    last = -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):  # a class never seen: 0/0, caught below
        for i in range(iterations):
            counts = EM_fit.run(data, model, counts["all_trans_softcounts"], counts["all_emission_softcounts"],
                                counts["all_initial_softcounts"], 1, False, fixed=fixed)
            counts["all_trans_softcounts"][0] = counts["all_trans_softcounts"][0].transpose()
            counts["all_emission_softcounts"][0] = counts["all_emission_softcounts"][0].transpose()
            loglike = float(np.asarray(counts["total_loglike"]).reshape(-1)[0])
            if i > 1 and abs(loglike - last) <= tolerance:
                break
            last = loglike
            model = M_step.run(model, counts["all_trans_softcounts"], counts["all_emission_softcounts"],
                               counts["all_initial_softcounts"], fixed=fixed)
    fitted = model

    def bound(value: Any, low: float, high: float, otherwise: float) -> float:
        x = float(np.asarray(value).reshape(-1)[0])
        return min(max(x, low), high) if np.isfinite(x) else otherwise  # a class never seen: 0/0

    return BktParams(bound(fitted["prior"], 0.01, 0.99, start.prior), bound(fitted["learns"], 0.001, 0.99, start.learn),
                     bound(fitted["guesses"], 0.001, 0.45, start.guess),
                     bound(fitted["slips"], 0.001, 0.45, start.slip))


# -- in the student's and the tutor's own words ------------------------------------------------

_WORDS = {
    "en": {"mastered": "you have most likely mastered this", "learning": "you are getting there",
           "weak": "this is a weak point: worth a session", "new": "no check on this yet",
           "tutor_mastered": "has most likely mastered this", "tutor_learning": "is getting there",
           "tutor_weak": "is weak here: start with this", "tutor_new": "no check on this yet"},
    "zh": {"mastered": "你很可能已经掌握了", "learning": "正在进步", "weak": "薄弱点：值得请老师讲一讲",  # noqa: RUF001
           "new": "还没有检测结果", "tutor_mastered": "很可能已经掌握", "tutor_learning": "正在进步",
           "tutor_weak": "这是薄弱点，建议从这里讲起", "tutor_new": "还没有检测结果"},  # noqa: RUF001
}


def describe(state: KnowledgeState | None, *, lang: str = "en", for_tutor: bool = False) -> str:
    """A sentence about one point's state for the student (or, ``for_tutor``, about the student)."""
    words = _WORDS["zh" if lang.lower().startswith("zh") else "en"]
    level = "new" if state is None or state.observations == 0 else state.level
    return words[("tutor_" if for_tutor else "") + level]


CSV_COLUMNS = ("student_id", "subject", "knowledge_point", "p_known", "level", "checks", "sessions", "updated_at")


def knowledge_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Knowledge states as CSV for researchers (UTF-8 with a BOM, so Excel reads it), one row per
    student and point; a cell that a spreadsheet would run as a formula is quoted with '."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_safe(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
