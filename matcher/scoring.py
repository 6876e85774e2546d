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


def score(
    request: RequestRecord, tutor: TutorRecord, stats: Stats, pairs: PairHistory, now: float,
    settings: MatcherSettings, model: ExpertiseModel, w: Weights,
) -> float | None:
    if tutor.tutor_id in request.excluded or tutor.tutor_id == request.student_id:
        return None
    if request.direct and tutor.tutor_id != request.favourite:
        return None
    if tutor.cooldown_until > now:
        return None
    load = recent(tutor.sessions, now, settings.load_window_s)
    if load >= settings.load_cap:
        return None
    bands = [p.band for p in tutor.teaches if p.subject == request.subject]
    if not bands:
        return None
    distance = min(band_distance(b, request.band) for b in bands)
    if distance > allowed_band_distance(request, now, settings):
        return None
    fit_band = request.band if distance == 0 else min(bands, key=lambda b: band_distance(b, request.band))
    fit = model.optimistic(model.fit(tutor, stats, request.subject, fit_band, request.knowledge_points))
    total = w.fit * fit - w.widened * distance
    if request.favourite == tutor.tutor_id:
        total += w.favourite
    n, s = pairs.get((request.student_id, tutor.tutor_id), (0.0, 0.0))
    if n > 0:
        total += w.familiarity + w.pair * (s / n - model.prior_mean) * min(n, 3.0) / 3.0
    total += w.idle * min(max(now - tutor.available_since, 0.0) / w.idle_full_s, 1.0)
    total -= w.decline * min(recent(tutor.declines, now, settings.decline_memory_s), 5)
    total -= w.load * load / settings.load_cap
    total += w.wait * min(max(now - request.created_at, 0.0) / settings.request_ttl_s, 1.0)
    return total
