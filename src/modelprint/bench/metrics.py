"""The metrics of DESIGN.md, one definition each.

Scores: higher = more likely stolen. ``labels``: 1 for positives (piracy), 0 for negatives.
Robustness/uniqueness/ARUC take scores mapped to [0, 1] (see :func:`to_unit`).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

RHOS = np.linspace(0.0, 1.0, 101)


def _arrays(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    if s.shape != y.shape:
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    return s, y


def _ranked(s: np.ndarray) -> np.ndarray:
    """Finite copy of ``s`` for ranking: NaN and -inf rank below every finite score, +inf above.

    A NaN score is an inconclusive verdict (the suspect failed or lied); it counts as "not flagged"
    in every metric: a miss for a positive, a true negative for a negative.
    """
    s = np.asarray(s, dtype=float)
    fin = np.isfinite(s)
    if fin.all():
        return s
    lo, hi = (float(s[fin].min()), float(s[fin].max())) if fin.any() else (0.0, 0.0)
    out = s.copy()
    out[np.isnan(s) | np.isneginf(s)] = lo - 1.0
    out[np.isposinf(s)] = hi + 1.0
    return out


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """ROC AUC, positives vs negatives (ties count half). NaN scores rank lowest. NaN if one class is absent."""
    s, y = _arrays(scores, labels)
    if len(set(y.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(y, _ranked(s)))


def to_unit(scores: Sequence[float], score_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Map scores linearly from the method's declared range onto [0, 1] (clipped)."""
    lo, hi = (float(v) for v in score_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"score_range must be finite [lo, hi] with hi > lo, got {list(score_range)}")
    s = (np.asarray(scores, dtype=float) - lo) / (hi - lo)
    return np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)


def robustness_uniqueness(unit_scores: Sequence[float], labels: Sequence[int], rhos: np.ndarray = RHOS) -> tuple[np.ndarray, np.ndarray]:
    """R(ρ) = fraction of positives scored ≥ ρ; U(ρ) = fraction of negatives scored < ρ."""
    s, y = _arrays(unit_scores, labels)
    pos, neg = s[y == 1], s[y == 0]
    r = np.array([(pos >= rho).mean() if len(pos) else np.nan for rho in rhos])
    u = np.array([(neg < rho).mean() if len(neg) else np.nan for rho in rhos])
    return r, u


def aruc(unit_scores: Sequence[float], labels: Sequence[int]) -> float:
    """UTAF's ARUC: mean over ρ ∈ {0, 0.01, …, 1} of min(R(ρ), U(ρ))."""
    r, u = robustness_uniqueness(unit_scores, labels)
    return float(np.mean(np.minimum(r, u)))


def best_threshold(scores: Sequence[float], labels: Sequence[int]) -> tuple[float, np.ndarray]:
    """The threshold on the scores' ranking with the best ``min(TPR, TNR)`` (TPR = share of positives scored
    at or above it, TNR = share of negatives below it; NaN scores are never flagged): that value and which
    members the threshold flags. Ties: the threshold with the most members right, then the lowest.
    NaN and no member flagged if a class is absent."""
    s, y = _arrays(scores, labels)
    if len(set(y.tolist())) < 2:
        return float("nan"), np.zeros(len(s), dtype=bool)
    r = _ranked(s)
    flaggable = ~np.isnan(s)  # NaN (inconclusive) is never flagged; ±inf rank above / below every finite score
    pos, neg = np.sort(r[flaggable & (y == 1)]), np.sort(r[flaggable & (y == 0)])
    thresholds = np.append(np.unique(r[flaggable]), np.inf)
    tpr = (len(pos) - np.searchsorted(pos, thresholds, side="left")) / (y == 1).sum()
    tnr = 1.0 - (len(neg) - np.searchsorted(neg, thresholds, side="left")) / (y == 0).sum()
    worst = np.minimum(tpr, tnr)
    tied = np.flatnonzero(worst == worst.max())
    i = tied[np.argmax((tpr + tnr)[tied])]
    return float(worst[i]), flaggable & (r >= thresholds[i])


