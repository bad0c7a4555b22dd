"""The tracker's matching (perception/assignment.py) against scipy's ``linear_sum_assignment`` as the reference."""
from __future__ import annotations

import numpy as np
import pytest

from dfer_ros.perception.assignment import max_weight_matching


def _reference_total(score: np.ndarray) -> float:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-np.maximum(score, 0.0))
    picked = score[rows, cols]
    return float(picked[picked > 0].sum())


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 5), (5, 3), (6, 6), (9, 4)])
def test_total_equals_the_hungarian_optimum(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(300):
        score = rng.random(shape) * 2.0
        score[rng.random(shape) < rng.random()] = 0.0  # from dense competition to faces far apart
        if trial % 3 == 0:
            score = np.round(score, 1)  # ties
        rows, cols = max_weight_matching(score)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert (score[rows, cols] > 0).all()
        assert score[rows, cols].sum() == pytest.approx(_reference_total(score), abs=1e-9)


def test_two_tracks_wanting_one_detection_give_it_to_the_better_and_leave_the_other():
    score = np.array([[1.4, 0.0], [1.9, 1.2]])  # track 1 fits detection 0 best, but only track 0 can take it
    rows, cols = max_weight_matching(score)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 1)]
    rows, cols = max_weight_matching(np.array([[1.2], [1.9]]))
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 0)]


def test_no_candidates_and_empty_problems_match_nothing():
    for score in (np.zeros((3, 2)), np.zeros((0, 4)), np.zeros((2, 0)), -np.ones((2, 2))):
        rows, cols = max_weight_matching(score)
        assert rows.size == 0 and cols.size == 0


def test_same_input_same_matching():
    rng = np.random.default_rng(7)
    score = np.round(rng.random((7, 7)), 1)
    first = max_weight_matching(score)
    assert all(np.array_equal(a, b) for _ in range(20) for a, b in zip(first, max_weight_matching(score.copy())))
