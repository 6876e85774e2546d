"""The live classes' settings (``TUTORWIRE_CLASS_*``; the README's table lists them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClassSettings:
    max_viewers: int = 1000  # viewers in one class on one node; past it a join is refused (2009 ROOM_FULL)
    join_early_s: int = 900  # students may join this long before the start
    max_duration_min: int = 240  # the longest class that can be scheduled
    join_late_s: int = 1800  # an unfinished class stays joinable this long past its planned end
    title_max_chars: int = 120
    max_invited: int = 2000  # students on one class's list
    max_classes_per_teacher: int = 200  # scheduled or live classes one teacher may hold at once
    code_length: int = 6  # characters of a class code
    join_token_ttl_s: int = 4 * 3600  # lifetime of a class join token
    attendance_max: int = 20_000  # join/leave intervals kept per class (a rejoin storm cannot grow it)
    roster_interval_s: float = 1.0  # viewers' comings and goings go to the class as one Roster at most this often

    def __post_init__(self) -> None:
        for name in ("max_viewers", "max_duration_min", "title_max_chars", "max_invited",
                     "max_classes_per_teacher", "join_token_ttl_s", "attendance_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"class setting {name} must be at least 1")
        if not 4 <= self.code_length <= 12:
            raise ValueError("class setting code_length must be 4-12")
        if not 0 <= self.roster_interval_s <= 60:
            raise ValueError("class setting roster_interval_s must be 0-60")
        if self.join_early_s < 0 or self.join_late_s < 0:
            raise ValueError("class settings join_early_s and join_late_s must not be negative")
