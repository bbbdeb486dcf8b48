"""Re-scorings of finished ``eval_utaf.py`` runs, offline (no fit): does a classifier's agreement with
the victim on its own mistakes add to UTAF's verifier, how much of UTAF's ARUC is score spread, and what
would an ensemble of independent fits give?

``agreement``: every zoo member's top-1 agreement with the victim on ``--k`` training images the victim
misclassifies (the signal behind ``uap``'s misclassified anchors and AKH) is mapped to [0, 1] by a
logistic regression fitted on each fold's *training* members (the zoo minus the fold's test members), and
mixed into the stored p₊: ``(1 − w)·p₊ + w·P(positive | agreement)``. ARUC / AUC per weight w, each fold's
median over seeds, then the mean over folds of a split kind. Costs ``--k`` more queries per suspect.

``sharpen``: the stored p₊ pushed towards its own decision, ``σ(k · logit p₊)`` for several k — the same
ranking, so AUC and the ARUC ceiling do not move; what moves is how much of the ceiling ARUC gets.

``ensemble``: several fits of the same folds (``eval_utaf.py splits --fit-seed 1``, ``2``, …: other seeds
for the fit, the same test members) averaged member by member, p₊ = mean over the K fits — K fingerprints
and verifiers, K × N queries per suspect. One line per ensemble size K (the first K fits: offsets 0, 1, …).
``--average logit`` averages log-odds instead, ``--average median`` takes the median fit's p₊ (a soft majority
vote); ``--sharpen k`` then applies ``σ(k · logit)`` to the average.

    python benchmarks/utaf_offline.py agreement --zoo runs/fmnist-xl/zoo --results runs/utaf-eval/results.jsonl --tag it2000 --k 100
    python benchmarks/utaf_offline.py sharpen --zoo runs/warfarin/zoo --results runs/utaf-eval/warfarin-base.jsonl --tag vsq-wn0.3-it16000
    python benchmarks/utaf_offline.py ensemble --zoo runs/fmnist-xl/zoo --results runs/utaf-eval/s13-ens.jsonl --tag it2000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_utaf's helpers
os.environ.setdefault("MODELPRINT_PROGRESS", "0")


def _rows(path: str, zoo: str, tag: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    out = [r for r in rows if r.get("kind") == "splits" and r["tag"] == tag and Path(r["zoo"]).resolve() == Path(zoo).resolve()]
    if not out:
        raise SystemExit(f"{path}: no split rows with tag {tag!r} fitted on {zoo}")
    return out


def _logit(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    q = np.clip(p, eps, 1 - eps)
    return np.log(q) - np.log1p(-q)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def _sharpened(p: np.ndarray, k: float) -> np.ndarray:
    """σ(k · logit p): the same ranking, pushed towards its decision."""
    return _sigmoid(k * _logit(p))


def fit_matrix(by_fit: dict[int, dict[str, Any]], split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Rows of fits 0 … K−1 of one fold (by ``meta.fit_seed``) -> member names, labels and p₊ [K, members]
    aligned by name. Exits when the fits are not 0 … K−1 or scored other members."""
    offsets = sorted(by_fit)
    if offsets != list(range(len(offsets))):
        raise SystemExit(f"{split}: fits {offsets}; an ensemble of K needs fits 0 … K-1")
    names = [s[0] for s in by_fit[0]["scores"]]
    y = np.array([1 if s[1] == "positive" else 0 for s in by_fit[0]["scores"]])
    table = []
    for k in offsets:
        got = {s[0]: float(s[4]) for s in by_fit[k]["scores"]}
        if set(got) != set(names):
            raise SystemExit(f"{split}: fit {k} scored other members than fit 0 (another zoo or split?)")
        table.append([got[n] for n in names])
    return names, y, np.array(table)


def _table(per: dict[Any, dict[str, list[tuple[float, float, float]]]], label: str) -> None:
    """``per[variant][split]`` = [(aruc, auc, ceiling) per seed] -> one line per variant and split kind."""
    print(f"| {label} | split kind | folds | ARUC | AUC | ARUC ceiling |")
    print("|---|---|---|---|---|---|")
    for variant, folds in per.items():
        for kind in ("random", "family", "arch"):
            fs = [v for sp, v in folds.items() if sp.split(":")[0] == kind]
            if not fs:
                continue
            med = np.array([[float(np.median([x[i] for x in v])) for i in range(3)] for v in fs])
            m = med.mean(axis=0)
            print(f"| {variant} | {kind} | {len(fs)} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} |")


def member_agreement(zoo_dir: str, k: int, seed: int) -> dict[str, float]:
    """Top-1 agreement of every zoo member with the zoo's victim on ``k`` misclassified training images."""
    import torch

    from eval_utaf import victim_mistakes
    from modelprint.zoo import Zoo

    zoo = Zoo.open(zoo_dir)
    _, _, x, ref = victim_mistakes(zoo, k, seed, "agreement")
    with torch.no_grad():
        return {m.name: float((zoo.module(m).eval()(x).argmax(1) == ref).float().mean()) for m in zoo.members if m.family != "victim"}


