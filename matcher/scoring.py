"""The score of offering a request to a tutor; higher is better, ``None`` means not allowed.

The terms, each weighted by ``Weights``: expertise fit for the request's knowledge points with its
exploration bonus; the student's favourite tutor; how past sessions of this pair went; how long
the tutor has been idle (so work is spread); recent declines and ignored offers; the tutor's load
this evening; and wait-time aging (the same for every tutor in a row, so that when tutors are
scarce the longest-waiting students are served first). A long wait also widens the search to
tutors of adjacent grade bands, at a small penalty per band.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .expertise import ExpertiseModel, Stats
from .records import RequestRecord, TutorRecord, band_distance
from .settings import MatcherSettings

PairHistory = Mapping[tuple[str, str], tuple[float, float]]  # (student, tutor) -> (sessions, sum of scores)


@dataclass(frozen=True, slots=True)
class Weights:
    fit: float = 1.0
    favourite: float = 0.35
    pair: float = 0.4  # times (pair's mean score - prior mean), fully counted after 3 sessions
    familiarity: float = 0.03  # a small bonus for any earlier session together
    idle: float = 0.1  # full after idle_full_s of being available
    idle_full_s: float = 900.0
    decline: float = 0.08  # per recent decline or ignored offer
    load: float = 0.25  # times load / load cap
    wait: float = 0.6  # full at request_ttl_s of waiting
    widened: float = 0.15  # per grade band away from the request's


def allowed_band_distance(request: RequestRecord, now: float, settings: MatcherSettings) -> int:
    """0 at first; 1 after ``widen_after_s`` of waiting; every band of the subject after twice that."""
    waited = now - request.created_at
    if waited >= 2 * settings.widen_after_s:
        return 3
    return 1 if waited >= settings.widen_after_s else 0


def recent(times: tuple[float, ...], now: float, window: float) -> int:
    return sum(1 for t in times if now - t < window)


class Scorer:
    """Scores for one batch at ``now``: the terms that depend on only the tutor or only the
    request, and the expertise fit per (tutor, subject, band, knowledge points), are computed
    once and reused across the matrix."""

    def __init__(
        self, stats: Mapping[str, Stats], pairs: PairHistory, now: float, settings: MatcherSettings,
        model: ExpertiseModel, weights: Weights,
    ) -> None:
        self.stats, self.pairs, self.now = stats, pairs, now
        self.settings, self.model, self.w = settings, model, weights
        self._tutor: dict[str, float | None] = {}
        self._request: dict[str, tuple[float, int]] = {}
        self._fit: dict[tuple[str, str, str, tuple[str, ...]], float] = {}

    def tutor_term(self, tutor: TutorRecord) -> float | None:
        if tutor.tutor_id not in self._tutor:
            now, s, w = self.now, self.settings, self.w
            load = recent(tutor.sessions, now, s.load_window_s)
            value: float | None = None
            if tutor.cooldown_until <= now and load < s.load_cap:
                value = (w.idle * min(max(now - tutor.available_since, 0.0) / w.idle_full_s, 1.0)
                         - w.decline * min(recent(tutor.declines, now, s.decline_memory_s), 5)
                         - w.load * load / s.load_cap)
            self._tutor[tutor.tutor_id] = value
        return self._tutor[tutor.tutor_id]

    def request_term(self, request: RequestRecord) -> tuple[float, int]:
        """The wait-time aging bonus and how many grade bands away the request may go."""
        if request.request_id not in self._request:
            waited = max(self.now - request.created_at, 0.0)
            self._request[request.request_id] = (
                self.w.wait * min(waited / self.settings.request_ttl_s, 1.0),
                allowed_band_distance(request, self.now, self.settings),
            )
        return self._request[request.request_id]

    def fit(self, tutor: TutorRecord, subject: str, band: str, kps: tuple[str, ...]) -> float:
        key = (tutor.tutor_id, subject, band, kps)
        if key not in self._fit:
            stats = self.stats.get(tutor.tutor_id, {})
            self._fit[key] = self.model.optimistic(self.model.fit(tutor, stats, subject, band, kps))
        return self._fit[key]

    def __call__(self, request: RequestRecord, tutor: TutorRecord) -> float | None:
        if tutor.tutor_id in request.excluded or tutor.tutor_id == request.student_id:
            return None
        if request.direct and tutor.tutor_id != request.favourite:
            return None
        tutor_term = self.tutor_term(tutor)
        if tutor_term is None:
            return None
        wait_term, allowed = self.request_term(request)
        band = request.band
        best: str | None = None
        distance = 99
        for p in tutor.teaches:
            if p.subject == request.subject and (d := band_distance(p.band, band)) < distance:
                best, distance = p.band, d
        if best is None or distance > allowed:
            return None
        w = self.w
        total = w.fit * self.fit(tutor, request.subject, best, request.knowledge_points) - w.widened * distance
        if request.favourite == tutor.tutor_id:
            total += w.favourite
        n, s = self.pairs.get((request.student_id, tutor.tutor_id), (0.0, 0.0))
        if n > 0:
            total += w.familiarity + w.pair * (s / n - self.model.prior_mean) * min(n, 3.0) / 3.0
        return total + tutor_term + wait_term
