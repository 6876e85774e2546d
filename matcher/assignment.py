"""Assignment of a pool's requests to its tutors, one batch at a time, from the score matrix.

``assign`` is optimal: the matrix is rectangular (requests x tutors) and solved as it is, not
padded to a square: ``scipy.optimize.linear_sum_assignment`` matches min(rows, columns) pairs with
the greatest total. Pairs that are not allowed score far below any real one, so the solver first
maximises how many allowed pairs it makes, then their total; the disallowed pairs it is forced into
are dropped. Rows and columns with nothing allowed are left out before solving.

``greedy`` is the baseline a benchmark compares against: requests oldest first, each to the allowed
tutor who has been free longest (first come, first served on both sides).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from .records import RequestRecord, TutorRecord
from .scoring import FORBIDDEN


@dataclass(frozen=True, slots=True)
class Pairing:
    request_id: str
    tutor_id: str
    score: float


def assign_matrix(requests: Sequence[RequestRecord], tutors: Sequence[TutorRecord],
                  matrix: npt.NDArray[np.float64]) -> list[Pairing]:
    """The best set of (request, tutor) pairs, each request and each tutor at most once."""
    if not requests or not tutors:
        return []
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


def assign(
    requests: Sequence[RequestRecord], tutors: Sequence[TutorRecord],
    score: Callable[[RequestRecord, TutorRecord], float | None],
) -> list[Pairing]:
    """``assign_matrix`` over a score given per pair (None: not allowed)."""
    matrix = np.full((len(requests), len(tutors)), FORBIDDEN)
    for i, request in enumerate(requests):
        for j, tutor in enumerate(tutors):
            value = score(request, tutor)
            if value is not None:
                matrix[i, j] = value
    return assign_matrix(requests, tutors, matrix)


def greedy(requests: Sequence[RequestRecord], tutors: Sequence[TutorRecord],
           matrix: npt.NDArray[np.float64]) -> list[Pairing]:
    """Oldest request first, each to the allowed free tutor available longest."""
    order = sorted(range(len(tutors)), key=lambda j: (tutors[j].available_since, tutors[j].tutor_id))
    taken: set[int] = set()
    out = []
    for i in sorted(range(len(requests)), key=lambda i: requests[i].created_at):
        for j in order:
            if j not in taken and matrix[i, j] > FORBIDDEN / 2:
                taken.add(j)
                out.append(Pairing(requests[i].request_id, tutors[j].tutor_id, float(matrix[i, j])))
                break
    return out
