"""The matcher's settings, each with its default; ``sessionserver.settings`` reads them from
``TUTORWIRE_MATCHER_*`` environment variables and the README's table lists them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MatcherSettings:
    request_ttl_s: float = 900.0  # a request unmatched this long expires
    batch_interval_s: float = 1.0  # how often a worker assigns each pool (at most 1 s)
    offer_lease_s: float = 45.0  # how long an offer holds a request and a tutor (tutors answer in 5-40 s)
    heartbeat_timeout_s: float = 30.0  # a tutor silent this long goes offline
    ignore_cooldown_s: float = 120.0  # after an ignored offer, the tutor gets no offer this long
    load_cap: int = 8  # sessions a tutor is offered at most per load window (an evening)
    load_window_s: float = 6 * 3600.0
    decline_memory_s: float = 1800.0  # declines this recent lower a tutor's score
    widen_after_s: float = 90.0  # a request waiting this long also goes to adjacent grade bands
    max_knowledge_points: int = 16
    max_text_chars: int = 2000
    direct_widen_after_s: float = 60.0  # a direct request whose tutor has not taken it goes to everyone
    exploration: float = 0.0  # Thompson sampling, tempered: 1 draws from the posterior, 0 uses its mean
    learning: bool = True  # scoring uses learned outcomes (off: declared strengths and priors alone)
    changelog_max: int = 200_000  # record changes the store keeps for workers' working sets
    bkt_refit_interval_s: float = 3600.0  # how often a worker refits knowledge tracing per point
    bkt_min_observations: int = 30  # a point's parameters are fitted once it has this many checks

    def __post_init__(self) -> None:
        if not 0 < self.batch_interval_s <= 1.0:
            raise ValueError("batch_interval_s must be in (0, 1]")
        for name in ("request_ttl_s", "offer_lease_s", "heartbeat_timeout_s", "load_window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.direct_widen_after_s <= 0 or self.bkt_refit_interval_s <= 0:
            raise ValueError("direct_widen_after_s and bkt_refit_interval_s must be positive")
        if not 0.0 <= self.exploration <= 1.0:
            raise ValueError("exploration must be in [0, 1]")
        if self.changelog_max < 1_000:
            raise ValueError("changelog_max must be at least 1000")
        if self.load_cap < 1:
            raise ValueError("load_cap must be at least 1")
