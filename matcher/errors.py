"""Matcher errors. One base, ``MatcherError``; each carries an HTTP-like status and a sentence.

- ``ValidationFailed`` (422): a field of a request is unusable; names the field.
- ``NotFound`` (404): an unknown request, tutor, offer or session.
- ``Forbidden`` (403): the caller's role or identity may not do this.
- ``Conflict`` (409): the thing exists but is in a state that does not allow this now.
  ``IllegalTransition`` is the lifecycle's own conflict: a state machine refused a transition.
"""

from __future__ import annotations


class MatcherError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(MatcherError):
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(MatcherError):
    status = 404


class Forbidden(MatcherError):
    status = 403


class Conflict(MatcherError):
    status = 409


class IllegalTransition(Conflict):
    def __init__(self, what: str, current: str, target: str) -> None:
        super().__init__(f"{what} cannot go from {current} to {target}")
        self.current = current
        self.target = target
