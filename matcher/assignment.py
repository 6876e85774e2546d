"""Optimal assignment of a pool's requests to its tutors, one batch at a time.

The score matrix is rectangular (requests x tutors) and is solved as it is, not padded to a
square: ``scipy.optimize.linear_sum_assignment`` matches min(rows, columns) pairs with the
greatest total. Pairs that are not allowed get a score far below any real one, so the solver
first maximises how many allowed pairs it makes, then their total; the disallowed pairs it is
forced into are dropped. Rows and columns with nothing allowed are left out before solving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .records import RequestRecord, TutorRecord

FORBIDDEN = -1.0e6


@dataclass(frozen=True, slots=True)
class Pairing:
    request_id: str
    tutor_id: str
    score: float


def assign(
    requests: Sequence[RequestRecord], tutors: Sequence[TutorRecord],
    score: Callable[[RequestRecord, TutorRecord], float | None],
) -> list[Pairing]:
    """The best set of (request, tutor) pairs, each request and each tutor at most once."""
    if not requests or not tutors:
        return []
    matrix = np.full((len(requests), len(tutors)), FORBIDDEN)
    for i, request in enumerate(requests):
        for j, tutor in enumerate(tutors):
            value = score(request, tutor)
            if value is not None:
                matrix[i, j] = value
    allowed = matrix > FORBIDDEN / 2
    rows = np.flatnonzero(allowed.any(axis=1))
    cols = np.flatnonzero(allowed.any(axis=0))
    if rows.size == 0:
        return []
    sub = matrix[np.ix_(rows, cols)]
    chosen_r, chosen_c = linear_sum_assignment(sub, maximize=True)
    pairs = [
        Pairing(requests[rows[r]].request_id, tutors[cols[c]].tutor_id, float(sub[r, c]))
        for r, c in zip(chosen_r, chosen_c, strict=True)
        if sub[r, c] > FORBIDDEN / 2
    ]
    pairs.sort(key=lambda p: -p.score)
    return pairs
