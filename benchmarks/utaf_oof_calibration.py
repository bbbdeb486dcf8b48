"""Can a calibration fitted without the test members turn a UTAF ensemble's ranking into ARUC?

Per fold of a zoo (split seed 0): the training members are split in two label-stratified halves; a
``ensemble=K`` UTAF is fitted on each half (with the victim) and scores the other half, which gives every
training member an out-of-fold score. A logistic map on logit(p₊) fitted to those is applied to the full
ensemble's test scores — the mean p₊ of fits 0 … K−1 stored by ``eval_utaf.py splits [--fit-seed k]``
(the same rows ``utaf_offline.py ensemble`` reads). Prints ARUC / AUC before and after, and the ceiling.

    python benchmarks/utaf_oof_calibration.py --zoo runs/warfarin/zoo --results runs/utaf-eval/s13-warf-ens-all.jsonl \\
        --tag vsq-wn0.3 --k 3 --mode raw --param reference=victim-sq --param weight_noise=0.3
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_utaf's helpers
os.environ.setdefault("MODELPRINT_PROGRESS", "0")


def main(argv: list[str] | None = None) -> None:
    from sklearn.linear_model import LogisticRegression

    from eval_utaf import _parse_params, zoo_victim_and_dataset
    from utaf_offline import _logit, _rows, fit_matrix
    from modelprint.bench.metrics import compute_metrics
    from modelprint.bench.runner import run_method
    from modelprint.bench.suite import plan_splits
    from modelprint.zoo import Zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--results", required=True, help="eval_utaf JSONL with fits 0 … K-1 of every fold (split seed 0)")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--k", type=int, default=3, help="ensemble size")
    ap.add_argument("--mode", default="raw")
    ap.add_argument("--param", action="append", default=[], help="utaf parameter name=value (those of the stored fits)")
    args = ap.parse_args(argv)

    params = _parse_params(args.param)
    zoo = Zoo.open(args.zoo)
    victim, ds = zoo_victim_and_dataset(zoo)
    rows = [r for r in _rows(args.results, args.zoo, args.tag) if r["seed"] == 0]
    per: dict[str, list[tuple[float, ...]]] = {}
    print("| fold | ensemble ARUC / AUC | out-of-fold calibrated ARUC / AUC | ARUC ceiling | map slope, intercept |")
    print("|---|---|---|---|---|")
    for ps in plan_splits(zoo, ["random", "lofo", "loao"], [0]):
        fits = {int(r["meta"].get("fit_seed", 0)): r for r in rows if r["split"] == ps.name}
        if any(k not in fits for k in range(args.k)):
            continue
        _, y, p = fit_matrix({k: fits[k] for k in range(args.k)}, ps.name)
        test = p.mean(axis=0)
        train = [m for m in ps.train.members if m.family != "victim"]
        victims = [m for m in ps.train.members if m.family == "victim"]
        rng = random.Random(0)
        halves: list[list] = [[], []]
        for lab in ("positive", "negative"):
            ms = sorted([m for m in train if m.label == lab], key=lambda m: m.name)
            rng.shuffle(ms)
            for i, m in enumerate(ms):
                halves[i % 2].append(m)
        oof_s: list[float] = []
        oof_y: list[int] = []
        for a, b in ((0, 1), (1, 0)):
            res = run_method("utaf", {**params, "ensemble": args.k}, victim, ds, ps.train.subset(victims + halves[a]), ps.train.subset(halves[b]), mode=args.mode, split=ps.name, seed=0, device="cpu")
            oof_s += [s.score for s in res.scores]
            oof_y += [1 if s.label == "positive" else 0 for s in res.scores]
        lr = LogisticRegression(C=100.0).fit(_logit(np.array(oof_s), 1e-6)[:, None], np.array(oof_y))
        cal = lr.predict_proba(_logit(test, 1e-6)[:, None])[:, 1]
        m0, m1 = compute_metrics(test, y), compute_metrics(cal, y)
        per[ps.name] = (m0["aruc"], m0["auc"], m1["aruc"], m1["auc"], m0["aruc_ceiling"])
        print(f"| {ps.name} | {m0['aruc']:.3f} / {m0['auc']:.3f} | {m1['aruc']:.3f} / {m1['auc']:.3f} | {m0['aruc_ceiling']:.3f} | {lr.coef_[0][0]:.2f}, {lr.intercept_[0]:.2f} |", flush=True)
    for kind in ("random", "family", "arch"):
        v = [x for name, x in per.items() if name.split(":")[0] == kind]
        if v:
            m = np.mean(v, axis=0)
            print(f"| **{kind} mean** ({len(v)}) | {m[0]:.3f} / {m[1]:.3f} | {m[2]:.3f} / {m[3]:.3f} | {m[4]:.3f} | |")


if __name__ == "__main__":
    main()
