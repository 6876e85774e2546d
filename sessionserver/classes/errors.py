"""Class errors. One base, ``ClassError``, carrying an HTTP-like status and a sentence for the user.

- ``ValidationFailed`` (422): a field of a request is unusable (names the field); unknown fields too.
- ``NotFound`` (404): no such class, or a class code that names none.
- ``Forbidden`` (403): the caller may not do this (not the class's teacher, not invited).
- ``Conflict`` (409): the class's state does not allow it now (cancelled, ended, not yet open,
  full). ``IllegalTransition`` is the lifecycle's own conflict.
"""

from __future__ import annotations


class ClassError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(ClassError):
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(ClassError):
    status = 404


class Forbidden(ClassError):
    status = 403


class Conflict(ClassError):
    status = 409


class IllegalTransition(Conflict):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a {current} class cannot become {target}")
        self.current = current
        self.target = target
