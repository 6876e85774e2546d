"""Learned effectiveness of a tutor per knowledge point: a Beta posterior, shrunk towards the
tutor's own record in the subject and towards the point's population, sampled for matching.

Each session outcome becomes a score ``y`` in [0, 1] (the student's rating, averaged with the
post-session check when there is one) and counts as ``y`` successes out of 1 for the tutor on each
of the request's points, on the subject and grade band as a whole, and for the population (every
tutor) on the same keys.

The prior of a tutor on a point is hierarchical:

- the point's population mean (every tutor's outcomes on it, shrunk to ``prior_mean``), plus
- the tutor's deviation in the subject and band (their band posterior less the band's population
  mean), plus ``declared_lift`` when they declared the point (or its strand or chapter) a strength;

and carries ``kp_prior_strength`` pseudo-sessions. The tutor's own outcomes on the point then
make the posterior ``Beta(a, b)``. For matching the worker draws once from each posterior per
batch (Thompson sampling, ``exploration`` 1) or uses the posterior mean (``exploration`` 0): a
tutor with few sessions is sometimes tried, in proportion to the chance that they are the best,
and a clear learned difference wins most of the time.

How much a declared strength is worth is learned too: the population's statistics also count, per
subject and band, the outcomes on points the tutor had declared (``DECLARED``) and on the others
(``UNDECLARED``); the lift is the declared outcomes' mean excess over the others', shrunk towards
``declared_lift`` with ``lift_prior_strength`` pseudo-outcomes. (A fixed lift in outcome units
outweighed what a tutor's record says: declarations would always win over a proven record.)

Statistics are ``{key: (n, sum_y)}`` with ``stat_key(subject, band, kp)``; ``kp`` empty is the
band as a whole. The store adds to them atomically; everything here is pure.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .catalogue import catalogue
from .errors import ValidationFailed
from .records import TutorRecord

Stats = Mapping[str, tuple[float, float]]
MIN_MEAN, MAX_MEAN = 0.02, 0.98
DECLARED, UNDECLARED = "+declared", "+other"  # population keys: outcomes on declared points, on the rest
MAX_LIFT = 0.2


def stat_key(subject: str, band: str, kp: str = "") -> str:
    return f"{subject}|{band}|{kp}"


def covers(strength: str, kp: str) -> bool:
    """Whether a declared strength (a point, a strand or dotted area, or a catalogue chapter or
    volume: the points in it) covers ``kp``."""
    return kp == strength or kp.startswith(strength + ".") or kp in chapter_points(strength)


@functools.cache
def chapter_points(node_id: str) -> frozenset[str]:
    """The points of a catalogue chapter or volume (empty for anything else)."""
    node = catalogue().get(node_id)
    if node is None or node.kind not in ("chapter", "volume"):
        return frozenset()
    return frozenset(catalogue().points_under(node_id))


def prefixes(kp: str) -> list[str]:
    """``kp`` and every dotted area above it (the strengths that cover it by their id)."""
    parts = kp.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def declared(tutor: TutorRecord, kp: str) -> bool:
    """Whether ``kp`` is one of the tutor's declared strengths or lies inside a declared area."""
    return any(covers(s, kp) for s in tutor.strengths)


def declares_subject(tutor: TutorRecord, subject: str) -> bool:
    return any(s == subject or s.startswith(subject + ".") for s in tutor.strengths)


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


def clip(mean: float) -> float:
    return min(max(mean, MIN_MEAN), MAX_MEAN)


@dataclass(frozen=True, slots=True)
class Estimate:
    mean: float
    strength: float  # prior strength plus sessions observed
    sessions: float

    @property
    def sd(self) -> float:
        return math.sqrt(max(self.mean * (1 - self.mean), 0.0) / (self.strength + 1))

    @property
    def beta(self) -> tuple[float, float]:
        return self.mean * self.strength, (1 - self.mean) * self.strength