def aruc_ceiling(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The highest ARUC that any increasing rescaling of these scores could reach: the best
    ``min(TPR, TNR)`` over thresholds on their ranking (:func:`best_threshold`).

    ARUC is the mean of ``min(R(ρ), U(ρ))`` over ρ, and every pair ``(R(ρ), U(ρ))`` is a (TPR, TNR) pair
    of some threshold on the same ranking, so ``aruc ≤ aruc_ceiling`` for every calibration of the
    scores; a step map at the best threshold reaches it up to the ρ = 0 grid point. A method whose ARUC
    is far below its ceiling has a spread-out score scale (calibration); one whose ceiling is low has a
    ranking problem no calibration fixes. NaN if a class is absent.
    """
    return best_threshold(scores, labels)[0]


def tpr_at_fpr(scores: Sequence[float], labels: Sequence[int], fpr: float) -> float:
    """Largest true-positive rate reachable with a threshold whose false-positive rate is ≤ ``fpr``."""
    s, y = _arrays(scores, labels)
    if len(set(y.tolist())) < 2:
        return float("nan")
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must lie in [0, 1], got {fpr}")
    f, t, _ = roc_curve(y, _ranked(s), drop_intermediate=False)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def r_at_full_uniqueness(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Robustness at 100% uniqueness: fraction of positives scored strictly above every negative."""
    s, y = _arrays(scores, labels)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos):
        return float("nan")
    r = _ranked(s)
    top = r[y == 0].max() if len(neg) else -np.inf
    return float((r[y == 1] > top).mean())


def welch_one_sided(suspect: Sequence[float], reference: Sequence[float]) -> float:
    """One-sided Welch t-test p-value for H1: mean(suspect) > mean(reference) (UAP paper §5.2)."""
    a, b = np.asarray(suspect, float).ravel(), np.asarray(reference, float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.allclose(a.std(), 0) and np.allclose(b.std(), 0):
        return 0.0 if a.mean() > b.mean() else 1.0
    with warnings.catch_warnings():  # nearly-constant samples: scipy warns about precision, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return (float(x.mean()), float(x.std())) if len(x) else (float("nan"), float("nan"))


def compute_metrics(scores: Sequence[float], labels: Sequence[int], score_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, float]:
    """Every score-based metric of DESIGN.md for one method on one test set.

    ``score_range`` is the method's declared [lo, hi] (fingerprint meta ``score_range``) used to map
    scores onto [0, 1] for robustness/uniqueness/ARUC. Means/STDs ignore NaN (inconclusive) scores,
    which are counted in ``n_inconclusive``.
    """
    s, y = _arrays(scores, labels)
    unit = to_unit(s, score_range)
    pos_mean, pos_std = _mean_std(s[y == 1])
    neg_mean, neg_std = _mean_std(s[y == 0])
    return {
        "auc": auc(s, y),
        "aruc": aruc(unit, y),
        "aruc_ceiling": aruc_ceiling(s, y),
        "tpr@1%fpr": tpr_at_fpr(s, y, 0.01),
        "tpr@5%fpr": tpr_at_fpr(s, y, 0.05),
        "r@u=100%": r_at_full_uniqueness(s, y),
        "pos_mean": pos_mean,
        "pos_std": pos_std,
        "neg_mean": neg_mean,
        "neg_std": neg_std,
        "n_pos": int((y == 1).sum()),
        "n_neg": int((y == 0).sum()),
        "n_inconclusive": int((~np.isfinite(s)).sum()),
    }


# the task metric behind a member's "performance", and whether higher is better; the first one that the
# member and the victim both have decides
PERFORMANCE_METRICS = (("test_acc", True), ("test_mae", False), ("fd_pca", False))


def recovery(member_metrics: dict[str, float], victim_metrics: dict[str, float]) -> float | None:
    """The share of the victim's performance a model keeps — the UAP paper's *recovery rate* (a thief's
    copy counts when it recovers ≥ 85 %): test accuracy ratio for classifiers; for regressors (test MAE)
    and generators (FD-PCA), where lower is better, victim / member (a member with zero error counts as
    1). ``None`` when no performance metric is finite on both sides."""
    for key, higher_better in PERFORMANCE_METRICS:
        a, v = member_metrics.get(key), victim_metrics.get(key)
        if a is None or v is None or not (np.isfinite(a) and np.isfinite(v)):
            continue
        if higher_better:
            return float(a / v) if v > 0 else None
        return float(v / a) if a > 0 else 1.0
    return None
