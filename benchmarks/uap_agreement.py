"""Does ``uap``'s own clean-anchor label agreement help where its encoder is weakest (unseen
architectures)? Every ``uap`` verdict reports ``label_agreement_clean`` — how often the suspect's labels
on the clean anchor points (the 2 000 un-perturbed queries of its 4 000) match the victim's. This reads
finished bench results and prints AUC per split kind (per-seed mean over folds, median over seeds) for
the encoder similarity, the agreement alone, and their rank mean on each fold's test members (a
transductive, offline check: it ranks the test members against each other).

    python benchmarks/uap_agreement.py runs/bench-fmnist-xl-s6-seed0/results.json runs/bench-fmnist-xl-s6-seed1/results.json \
        runs/bench-fmnist-xl-s6-seed2/results.json

``--weights 0,0.25,0.5,0.75,1`` instead sweeps the deployable mix (``agreement_weight``, the mapping of
the agreement onto the similarity's scale taken from each fold's fingerprint, i.e. from its training
members only) on benches run with ``-p uap.agreement_weight=W`` for any W > 0. The mix is applied to the
means over fingerprints (the method mixes and clips per fingerprint; the printed ``check`` column is the
AUC of the stored scores, to compare with this approximation at the bench's own W). ``--scale
negatives --zoo DIR`` maps the agreement with the training *negatives'* means and spreads instead of all
training members' (the method's choice), from the cross-fitted values each fingerprint stores.
``--auto --zoo DIR`` adds a column that picks the weight per fold from the sweep's grid by the AUC of the
fold's *training* members' cross-fitted (similarity, agreement) — a weight chosen by the fit itself,
smallest on ties — and an ``oracle`` column (the best weight per fold on its test members, an upper
bound, not deployable).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _runs(paths: list[str]):
    for path in paths:
        for r in json.loads(Path(path).read_text())["runs"]:
            if r["method"] != "uap" or r.get("error") or r.get("tag"):
                continue
            kind = "random" if r["split"] == "random" else r["split"].split(":")[0]
            y = np.array([s["label"] == "positive" for s in r["scores"]], int)
            if y.min() == y.max():
                continue
            yield kind, r, y


def _table(res: dict[str, dict[tuple[str, int], list[float]]], names: list[str], header: list[str]) -> None:
    print("| split kind | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for kind in ("random", "family", "arch"):
        cells = []
        for name in names:
            per_seed = [statistics.mean(v) for (n, _), v in sorted(res[kind].items()) if n == name]
            cells.append(f"{statistics.median(per_seed):.3f}" if per_seed else "–")
        print(f"| {kind} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    from modelprint.bench.metrics import auc, tpr_at_fpr
    from modelprint.methods.uap import agreement_scale, combine_views, guarded_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="bench results.json files (any seeds)")
    ap.add_argument("--weights", default=None, help="comma-separated agreement weights to sweep (benches run with agreement_weight > 0)")
    ap.add_argument("--scale", choices=("members", "negatives"), default="members", help="with --weights: the statistics the agreement is mapped with")
    ap.add_argument("--zoo", default=None, help="with --scale negatives or --auto: the zoo the bench trained on (member labels)")
    ap.add_argument("--auto", action="store_true", help="with --weights: also pick the weight per fold by its training members' cross-fitted AUC")
    a = ap.parse_args(argv)
    res: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    if a.weights is None:
        for kind, r, y in _runs(a.results):
            sc = r["scores"]
            u = np.array([s["score"] for s in sc], float)
            agree = np.array([s["details"].get("label_agreement_clean", np.nan) for s in sc], float)
            if np.isnan(agree).any():
                continue
            for name, v in (("uap", u), ("agreement", agree), ("rank-mean", (rankdata(u) + rankdata(agree)) / 2)):
                res[kind][(name, int(r["seed"]))].append(auc(v, y))
        _table(res, ["uap", "agreement", "rank-mean"], ["uap similarity", "clean-anchor agreement", "rank mean"])
        return
    weights = [float(w) for w in a.weights.split(",")]
    labels: dict[str, str] = {}
    picked: dict[str, list[float]] = defaultdict(list)
    tpr: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    per_fold: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    if a.scale == "negatives" or a.auto:
        if not a.zoo:
            raise SystemExit("--scale negatives and --auto need --zoo (the member labels)")
        from modelprint.zoo import Zoo

        labels = {m.name: m.label for m in Zoo.open(a.zoo).members}
    for kind, r, y in _runs(a.results):
        meta = json.loads((Path(r["fingerprint"]) / "fingerprint.json").read_text())["meta"]
        sc = meta.get("agreement_scale")
        if not sc:
            raise SystemExit(f"{r['fingerprint']}: no agreement_scale (fitted with agreement_weight=0?); run the bench with -p uap.agreement_weight=0.5")
        floor = meta.get("agreement_floor")
        if a.scale == "negatives":
            cal = meta["calibration"]
            neg = [n for n in cal["member_similarity"] if labels.get(n) == "negative" and (floor is None or cal["member_agreement"][n] >= floor)]
            sc = agreement_scale([cal["member_similarity"][n] for n in neg], [cal["member_agreement"][n] for n in neg])
            if sc is None:
                raise SystemExit(f"{r['fingerprint']}: fewer than two plausible training negatives, or all agree equally: no negatives' scale")
        sim = np.array([s["details"].get("similarity", s["details"].get("guard", {}).get("similarity", np.nan)) for s in r["scores"]], float)
        agree = np.array([s["details"]["label_agreement_clean"] for s in r["scores"]], float)
        seed = int(r["seed"])
        res[kind][("check", seed)].append(auc([s["score"] for s in r["scores"]], y))

        def mixed(w: float) -> np.ndarray:
            mix = combine_views(sim, agree, w, sc)
            if floor is not None:
                mix = np.array([guarded_score(m, g) if g < floor else m for m, g in zip(mix, agree)])
            return mix

        mixes = {w: mixed(w) for w in weights}
        test = {w: auc(mixes[w], y) for w in weights}
        for w in weights:
            res[kind][(f"w={w:g}", seed)].append(test[w])
            tpr[kind][(f"w={w:g}", seed)].append(tpr_at_fpr(mixes[w], y, 0.01))
            per_fold[(kind, r["split"], f"w={w:g}")].append(test[w])
        if a.auto:
            cal = meta["calibration"]
            names = [n for n in cal["member_similarity"] if floor is None or cal["member_agreement"][n] >= floor]
            ms = np.array([cal["member_similarity"][n] for n in names])
            ma = np.array([cal["member_agreement"][n] for n in names])
            my = np.array([labels[n] == "positive" for n in names], int)
            train = {w: auc(combine_views(ms, ma, w, sc), my) for w in weights}
            best = max(train.values())
            chosen = min(w for w in weights if train[w] >= best - 1e-9)
            res[kind][("auto", seed)].append(test[chosen])
            res[kind][("oracle", seed)].append(max(test.values()))
            picked[kind].append(chosen)
    names = [f"w={w:g}" for w in weights] + (["auto", "oracle"] if a.auto else []) + ["check"]
    _table(res, names, names[:-1] + ["stored scores (check)"])
    wnames = [f"w={w:g}" for w in weights]
    print("\nTPR at 1 % FPR (per-seed mean over folds, median over seeds):")
    _table(tpr, wnames, wnames)
    print("\nworst fold (lowest per-fold median AUC over seeds):")
    print("| split kind | " + " | ".join(wnames) + " |")
    print("|---" * (len(wnames) + 1) + "|")
    for kind in ("family", "arch"):
        cells = []
        for name in wnames:
            folds = {split: statistics.median(v) for (k, split, n), v in per_fold.items() if k == kind and n == name}
            if folds:
                worst = min(folds, key=folds.get)
                cells.append(f"{worst.split(':', 1)[-1]} {folds[worst]:.3f}")
            else:
                cells.append("–")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    for kind, ws in picked.items():
        print(f"{kind}: auto weight median {statistics.median(ws):g}, range {min(ws):g}-{max(ws):g} over {len(ws)} folds")


if __name__ == "__main__":
    main()
