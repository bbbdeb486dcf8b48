"""Metric functions against hand-computed cases (bench/metrics.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from modelprint.bench.metrics import (
    RHOS, aruc, auc, compute_metrics, r_at_full_uniqueness, robustness_uniqueness, to_unit, tpr_at_fpr, welch_one_sided,
)

# scores kept off the ρ grid {0, 0.01, ..., 1} so the hand counts below do not depend on float rounding


def test_rho_grid_is_the_papers():
    assert len(RHOS) == 101 and RHOS[0] == 0.0 and RHOS[-1] == 1.0


def test_aruc_perfect_scores():
    # pos at 0.905, neg at 0.095: R=1 for ρ ≤ 0.90 (ρ index 0..90), U=1 for ρ ≥ 0.10 (10..100) -> both for 10..90
    assert aruc([0.905, 0.905, 0.095, 0.095], [1, 1, 0, 0]) == pytest.approx(81 / 101)
    # at the extremes of [0, 1] every ρ except ρ = 0 (U(0) = 0: nothing is < 0) separates them
    assert aruc([1.0, 1.0, 0.0, 0.0], [1, 1, 0, 0]) == pytest.approx(100 / 101)


def test_aruc_inverted_and_tied_scores():
    assert aruc([0.095, 0.095, 0.905, 0.905], [1, 1, 0, 0]) == 0.0
    assert aruc([0.5] * 4, [1, 1, 0, 0]) == 0.0  # R = 1 exactly where U = 0 and vice versa
    assert aruc([0.0, 1.0], [1, 0]) == 0.0


def test_aruc_partial_overlap_hand_count():
    # pos {0.805, 0.305}, neg {0.205, 0.605}
    # ρ 0..0.20 (21 points): U = 0          -> 0
    # ρ 0.21..0.30 (10):  R = 1,  U = 0.5   -> 0.5
    # ρ 0.31..0.60 (30):  R = .5, U = 0.5   -> 0.5
    # ρ 0.61..0.80 (20):  R = .5, U = 1     -> 0.5
    # ρ 0.81..1.00 (20):  R = 0             -> 0
    assert aruc([0.805, 0.305, 0.205, 0.605], [1, 1, 0, 0]) == pytest.approx(30 / 101)
    r, u = robustness_uniqueness([0.805, 0.305, 0.205, 0.605], [1, 1, 0, 0])
    assert r[0] == 1.0 and r[50] == 0.5 and r[100] == 0.0
    assert u[0] == 0.0 and u[50] == 0.5 and u[100] == 1.0


def test_score_range_maps_before_aruc():
    # cosine-like scores in [-1, 1]: 0.81 -> 0.905, -0.81 -> 0.095
    m = compute_metrics([0.81, 0.81, -0.81, -0.81], [1, 1, 0, 0], score_range=(-1.0, 1.0))
    assert m["aruc"] == pytest.approx(81 / 101)
    assert m["auc"] == 1.0
    # asymmetric case: 0.81 -> 0.905 (R = 1 for ρ index 0..90), -0.21 -> 0.395 (U = 1 for 40..100): 51 points
    assert compute_metrics([0.81, -0.21], [1, 0], score_range=(-1.0, 1.0))["aruc"] == pytest.approx(51 / 101)
    # without the mapping the negative clips to 0 and the positive stays at 0.81 (ρ 1..81): the range matters
    assert compute_metrics([0.81, -0.21], [1, 0])["aruc"] == pytest.approx(81 / 101)
    np.testing.assert_allclose(to_unit([-1, 0, 1, 3, float("nan")], (-1, 1)), [0, 0.5, 1, 1, 0])
    with pytest.raises(ValueError):
        to_unit([0.5], (1.0, 1.0))
    with pytest.raises(ValueError):
        to_unit([0.5], (0.0, float("inf")))


def test_auc_cases():
    assert auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert auc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert auc([0.5] * 4, [1, 1, 0, 0]) == 0.5
    # one tie among 4 pairs: (0.9>0.1) (0.9>0.5) (0.5=0.5 -> 1/2) (0.5>0.1) = 3.5/4
    assert auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(3.5 / 4)
    assert math.isnan(auc([0.1, 0.2], [1, 1]))


def test_auc_non_finite_scores():
    # +inf is the highest score, not the lowest
    assert auc([np.inf, 0.3, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    # NaN (inconclusive) ranks lowest: NaN positive loses both its pairs -> 2/4
    assert auc([np.nan, 0.9, 0.1, 0.2], [1, 1, 0, 0]) == 0.5
    # a NaN negative is never above a positive
    assert auc([0.3, 0.4, np.nan, 0.2], [1, 1, 0, 0]) == 1.0


def test_tpr_at_fpr_edge_cases():
    y = [1, 1, 1] + [0] * 10
    # the top negative beats every positive: at FPR 0 (≤ 1%, ≤ 5% with 10 negatives) nothing is detected
    s = [0.9, 0.8, 0.7, 0.95] + [0.1] * 9
    assert tpr_at_fpr(s, y, 0.01) == 0.0
    assert tpr_at_fpr(s, y, 0.05) == 0.0
    assert tpr_at_fpr(s, y, 0.10) == 1.0  # one false positive of ten allowed
    assert tpr_at_fpr(s, y, 1.0) == 1.0
    # perfect separation
    assert tpr_at_fpr([0.9, 0.8, 0.7] + [0.1] * 10, y, 0.0) == 1.0
    # a positive tied with the top negative cannot be taken without that negative
    assert tpr_at_fpr([0.9, 0.5, 0.4, 0.5] + [0.1] * 9, y, 0.05) == pytest.approx(1 / 3)
    # everything tied: no threshold separates anything
    assert tpr_at_fpr([0.5] * 13, y, 0.05) == 0.0
    # NaN scores do not crash and count as misses
    assert tpr_at_fpr([np.nan, 0.9, 0.8] + [0.1] * 10, y, 0.01) == pytest.approx(2 / 3)
    assert math.isnan(tpr_at_fpr([0.1, 0.2], [0, 0], 0.05))
    with pytest.raises(ValueError):
        tpr_at_fpr(s, y, 1.5)


def test_r_at_full_uniqueness():
    assert r_at_full_uniqueness([0.9, 0.5, 0.3, 0.4, 0.2], [1, 1, 1, 0, 0]) == pytest.approx(2 / 3)
    assert r_at_full_uniqueness([0.4, 0.4], [1, 0]) == 0.0  # ties are not above
    assert r_at_full_uniqueness([0.9, 0.8], [1, 1]) == 1.0  # no negatives: nothing to beat
    assert r_at_full_uniqueness([0.9, np.nan], [1, 0]) == 1.0  # an inconclusive negative is not a threat
    assert r_at_full_uniqueness([np.nan, 0.9, 0.1], [1, 1, 0]) == 0.5
    assert math.isnan(r_at_full_uniqueness([0.1], [0]))


def test_welch_one_sided():
    assert welch_one_sided([1.0, 1.0], [0.0, 0.0]) == 0.0
    assert welch_one_sided([0.0, 0.0], [1.0, 1.0]) == 1.0
    rng = np.random.default_rng(0)
    hi, lo = rng.normal(0.9, 0.05, 20), rng.normal(0.1, 0.05, 20)
    assert welch_one_sided(hi, lo) < 1e-10
    assert welch_one_sided(lo, hi) > 1 - 1e-10
    assert math.isnan(welch_one_sided([0.5], lo))
    assert welch_one_sided(list(hi) + [np.nan], lo) == pytest.approx(welch_one_sided(hi, lo))


def test_compute_metrics_fields():
    m = compute_metrics([0.9, 0.7, np.nan, 0.2, 0.1], [1, 1, 1, 0, 0])
    assert m["n_pos"] == 3 and m["n_neg"] == 2 and m["n_inconclusive"] == 1
    assert m["pos_mean"] == pytest.approx(0.8) and m["pos_std"] == pytest.approx(0.1)
    assert m["neg_mean"] == pytest.approx(0.15)
    assert m["auc"] == pytest.approx(4 / 6)
    assert m["r@u=100%"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        compute_metrics([0.1, 0.2], [1])


def test_recovery_per_task_metric():
    from modelprint.bench.metrics import recovery

    assert recovery({"test_acc": 0.85}, {"test_acc": 0.9}) == pytest.approx(0.85 / 0.9)  # higher is better
    assert recovery({"test_mae": 10.0}, {"test_mae": 8.5}) == pytest.approx(0.85)  # lower is better: victim / member
    assert recovery({"fd_pca": 44.0}, {"fd_pca": 22.0}) == pytest.approx(0.5)
    assert recovery({"test_mae": 8.0, "test_acc": 0.5}, {"test_acc": 1.0}) == pytest.approx(0.5)  # the metric both sides have
    assert recovery({"test_mae": 8.0}, {"test_acc": 0.9}) is None
    assert recovery({"test_mae": float("nan")}, {"test_mae": 8.5}) is None
    assert recovery({"test_mae": 0.0}, {"test_mae": 8.5}) == 1.0


def test_aruc_ceiling_bounds_every_rescaling():
    from modelprint.bench.metrics import aruc_ceiling

    # 4 positives, 4 negatives; a threshold in (0.5, 0.6] keeps 3/4 positives and 3/4 negatives right
    s = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert aruc_ceiling(s, y) == pytest.approx(0.75)
    from modelprint.bench.metrics import best_threshold

    value, flagged = best_threshold(s, y)  # the threshold behind the ceiling, and whom it flags
    assert value == pytest.approx(0.75) and flagged.tolist() == (s >= 0.6).tolist()
    rng = np.random.default_rng(3)
    for _ in range(20):  # no increasing map of the scores beats the ceiling...
        pw = rng.uniform(0.2, 5.0)
        for t in (s ** pw, 1 / (1 + np.exp(-rng.uniform(1, 30) * (s - rng.uniform(0.2, 0.8))))):
            assert aruc(t, y) <= aruc_ceiling(s, y) + 1e-12
    step = (s >= 0.6).astype(float)  # ...and a step at the best threshold reaches it but for rho = 0
    assert aruc(step, y) == pytest.approx(0.75 * 100 / 101)
    # NaN (inconclusive) is never flagged; a single class gives NaN
    assert aruc_ceiling([np.nan, 0.9, 0.1], [1, 1, 0]) == pytest.approx(0.5)
    assert math.isnan(aruc_ceiling([0.1, 0.2], [1, 1]))
    # the same as a brute-force scan over every threshold, ties and infinities included
    for _ in range(20):
        sc = rng.choice([0.1, 0.2, 0.3, 0.4, np.inf, -np.inf, np.nan], size=15)
        lab = rng.integers(0, 2, 15)
        lab[:2] = [0, 1]
        fin = np.isfinite(sc) | np.isinf(sc)
        brute = max(min(((sc >= t) & fin)[lab == 1].mean(), 1 - ((sc >= t) & fin)[lab == 0].mean()) for t in [*np.unique(sc[~np.isnan(sc)]), np.inf])
        assert aruc_ceiling(sc, lab) == pytest.approx(brute)
    m = compute_metrics(s, y)
    assert m["aruc"] <= m["aruc_ceiling"] == pytest.approx(0.75)
