"""The contiguous mark and the intervals held above it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central._marks import SeqMark, runs


def test_in_order_records_advance_the_mark() -> None:
    m = SeqMark()
    m.add_seqs([1, 2, 3])
    assert (m.acked, m.held()) == (3, ())


def test_a_hole_holds_the_mark_until_it_fills() -> None:
    m = SeqMark()
    m.add_seqs([1, 2, 5, 6, 9])
    assert (m.acked, m.held()) == (2, ((5, 6), (9, 9)))
    m.add_seqs([3, 4])
    assert (m.acked, m.held()) == (6, ((9, 9),))
    m.add(7, 8)
    assert (m.acked, m.held()) == (9, ())


def test_add_returns_only_the_new_pieces() -> None:
    m = SeqMark(acked=2)
    m.add_seqs([5, 6, 9])
    assert m.add(1, 12) == [(3, 4), (7, 8), (10, 12)]
    assert m.acked == 12
    assert m.add(1, 12) == []


@pytest.mark.parametrize(
    ("seqs", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([4], [(4, 4)], id="one number"),
        pytest.param([1, 2, 3, 7, 8, 10], [(1, 3), (7, 8), (10, 10)], id="three runs"),
        pytest.param([1, 1, 2], [(1, 2)], id="a repeat does not split a run"),
    ],
)
def test_runs(seqs: list[int], expected: list[tuple[int, int]]) -> None:
    assert list(runs(seqs)) == expected


ranges = st.lists(
    st.tuples(st.integers(1, 60), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=25,
)


@given(ranges)
def test_matches_a_set_model(adds: list[tuple[int, int]]) -> None:
    m = SeqMark()
    model: set[int] = set()
    for first, last in adds:
        new = m.add(first, last)
        fresh = set(range(first, last + 1)) - model
        assert sum(b - a + 1 for a, b in new) == len(fresh)
        assert set().union(*(range(a, b + 1) for a, b in new)) == fresh
        model |= fresh
        contiguous = 0
        while contiguous + 1 in model:
            contiguous += 1
        assert m.acked == contiguous
        above = {s for s in model if s > contiguous}
        assert set().union(*(range(a, b + 1) for a, b in m.held())) == above
        starts = [a for a, _ in m.held()]
        assert starts == sorted(starts)
        assert all(b + 1 < a2 for (_, b), (a2, _) in zip(m.held(), m.held()[1:], strict=False))
        assert m.holds(first) and not m.holds(max(model) + 1)