def cmd_agreement(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression

    from modelprint.bench.metrics import compute_metrics
    from modelprint.zoo import Zoo

    labels = {m.name: m.label == "positive" for m in Zoo.open(args.zoo).members}
    agree = member_agreement(args.zoo, args.k, args.seed)
    per: dict[Any, dict[str, list[tuple[float, float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in _rows(args.results, args.zoo, args.tag):
        test = {s[0] for s in r["scores"]}
        train = [n for n in agree if n not in test]
        lr = LogisticRegression(C=100.0).fit(np.array([[agree[n]] for n in train]), np.array([labels[n] for n in train]))
        y = [1 if s[1] == "positive" else 0 for s in r["scores"]]
        p = np.clip(np.array([s[4] for s in r["scores"]], float), 0.0, 1.0)
        pa = lr.predict_proba(np.array([[agree[s[0]]] for s in r["scores"]]))[:, 1]
        for w in args.weights:
            m = compute_metrics((1 - w) * p + w * pa, y)
            per[f"w = {w:g}"][r["split"]].append((m["aruc"], m["auc"], m["aruc_ceiling"]))
    print(f"{args.tag} on {args.zoo}: p+ mixed with agreement on {args.k} misclassified training images\n")
    _table(per, "mix")


def cmd_sharpen(args: argparse.Namespace) -> None:
    from modelprint.bench.metrics import compute_metrics

    per: dict[Any, dict[str, list[tuple[float, float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in _rows(args.results, args.zoo, args.tag):
        y = [1 if s[1] == "positive" else 0 for s in r["scores"]]
        raw = np.array([s[4] for s in r["scores"]], float)
        for k in args.factors:  # k = 1: the stored scores themselves (the clip would move p = 1 off the rho = 1 grid point)
            m = compute_metrics(raw if k == 1 else _sharpened(raw, k), y)
            per[f"k = {k:g}"][r["split"]].append((m["aruc"], m["auc"], m["aruc_ceiling"]))
    print(f"{args.tag} on {args.zoo}: sigma(k * logit p+)\n")
    _table(per, "sharpening")


def cmd_ensemble(args: argparse.Namespace) -> None:
    from modelprint.bench.metrics import compute_metrics

    fits: dict[tuple[str, int], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in _rows(args.results, args.zoo, args.tag):
        fits[(r["split"], r["seed"])][int(r["meta"].get("fit_seed", 0))] = r
    per: dict[Any, dict[str, list[tuple[float, float, float]]]] = defaultdict(lambda: defaultdict(list))
    for (split, _), by_fit in sorted(fits.items()):
        _, y, p = fit_matrix(by_fit, split)
        for k in range(1, len(p) + 1):
            if k == 1:  # fit 0's stored scores themselves
                base = p[0]
            elif args.average == "prob":
                base = p[:k].mean(axis=0)
            elif args.average == "median":  # the middle fit: a soft majority vote, extreme where most fits agree
                base = np.median(p[:k], axis=0)
            else:  # sigma(mean logit): the members' log-odds added, as independent evidence
                base = _sigmoid(_logit(p[:k]).mean(axis=0))
            m = compute_metrics(base if args.sharpen == 1 else _sharpened(base, args.sharpen), y)
            per[f"K = {k}"][split].append((m["aruc"], m["auc"], m["aruc_ceiling"]))
        if args.folds:
            print(f"{split}: " + ", ".join(f"K={k} {'/'.join(f'{x:.3f}' for x in per[f'K = {k}'][split][-1])}" for k in range(1, len(p) + 1)))
    print(f"{args.tag} on {args.zoo}: p+ averaged over K independent fits ({args.average})\n")
    _table(per, "ensemble")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("agreement", "sharpen", "ensemble"):
        p = sub.add_parser(name)
        p.add_argument("--zoo", required=True, help="the zoo the runs were fitted on")
        p.add_argument("--results", default="runs/utaf-eval/results.jsonl")
        p.add_argument("--tag", required=True)
    sub.choices["agreement"].add_argument("--k", type=int, default=100, help="misclassified training images queried")
    sub.choices["agreement"].add_argument("--seed", type=int, default=0)
    sub.choices["agreement"].add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    sub.choices["sharpen"].add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0, 1000.0])
    sub.choices["ensemble"].add_argument("--folds", action="store_true", help="also print every fold's ARUC / AUC / ceiling per K")
    sub.choices["ensemble"].add_argument("--average", choices=("prob", "logit", "median"), default="prob", help="mean of p+ (ensemble=K), sigma of the mean logit, or the median p+")
    sub.choices["ensemble"].add_argument("--sharpen", type=float, default=1.0, help="then sigma(k * logit) of the average, k = this (1: none)")
    args = ap.parse_args(argv)
    {"agreement": cmd_agreement, "sharpen": cmd_sharpen, "ensemble": cmd_ensemble}[args.cmd](args)


if __name__ == "__main__":
    main()
