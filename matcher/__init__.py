"""The matcher: tutoring requests, tutor presence, expertise profiles, scoring, assignment, offers.

A pure core (time is always passed in) over a store contract with two implementations:
``MemoryStore`` (the embedded single-process default) and ``RedisStore`` (several workers and
server processes). Layout:

- ``errors``: the exception hierarchy; every error carries a stable code and a sentence.
- ``lifecycle``: the request and tutor state machines, their legal transitions in one table each.
- ``records``: the request and tutor records the store keeps, pools and grade bands.
- ``expertise``: learned effectiveness per tutor and knowledge point, a Bayesian estimate.
- ``scoring`` and ``assignment``: the score matrix of a pool and its optimal assignment.
- ``transitions``: every change to records as a pure function (old records in, new records out).
- ``store``, ``memory_store``, ``redis_store``: the store contract and its two implementations.
- ``service``: the async operations the API calls, and the batch worker.
- ``roster``: tutor import and export (CSV and JSON).
"""

from .errors import Conflict, Forbidden, IllegalTransition, MatcherError, NotFound, ValidationFailed
from .lifecycle import RequestState, TutorState
from .settings import MatcherSettings

__all__ = [
    "Conflict", "Forbidden", "IllegalTransition", "MatcherError", "MatcherSettings", "NotFound",
    "RequestState", "TutorState", "ValidationFailed",
]
