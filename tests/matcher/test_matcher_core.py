"""The matcher's pure core: lifecycles, expertise estimates, scoring and assignment."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matcher import IllegalTransition, RequestState, TutorState
from matcher import transitions as tr
from matcher.assignment import assign
from matcher.expertise import ExpertiseModel, outcome_increments, outcome_score
from matcher.lifecycle import REQUEST_TRANSITIONS, TUTOR_TRANSITIONS, check_request, check_tutor
from matcher.records import RequestRecord, TutorRecord, grade_band
from matcher.scoring import Scorer, Weights
from matcher.settings import MatcherSettings
from tests.matcherkit import T0, tutor

S = MatcherSettings()


def test_every_illegal_transition_is_refused() -> None:
    for a, b in itertools.product(RequestState, RequestState):
        if b in REQUEST_TRANSITIONS[a]:
            assert check_request(a, b) is b
        else:
            with pytest.raises(IllegalTransition):
                check_request(a, b)
    for x, y in itertools.product(TutorState, TutorState):
        if y in TUTOR_TRANSITIONS[x]:
            assert check_tutor(x, y) is y
        else:
            with pytest.raises(IllegalTransition):
                check_tutor(x, y)
    assert all(not REQUEST_TRANSITIONS[s] for s in RequestState if s.terminal)


def test_grade_bands() -> None:
    assert [grade_band(g) for g in (1, 3, 4, 6, 7, 9, 10, 12)] == [
        "primary-lower", "primary-lower", "primary-upper", "primary-upper", "junior", "junior", "senior", "senior"]


def test_offer_accept_and_expired_lease() -> None:
    r = RequestRecord("r1", "s1", "math", 8, created_at=T0, version=1)
    t = tr.set_available(tutor("wang"), T0, S)
    r2, t2 = tr.make_offer(r, t, T0, S)
    assert (r2.state, t2.state, r2.offer, r2.version, t2.version) == (
        RequestState.OFFERED, TutorState.OFFERED, t2.offer, 2, t.version + 1)
    with pytest.raises(IllegalTransition.__mro__[1]):  # Conflict: not free any more
        tr.make_offer(r2, t2, T0, S)
    with pytest.raises(IllegalTransition.__mro__[1]):
        tr.accept(r2, t2, "sess", T0 + S.offer_lease_s, S)
    r3, t3 = tr.accept(r2, t2, "sess", T0 + 1, S)
    assert r3.state is RequestState.ACCEPTED and t3.state is TutorState.IN_SESSION and t3.sessions == (T0 + 1,)


def test_outcome_score_bounds() -> None:
    assert outcome_score(1) == 0.0 and outcome_score(5) == 1.0 and outcome_score(3, 1.0) == 0.75
    for bad in (0, 6, 2.5, True, "5"):
        with pytest.raises(Exception, match="rating"):
            outcome_score(bad)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="check"):
        outcome_score(3, 1.5)


def test_expertise_prior_shrinkage_and_exploration() -> None:
    model = ExpertiseModel()
    declared = tutor("a", strengths=["math.algebra"])
    plain = tutor("b")
    kps = ("math.algebra.linear",)
    new_declared = model.fit(declared, {}, "math", "junior", kps)
    new_plain = model.fit(plain, {}, "math", "junior", kps)
    assert new_declared.mean > new_plain.mean  # a declared strength counts before any session
    # One bad rating moves a profile a little, not to the bottom.
    stats = dict(outcome_increments("math", "junior", kps, 0.0))
    after = model.fit(declared, stats, "math", "junior", kps)
    assert new_declared.mean - 0.2 < after.mean < new_declared.mean
    # Many good sessions: the estimate rises towards them and the exploration bonus shrinks.
    many = {k: (40.0, 38.0) for k in outcome_increments("math", "junior", kps, 1.0)}
    seasoned = model.fit(plain, many, "math", "junior", kps)
    assert seasoned.mean > 0.85 and seasoned.sd < new_plain.sd / 2
    # A new tutor's optimism gives them a chance against an established average one.
    average = {k: (40.0, 24.0) for k in outcome_increments("math", "junior", kps, 1.0)}
    assert model.optimistic(model.fit(plain, {}, "math", "junior", kps)) > model.optimistic(
        model.fit(plain, average, "math", "junior", kps))


def test_scoring_terms() -> None:
    now = T0 + 100
    scorer = Scorer({}, {("s1", "fav"): (3.0, 3.0)}, now, S, ExpertiseModel(), Weights())
    r = RequestRecord("r1", "s1", "math", 8, favourite="fav", created_at=now - 10)
    base, fav = tutor("base"), tutor("fav")
    assert scorer(r, fav) > scorer(r, base)  # type: ignore[operator]
    assert scorer(r, tutor("x", [("chinese", "junior")])) is None
    assert scorer(r, tutor("y", [("math", "senior")])) is None  # other band, not widened yet
    old = RequestRecord("r2", "s2", "math", 8, created_at=now - S.widen_after_s - 1)
    assert scorer(old, tutor("z", [("math", "senior")])) is not None
    assert scorer(old, base) > scorer(r, base)  # type: ignore[operator]  # waiting counts


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.data())
def test_assignment_is_optimal_and_rectangular(n_req: int, n_tut: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.one_of(st.none(), st.floats(-5, 5)), min_size=n_req * n_tut,
                                max_size=n_req * n_tut))
    requests = [RequestRecord(f"r{i}", f"s{i}", "math", 8) for i in range(n_req)]
    tutors = [TutorRecord(f"t{j}") for j in range(n_tut)]
    table = {(f"r{i}", f"t{j}"): values[i * n_tut + j] for i in range(n_req) for j in range(n_tut)}
    pairs = assign(requests, tutors, lambda r, t: table[(r.request_id, t.tutor_id)])
    assert len({p.request_id for p in pairs}) == len(pairs) == len({p.tutor_id for p in pairs})
    assert all(table[(p.request_id, p.tutor_id)] is not None for p in pairs)
    # Brute force: the most allowed pairs, then the greatest total.
    best = (0, 0.0)
    for perm in itertools.permutations(range(n_tut), min(n_req, n_tut)) if n_req <= n_tut else (
            itertools.permutations(range(n_req), n_tut)):
        chosen = [(i, j) for i, j in enumerate(perm)] if n_req <= n_tut else [(i, j) for j, i in enumerate(perm)]
        vals = [table[(f"r{i}", f"t{j}")] for i, j in chosen]
        ok = [v for v in vals if v is not None]
        best = max(best, (len(ok), sum(ok)))
    got = (len(pairs), sum(p.score for p in pairs))
    assert got[0] == best[0] and got[1] == pytest.approx(best[1], abs=1e-6)
