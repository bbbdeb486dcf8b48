"""How far does closeness to the victim alone go? The *fidelity oracle* scores every test member of a
bench fold by the fidelity its zoo manifest records — its agreement with the victim's labels on the
dataset's held-out test images for classifiers (thousands of queries, no learning), R² of its
predictions (regressors) or samples (generators) against the victim's — and reports AUC and TPR at 5 %
FPR on exactly the folds the benches and ``eval_utaf.py`` use (random split per seed, every
leave-one-family-out and leave-one-architecture-out fold; ``--folds-from`` as there).

A fingerprint that only measured how often a suspect answers like the victim would score about this;
where the oracle is far below 1, the zoo's thieves are not closer to the victim than its honest models
and a method must find the victim's idiosyncrasies to separate them. Nothing is trained or queried: the
numbers come from the manifest in a second.

    python benchmarks/fidelity_oracle.py --zoo runs/fmnist-broad/zoo --seeds 0 1 2
    python benchmarks/fidelity_oracle.py --zoo runs/warfarin/zoo --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def fold_metrics(zoo_path: str, specs: list[str], seeds: list[int], test_fraction: float = 0.5, folds_from: str | None = None) -> list[dict]:
    """One row per (fold, seed): AUC and TPR@5%FPR of the stored fidelity on the fold's test members."""
    from modelprint.bench.metrics import auc, tpr_at_fpr
    from modelprint.bench.suite import plan_splits
    from modelprint.zoo import Zoo

    zoo = Zoo.open(zoo_path)
    base = Zoo.open(folds_from) if folds_from else None
    rows = []
    for ps in plan_splits(zoo, specs, seeds, test_fraction, base):
        ms = [m for m in ps.test.members if m.family != "victim"]
        missing = [m.name for m in ms if m.fidelity is None]
        if missing:
            raise SystemExit(f"{zoo_path}: members {missing[:3]} have no fidelity in the manifest; rebuild them with `modelprint zoo build`")
        y = np.array([m.is_positive for m in ms], int)
        f = np.array([float(m.fidelity) for m in ms])
        if y.min() == y.max():
            continue
        rows.append({
            "split": ps.name, "kind": ps.kind, "seed": ps.seed, "auc": auc(f, y), "tpr@5%fpr": tpr_at_fpr(f, y, 0.05),
            "n_pos": int(y.sum()), "n_neg": int((1 - y).sum()),
            "pos_min": float(f[y == 1].min()), "neg_max": float(f[y == 0].max()),
        })
    return rows


def summarise(rows: list[dict], key: str = "auc") -> dict[str, str]:
    """Random split: median [min–max] over seeds; families / architectures: mean (worst) of the per-fold
    medians over seeds, and the worst fold's name."""
    out: dict[str, str] = {}
    for kind in ("random", "family", "arch"):
        per_fold: dict[str, list[float]] = {}
        for r in rows:
            if r["kind"] == kind:
                per_fold.setdefault(r["split"], []).append(r[key])
        if not per_fold:
            continue
        if kind == "random":
            v = per_fold["random"]
            out[kind] = f"{statistics.median(v):.3f} [{min(v):.3f}–{max(v):.3f}]"
        else:
            med = {k: statistics.median(v) for k, v in per_fold.items()}
            worst = min(med, key=med.get)
            out[kind] = f"{statistics.mean(med.values()):.3f} ({med[worst]:.3f} {worst.partition(':')[2]}), {len(med)} folds"
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--folds-from", default=None, help="a smaller zoo --zoo extends: its folds (as in eval_utaf.py)")
    ap.add_argument("--splits", default="random,lofo,loao")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--test-fraction", type=float, default=0.5)
    ap.add_argument("--folds", action="store_true", help="also print every fold")
    a = ap.parse_args(argv)
    rows = fold_metrics(a.zoo, a.splits.split(","), a.seeds, a.test_fraction, a.folds_from)
    if a.folds:
        for r in rows:
            print(f"{r['split']:>32} seed {r['seed']}: AUC {r['auc']:.3f} TPR@5%FPR {r['tpr@5%fpr']:.3f}  "
                  f"positives' fidelity min {r['pos_min']:.3f}, negatives' max {r['neg_max']:.3f} ({r['n_pos']} / {r['n_neg']})")
    print(f"fidelity oracle on {a.zoo}" + (f" (folds of {a.folds_from})" if a.folds_from else "") + f", seeds {a.seeds}")
    for key in ("auc", "tpr@5%fpr"):
        s = summarise(rows, key)
        print(f"  {key:>10}: random {s.get('random', '–')} | LOFO {s.get('family', '–')} | LOAO {s.get('arch', '–')}")


if __name__ == "__main__":
    main()
