"""Do two fingerprints together generalise better than either? ``uap`` + AKH (or any two methods of one
bench), combined per suspect, measured offline fold by fold from a finished bench.

Each method's score is standardised against its own *training* negatives as stored in the fold's saved
fingerprint — ``uap``: the cross-fitted member similarities (``meta.calibration.member_scores``, each
member scored by an encoder that did not see it; guarded members left out); the baselines: the zoo
calibration scores (``meta.calibration.negatives``) — so the combination uses nothing of the test
members but their own scores and could be computed at verification time. Combined score: the mean
(``z-mean``) or the minimum (``z-min``: both methods must agree) of the two z-scores. Printed: AUC per
split kind, mean [worst fold], for each method alone and the two combinations.

    python benchmarks/combine_scores.py --zoo runs/fmnist-broad/zoo \
        runs/bench-fmnist-broad-s4/results.json runs/bench-fmnist-broad-s4-seeds/results.json [--methods uap,akh]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _train_negatives(method: str, fingerprint_dir: Path, labels: dict[str, str]) -> np.ndarray:
    meta = json.loads((fingerprint_dir / "fingerprint.json").read_text())["meta"]
    cal = meta.get("calibration") or {}
    if "member_scores" in cal:  # uap: cross-fitted similarities, guarded members left out as from its null
        # a guarded member scores min(similarity, agreement - 1) with agreement < floor, i.e. below floor - 1
        floor = meta.get("agreement_floor")
        cut = -math.inf if floor is None else floor - 1.0
        neg = [s for n, s in cal["member_scores"].items() if labels.get(n) == "negative" and s >= cut]
    else:
        neg = cal.get("negatives", [])
    if len(neg) < 2:
        raise SystemExit(f"{fingerprint_dir}: {method} stores fewer than two training-negative scores; was it fitted with a zoo?")
    return np.asarray(neg, float)


def main() -> None:
    from bench_table import bench_runs, mean_worst_table

    from modelprint.bench.metrics import auc
    from modelprint.zoo import Zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="bench results.json files of one zoo (folds pooled; a later file's run of a method replaces an earlier one's)")
    ap.add_argument("--zoo", type=Path, required=True, help="the zoo the bench ran on (member labels)")
    ap.add_argument("--methods", default="uap,akh", help="two methods of the bench, comma-separated")
    a = ap.parse_args()
    m1, m2 = a.methods.split(",")
    labels = {m.name: m.label for m in Zoo.open(a.zoo).members}
    arms = (m1, m2, "z-mean", "z-min")
    by_kind: dict[str, list[dict[str, float]]] = {}
    # (split, seed) -> method -> run; a later file replaces an earlier one's run of the same method, so
    # a variant's bench can be combined with the other method of the main bench (same zoo, same splits)
    runs: dict[tuple[str, int], dict[str, dict]] = {}
    for path in a.results:
        for r in bench_runs(path):
            runs.setdefault((r["split"], r["seed"]), {})[r["method"]] = r
    for (split, seed), by_method in sorted(runs.items()):
        if m1 not in by_method or m2 not in by_method:
            continue
        scores, z = {}, {}
        for m in (m1, m2):
            neg = _train_negatives(m, Path(by_method[m]["fingerprint"]), labels)
            mu, sd = neg.mean(), neg.std() or 1.0
            scores[m] = {s["name"]: s["score"] for s in by_method[m]["scores"]}
            z[m] = {n: (s - mu) / sd for n, s in scores[m].items()}
        names = sorted(scores[m1])
        if names != sorted(scores[m2]):
            raise SystemExit(f"split {split} seed {seed}: {m1} and {m2} were scored on different test members; combine runs of the same zoo and splits")
        y = [int(labels[n] == "positive") for n in names]
        if len(set(y)) < 2:
            continue
        out = {m: auc([scores[m][n] for n in names], y) for m in (m1, m2)}
        out["z-mean"] = auc([(z[m1][n] + z[m2][n]) / 2 for n in names], y)
        out["z-min"] = auc([min(z[m1][n], z[m2][n]) for n in names], y)
        by_kind.setdefault(split.split(":")[0], []).append(out)
    print(mean_worst_table(by_kind, arms))


if __name__ == "__main__":
    main()
