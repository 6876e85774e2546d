"""Learned effectiveness of a tutor, per subject and grade band and per knowledge point.

Each session outcome becomes a score ``y`` in [0, 1] (the student's rating, averaged with the
post-session check when there is one). Effectiveness is estimated as the mean of a Beta-like
posterior: a prior mean with a prior strength (pseudo-sessions), plus the observed scores. The
prior is hierarchical: a knowledge point's prior is the tutor's estimate for the whole band,
raised when the tutor declared that point (or its area) a strength; the band's prior is the
programme-wide mean, raised when the tutor declared strengths in the subject. So a new tutor
starts at a fair estimate, a few ratings move it only a little, and the exploration bonus (a
multiple of the posterior's standard deviation) gives tutors with few sessions their chance.

Statistics are ``{key: (n, sum_y)}`` with ``stat_key(subject, band, kp)``; ``kp`` empty is the
band as a whole. The store adds to them atomically; everything here is pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ValidationFailed
from .records import TutorRecord

Stats = Mapping[str, tuple[float, float]]


def stat_key(subject: str, band: str, kp: str = "") -> str:
    return f"{subject}|{band}|{kp}"


def declared(tutor: TutorRecord, kp: str) -> bool:
    """Whether ``kp`` is one of the tutor's declared strengths or lies inside a declared area."""
    return any(kp == s or kp.startswith(s + ".") for s in tutor.strengths)


def outcome_score(rating: int, check: float | None = None) -> float:
    """A session outcome as a score in [0, 1]: rating 1-5, check result 0-1 where given."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValidationFailed("rating", "must be an integer from 1 to 5")
    y = (rating - 1) / 4
    if check is not None:
        if isinstance(check, bool) or not isinstance(check, int | float) or not 0.0 <= check <= 1.0:
            raise ValidationFailed("check", "must be a number from 0 to 1 (the share of the check answered right)")
        y = (y + float(check)) / 2
    return y


@dataclass(frozen=True, slots=True)
class Estimate:
    mean: float
    strength: float  # prior strength plus sessions observed
    sessions: float

    @property
    def sd(self) -> float:
        return math.sqrt(max(self.mean * (1 - self.mean), 0.0) / (self.strength + 1))


@dataclass(frozen=True, slots=True)
class ExpertiseModel:
    prior_mean: float = 0.6  # programme-wide mean outcome score
    declared_lift: float = 0.12  # how much a declared strength raises the prior mean
    band_prior_strength: float = 12.0
    kp_prior_strength: float = 8.0
    exploration: float = 1.0  # bonus = exploration x posterior standard deviation

    def band(self, tutor: TutorRecord, stats: Stats, subject: str, band: str) -> Estimate:
        has_declared = any(s == subject or s.startswith(subject + ".") for s in tutor.strengths)
        prior = min(self.prior_mean + (self.declared_lift if has_declared else 0.0), 0.95)
        n, total = stats.get(stat_key(subject, band), (0.0, 0.0))
        strength = self.band_prior_strength + n
        return Estimate((prior * self.band_prior_strength + total) / strength, strength, n)

    def point(self, tutor: TutorRecord, stats: Stats, subject: str, band: str, kp: str) -> Estimate:
        base = self.band(tutor, stats, subject, band).mean
        prior = min(base + (self.declared_lift if declared(tutor, kp) else 0.0), 0.97)
        n, total = stats.get(stat_key(subject, band, kp), (0.0, 0.0))
        strength = self.kp_prior_strength + n
        return Estimate((prior * self.kp_prior_strength + total) / strength, strength, n)

    def fit(self, tutor: TutorRecord, stats: Stats, subject: str, band: str, kps: Iterable[str]) -> Estimate:
        """The expected effectiveness for a request's knowledge points (the band's when none)."""
        points = [self.point(tutor, stats, subject, band, kp) for kp in kps]
        if not points:
            return self.band(tutor, stats, subject, band)
        k = len(points)
        return Estimate(sum(p.mean for p in points) / k, sum(p.strength for p in points) / k,
                        sum(p.sessions for p in points) / k)

    def optimistic(self, estimate: Estimate) -> float:
        """The score used for matching: the estimate plus its exploration bonus."""
        return estimate.mean + self.exploration * estimate.sd


def outcome_increments(subject: str, band: str, kps: Iterable[str], y: float) -> dict[str, tuple[float, float]]:
    """What one session outcome adds to a tutor's statistics."""
    keys = [stat_key(subject, band)] + [stat_key(subject, band, kp) for kp in dict.fromkeys(kps)]
    return {k: (1.0, y) for k in keys}
