"""Would a learned combination of the ``uap`` encoder's similarity with training-free statistics of the
same queries generalise better to unseen thieves? Measured offline, fold by fold, from a finished bench.

For every ``uap`` run (split) of a ``modelprint bench`` results file, a logistic regression (scikit-learn,
standardised features) is fitted on the split's *training* members: feature 1 is the member's
cross-fitted encoder similarity (``meta.calibration.member_scores`` of the saved fingerprint: each member
scored by an encoder that did not see it, exactly the scores the threshold is calibrated on), the others
are the member's training-free statistics against the victim from ``benchmarks/uap_signal.py --json`` (the
same 2000 views the fingerprint queries). It then scores the split's *test* members from their bench
score and statistics. Printed per fold: the AUC of the encoder alone (the bench's), of the stacked score
at two regularisation strengths, and of the statistics alone (learned); then the mean and worst fold per
split kind. Only seed-0 splits match the statistics' pool (the pool is drawn with the fit seed).

    python benchmarks/uap_signal.py --run runs/fmnist-broad --json runs/signal-broad.json
    python benchmarks/uap_stacking.py --bench runs/bench-fmnist-broad-s4 --signal runs/signal-broad.json [--features cos_uap_shift]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ALL_FEATURES = ("agree_clean", "agree_uap", "flip_agree", "cos_outputs", "cos_uap_shift")


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bench_table import bench_runs, mean_worst_table

    from modelprint.bench.metrics import auc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, required=True, help="a modelprint bench output directory (results.json, fingerprints/)")
    ap.add_argument("--signal", type=Path, required=True, help="per-member statistics written by uap_signal.py --json")
    ap.add_argument("--features", default=",".join(ALL_FEATURES), help="comma-separated statistics to stack with the encoder score")
    a = ap.parse_args()
    feats = [f for f in a.features.split(",") if f]
    unknown = sorted(set(feats) - set(ALL_FEATURES))
    if unknown:
        raise SystemExit(f"--features: unknown {unknown}; choose from {', '.join(ALL_FEATURES)}")
    stats = json.loads(a.signal.read_text())

    def row(name: str, score: float) -> list[float]:
        if name not in stats:
            raise SystemExit(f"{a.signal}: no statistics for member {name!r}; was it written for the same zoo as {a.bench}?")
        return [score] + [stats[name][f] for f in feats]

    arms = ("encoder", "stacked C=0.1", "stacked C=1", "statistics only")
    by_kind: dict[str, list[dict[str, float]]] = {}
    print(f"| split | {' | '.join(arms)} |\n|---|" + "---|" * len(arms))
    for run in bench_runs(a.bench / "results.json"):
        if run["method"] != "uap" or run["seed"] != 0:
            continue
        fp = json.loads((Path(run["fingerprint"]) / "fingerprint.json").read_text())
        train = fp["meta"]["calibration"]["member_scores"]
        x_tr = np.array([row(n, s) for n, s in train.items()])
        y_tr = np.array([stats[n]["label"] == "positive" for n in train], dtype=int)
        x_te = np.array([row(s["name"], s["score"]) for s in run["scores"]])
        y_te = [int(s["label"] == "positive") for s in run["scores"]]
        if len(set(y_te)) < 2 or len(set(y_tr)) < 2:
            continue
        out = {"encoder": auc(list(x_te[:, 0]), y_te)}
        for c, arm in ((0.1, "stacked C=0.1"), (1.0, "stacked C=1")):
            lr = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x_tr, y_tr)
            out[arm] = auc(list(lr.decision_function(x_te)), y_te)
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_tr[:, 1:], y_tr)
        out["statistics only"] = auc(list(lr.decision_function(x_te[:, 1:])), y_te)
        by_kind.setdefault(run["split"].split(":")[0], []).append(out)
        print(f"| {run['split']} | " + " | ".join(f"{out[k]:.3f}" for k in arms) + " |")
    print("\n" + mean_worst_table(by_kind, arms))


if __name__ == "__main__":
    main()