@dataclass(frozen=True, slots=True)
class ExpertiseModel:
    prior_mean: float = 0.6  # programme-wide mean outcome score, before any outcome
    declared_lift: float = 0.08  # how much a declared strength raises the prior mean
    population_strength: float = 20.0  # pseudo-sessions of the population mean's prior
    band_prior_strength: float = 12.0
    kp_prior_strength: float = 20.0  # a point's own record outweighs the tutor's band after 20 sessions
    lift_prior_strength: float = 60.0  # pseudo-outcomes of the declared lift's prior

    def lift(self, population: Stats, subject: str, band: str) -> float:
        """The learned worth of a declared strength in the subject and band (outcome units)."""
        nd, sd = population.get(stat_key(subject, band, DECLARED), (0.0, 0.0))
        no, so = population.get(stat_key(subject, band, UNDECLARED), (0.0, 0.0))
        other = (self.prior_mean * self.population_strength + so) / (self.population_strength + no)
        excess = sd - other * nd
        lift = (self.declared_lift * self.lift_prior_strength + excess) / (self.lift_prior_strength + nd)
        return min(max(lift, 0.0), MAX_LIFT)

    def population_mean(self, population: Stats, key: str) -> float:
        n, total = population.get(key, (0.0, 0.0))
        return (self.prior_mean * self.population_strength + total) / (self.population_strength + n)

    def band(self, tutor: TutorRecord, stats: Stats, subject: str, band: str,
             population: Stats | None = None) -> Estimate:
        """The tutor's estimate for the subject and band as a whole."""
        base = self.population_mean(population or {}, stat_key(subject, band))
        prior = clip(base)  # declared strengths lift points, not the band (see scoring)
        n, total = stats.get(stat_key(subject, band), (0.0, 0.0))
        strength = self.band_prior_strength + n
        return Estimate((prior * self.band_prior_strength + total) / strength, strength, n)

    def point_prior(self, band_mean: float, band_population: float, point_population: float,
                    is_declared: bool) -> float:
        return clip(point_population + (band_mean - band_population) + (self.declared_lift if is_declared else 0.0))

    def point(self, tutor: TutorRecord, stats: Stats, subject: str, band: str, kp: str,
              population: Stats | None = None) -> Estimate:
        pop = population or {}
        prior = self.point_prior(self.band(tutor, stats, subject, band, pop).mean,
                                 self.population_mean(pop, stat_key(subject, band)),
                                 self.population_mean(pop, stat_key(subject, band, kp)), declared(tutor, kp))
        n, total = stats.get(stat_key(subject, band, kp), (0.0, 0.0))
        strength = self.kp_prior_strength + n
        return Estimate((prior * self.kp_prior_strength + total) / strength, strength, n)

    def fit(self, tutor: TutorRecord, stats: Stats, subject: str, band: str, kps: Iterable[str],
            population: Stats | None = None) -> Estimate:
        """The expected effectiveness for a request's knowledge points, equally weighted (the band's
        when none); the worker weights them by the student's knowledge state instead."""
        points = [self.point(tutor, stats, subject, band, kp, population) for kp in kps]
        if not points:
            return self.band(tutor, stats, subject, band, population)
        k = len(points)
        return Estimate(sum(p.mean for p in points) / k, sum(p.strength for p in points) / k,
                        sum(p.sessions for p in points) / k)


def outcome_increments(subject: str, band: str, kps: Iterable[str], y: float) -> dict[str, tuple[float, float]]:
    """What one session outcome adds to a tutor's statistics (and to the population's)."""
    keys = [stat_key(subject, band)] + [stat_key(subject, band, kp) for kp in dict.fromkeys(kps)]
    return {k: (1.0, y) for k in keys}


def lift_increments(tutor: TutorRecord | None, subject: str, band: str, kps: Iterable[str],
                    y: float) -> dict[str, tuple[float, float]]:
    """What one outcome adds to the population's declared and undeclared counts (per point)."""
    points = list(dict.fromkeys(kps))
    mine = sum(1 for kp in points if tutor is not None and declared(tutor, kp))
    out = {}
    for key, n in ((DECLARED, mine), (UNDECLARED, len(points) - mine)):
        if n:
            out[stat_key(subject, band, key)] = (float(n), n * y)
    return out
