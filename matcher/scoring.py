"""The score of offering each of a pool's requests to each of its free tutors, as one matrix;
higher is better, ``FORBIDDEN`` means not allowed.

The terms, each weighted by ``Weights``:

- **fit**: the tutor's sampled effectiveness (``expertise``) on the request's knowledge points,
  weighted towards the points the student is weakest on (``knowledge``); the band's when the
  request names none. This is what the matcher learns, and it dominates.
- **favourite**: the tutor the student asked for, when free, comes first.
- **pair**: how this student's past sessions with this tutor went.
- **wait**: wait-time aging, the same for every tutor in a row, so that when tutors are scarce the
  longest-waiting students are served first.
- **widened**: a penalty per grade band between the request and the pool, once it has waited
  long enough to look beyond its own band.
- **tie-breaks**: idle time (spreads the work), recent declines, load this evening. Together they
  are at most ``Weights.tie_breaks_max``, smaller than a clear difference in expected
  effectiveness, so they decide between tutors who fit about equally well and nothing more.

Tutors cooling down after an ignored offer, at their load cap, excluded by the request (they
declined it), the student themselves, or not the named tutor of a direct request are not allowed.
The matrix is built with numpy from a batch's working set, so a pool of thousands of tutors costs
milliseconds, not a Python call per pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .expertise import ExpertiseModel, Stats, stat_key
from .knowledge import BktParams, KnowledgeState, weakness_weights
from .records import Pool, RequestRecord, TutorRecord, band_distance
from .settings import MatcherSettings

FORBIDDEN = -1.0e6
Matrix = npt.NDArray[np.float64]
PairHistory = Mapping[tuple[str, str], tuple[float, float]]  # (student, tutor) -> (sessions, sum of scores)


@dataclass(frozen=True, slots=True)
class Weights:
    fit: float = 1.0
    favourite: float = 1.0  # a free favourite wins over any difference in fit
    pair: float = 0.3  # times (pair's mean score - prior mean), fully counted after 3 sessions
    familiarity: float = 0.02  # a small bonus for any earlier session together
    wait: float = 0.6  # full at request_ttl_s of waiting
    widened: float = 0.15  # per grade band away from the request's
    idle: float = 0.006  # tie-break: full after idle_full_s of being available
    idle_full_s: float = 900.0
    decline: float = 0.002  # tie-break: per recent decline or ignored offer, at most 5
    load: float = 0.006  # tie-break: times load / load cap

    @property
    def tie_breaks_max(self) -> float:
        return self.idle + 5 * self.decline + self.load


class BatchData(Protocol):
    """What scoring reads of the worker's working set."""

    def point_stats(self, subject: str, band: str, kp: str) -> Mapping[str, tuple[float, float]]: ...
    def point_arrays(self, subject: str, band: str, kp: str) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(tutor slots, sessions, sums) of every tutor with outcomes on the key."""
        ...
    def slot_of(self, tutor_id: str) -> int: ...
    def declared_slots(self, kp_or_subject: str) -> npt.NDArray[np.int64]:
        """Slots of the tutors who declared ``kp`` (or, given a subject id, anything in it)."""
        ...
    def population(self, subject: str, band: str) -> Stats: ...
    def declared_by(self, kp: str) -> frozenset[str]: ...
    def declaring_subject(self, subject: str) -> frozenset[str]: ...
    def knowledge(self, student_id: str) -> Mapping[str, KnowledgeState]: ...
    def bkt_params(self) -> Mapping[str, BktParams]: ...
    def pairs(self, student_id: str) -> Mapping[str, tuple[float, float]]: ...


def allowed_band_distance(request: RequestRecord, now: float, settings: MatcherSettings) -> int:
    """0 at first; 1 after ``widen_after_s`` of waiting; every band of the subject after twice that."""
    waited = now - request.created_at
    if waited >= 2 * settings.widen_after_s:
        return 3
    return 1 if waited >= settings.widen_after_s else 0


def recent(times: tuple[float, ...], now: float, window: float) -> int:
    return sum(1 for t in times if now - t < window)


def direct_to(request: RequestRecord) -> str | None:
    """The one tutor a request may go to now, if it is direct."""
    return request.favourite if request.direct else None


class BatchScorer:
    """Scores one pool's batch at ``now``. ``rng`` draws the Thompson samples (one per tutor and
    point per batch); ``learning`` off scores on declared strengths and priors alone."""

    def __init__(self, data: BatchData, now: float, settings: MatcherSettings, model: ExpertiseModel,
                 weights: Weights, rng: np.random.Generator) -> None:
        self.data, self.now, self.settings, self.model, self.w, self.rng = data, now, settings, model, weights, rng

    def tutor_terms(self, tutors: Sequence[TutorRecord]) -> npt.NDArray[np.float64]:
        """Tie-break terms per tutor, FORBIDDEN for a tutor who may not be offered anything now."""
        now, s, w = self.now, self.settings, self.w
        out = np.empty(len(tutors))
        for j, t in enumerate(tutors):
            load = recent(t.sessions, now, s.load_window_s)
            if t.cooldown_until > now or load >= s.load_cap:
                out[j] = FORBIDDEN
                continue
            out[j] = (w.idle * min(max(now - t.available_since, 0.0) / w.idle_full_s, 1.0)
                      - w.decline * min(recent(t.declines, now, s.decline_memory_s), 5)
                      - w.load * load / s.load_cap)
        return out

    def effectiveness(self, pool: Pool, tutors: Sequence[TutorRecord], kps: Sequence[str]) -> Matrix:
        """A (tutor x point) matrix of sampled effectiveness; point "" is the band as a whole.
        Statistics and declarations are scattered in from the working set's arrays in a few numpy
        calls, whatever the number of points."""
        m, data, subject, band = self.model, self.data, pool.subject, pool.band
        learning = self.settings.learning
        n_t, n_k = len(tutors), len(kps)
        pop = data.population(subject, band) if learning else {}
        band_pop = m.population_mean(pop, stat_key(subject, band))
        slots = np.fromiter((data.slot_of(t.tutor_id) for t in tutors), dtype=np.int64, count=n_t)
        position = np.full(int(slots.max()) + 1 if n_t else 0, -1, dtype=np.int64)
        position[slots] = np.arange(n_t)

        def scatter(parts: Sequence[npt.NDArray[np.int64]], values: Sequence[npt.NDArray[np.float64]] | None,
                    ) -> npt.NDArray[np.float64]:
            """A (tutor x point) matrix from per-point (tutor slots, values) arrays (1 without values)."""
            out = np.zeros((n_t, n_k))
            if not parts:
                return out
            who = np.concatenate(parts)
            col = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
            inside = who < position.size
            at = np.where(inside, position[np.where(inside, who, 0)], -1)
            keep = at >= 0
            out[at[keep], col[keep]] = 1.0 if values is None else np.concatenate(values)[keep]
            return out

        arrays = [data.point_arrays(subject, band, kp) for kp in kps] if learning else []
        n_mat = scatter([a[0] for a in arrays], [a[1] for a in arrays]) if learning else np.zeros((n_t, n_k))
        s_mat = scatter([a[0] for a in arrays], [a[2] for a in arrays]) if learning else np.zeros((n_t, n_k))
        declared = (m.lift(pop, subject, band) if learning else m.declared_lift) * scatter(
            [data.declared_slots(kp) for kp in kps], None)
        band_k = kps.index("") if "" in kps else None
        band_n = n_mat[:, band_k] if band_k is not None else scatter(
            [data.point_arrays(subject, band, "")[0]], [data.point_arrays(subject, band, "")[1]])[:, 0]
        band_s = s_mat[:, band_k] if band_k is not None else scatter(
            [data.point_arrays(subject, band, "")[0]], [data.point_arrays(subject, band, "")[2]])[:, 0]
        if not learning:
            band_n, band_s = np.zeros(n_t), np.zeros(n_t)
        # The band prior is the band's population mean for everyone: a declaration says which
        # points (the lift below), not how good in the subject overall; a lift here put every
        # unproven tutor above proven average ones (a tutor's own sessions dilute their prior).
        band_mean = (min(max(band_pop, 0.02), 0.98) * m.band_prior_strength + band_s) / (
            m.band_prior_strength + band_n)
        point_pop = np.array([m.population_mean(pop, stat_key(subject, band, kp)) for kp in kps])
        prior = np.clip(point_pop[None, :] + (band_mean - band_pop)[:, None] + declared, 0.02, 0.98)
        alpha = prior * m.kp_prior_strength + s_mat
        beta = (1 - prior) * m.kp_prior_strength + n_mat - s_mat
        if band_k is not None:  # the band as a whole: its own posterior
            strength = m.band_prior_strength + band_n
            alpha[:, band_k], beta[:, band_k] = band_mean * strength, (1 - band_mean) * strength
        mean = alpha / (alpha + beta)
        e = self.settings.exploration if learning else 0.0
        if e == 0.0 or alpha.size == 0:
            return mean
        # A draw per (tutor, point) from the posterior's normal approximation (its mean and
        # variance): with thousands of draws a batch, Beta sampling itself was a tenth of its CPU.
        strength = alpha + beta
        sd = np.sqrt(mean * (1 - mean) / (strength + 1))
        draw = np.clip(mean + sd * self.rng.standard_normal(mean.shape), 0.0, 1.0)
        return mean + e * (draw - mean)

    def matrix(self, pool: Pool, requests: Sequence[RequestRecord], tutors: Sequence[TutorRecord]) -> Matrix:
        """The (request x tutor) score matrix of a batch."""
        w, now, data = self.w, self.now, self.data
        n_r, n_t = len(requests), len(tutors)
        if n_r == 0 or n_t == 0:
            return np.full((n_r, n_t), FORBIDDEN)
        index = {t.tutor_id: j for j, t in enumerate(tutors)}
        kps = sorted({kp for r in requests for kp in r.knowledge_points} | {""})
        col = {kp: k for k, kp in enumerate(kps)}
        # Each request's points (at most a few) as columns and weights, padded to the longest:
        # the fit is a weighted sum of a few effectiveness columns per row (no BLAS call, whose
        # threads spin on a busy machine for so small a product).
        width = max(len(r.knowledge_points) for r in requests) or 1
        cols = np.zeros((n_r, width), dtype=np.int64)
        weights = np.zeros((n_r, width))
        params = data.bkt_params()
        for i, r in enumerate(requests):
            if not r.knowledge_points:
                cols[i, 0], weights[i, 0] = col[""], 1.0
                continue
            wks = weakness_weights(data.knowledge(r.student_id), r.knowledge_points, params)
            cols[i, :len(wks)] = [col[kp] for kp in r.knowledge_points]
            weights[i, :len(wks)] = wks
        eff = self.effectiveness(pool, tutors, kps).T  # (point x tutor)
        scores = weights[:, 0, None] * eff[cols[:, 0]]
        for k in range(1, width):
            scores += weights[:, k, None] * eff[cols[:, k]]
        scores *= w.fit
        scores += self.tutor_terms(tutors)[None, :]
        # Per request, its terms in Python (cheap), then applied to the matrix in a few numpy calls.
        prior_mean, learning, s = self.model.prior_mean, self.settings.learning, self.settings
        row_add = np.empty(n_r)
        shut: list[int] = []  # rows not allowed at all (the pool is too far from the request's band)
        off_i: list[int] = []  # single pairs not allowed
        off_j: list[int] = []
        only_i: list[int] = []  # direct requests: only this column
        only_j: list[int] = []
        add_i: list[int] = []  # bonuses: favourite, pair history
        add_j: list[int] = []
        add_v: list[float] = []
        for i, r in enumerate(requests):
            distance = band_distance(r.band, pool.band)
            row_add[i] = w.wait * min(max(now - r.created_at, 0.0) / s.request_ttl_s, 1.0) - w.widened * distance
            if distance > allowed_band_distance(r, now, s):
                shut.append(i)
                continue
            for tid in (*r.excluded, r.student_id):
                if (j := index.get(tid)) is not None:
                    off_i.append(i)
                    off_j.append(j)
            only = direct_to(r)
            if only is not None:
                only_i.append(i)
                only_j.append(index.get(only, -1))
            if r.favourite is not None and (j := index.get(r.favourite)) is not None:
                add_i.append(i)
                add_j.append(j)
                add_v.append(w.favourite)
            if learning:
                for tid, (n, total) in data.pairs(r.student_id).items():
                    if n > 0 and (j := index.get(tid)) is not None:
                        add_i.append(i)
                        add_j.append(j)
                        add_v.append(w.familiarity + w.pair * (total / n - prior_mean) * min(n, 3.0) / 3.0)
        scores += row_add[:, None]
        scores[shut] = FORBIDDEN
        scores[off_i, off_j] = FORBIDDEN
        if only_i:
            rows, cols = np.array(only_i), np.array(only_j)
            kept = cols >= 0
            values = scores[rows[kept], cols[kept]]
            scores[rows] = FORBIDDEN
            scores[rows[kept], cols[kept]] = values
        np.add.at(scores, (np.array(add_i, dtype=np.int64), np.array(add_j, dtype=np.int64)), np.array(add_v))
        scores[scores < FORBIDDEN / 2] = FORBIDDEN
        return scores
