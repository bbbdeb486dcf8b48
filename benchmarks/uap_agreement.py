"""Does ``uap``'s own clean-anchor label agreement help where its encoder is weakest (unseen
architectures)? Every ``uap`` verdict reports ``label_agreement_clean`` — how often the suspect's labels
on the clean anchor points (the 2 000 un-perturbed queries of its 4 000) match the victim's. This reads
finished bench results and prints AUC per split kind (per-seed mean over folds, median over seeds) for
the encoder similarity, the agreement alone, and their rank mean on each fold's test members (a
transductive, offline check: a deployable combination would standardise against training members).

    python benchmarks/uap_agreement.py runs/bench-fmnist-xl-s6-seed0/results.json runs/bench-fmnist-xl-s6-seed1/results.json \
        runs/bench-fmnist-xl-s6-seed2/results.json
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


def main(argv: list[str] | None = None) -> None:
    from modelprint.bench.metrics import auc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="bench results.json files (any seeds)")
    a = ap.parse_args(argv)
    res: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in a.results:
        for r in json.loads(Path(path).read_text())["runs"]:
            if r["method"] != "uap" or r.get("error"):
                continue
            kind = "random" if r["split"] == "random" else r["split"].split(":")[0]
            sc = r["scores"]
            y = np.array([s["label"] == "positive" for s in sc], int)
            u = np.array([s["score"] for s in sc], float)
            agree = np.array([s["details"].get("label_agreement_clean", np.nan) for s in sc], float)
            if np.isnan(agree).any() or y.min() == y.max():
                continue
            for name, v in (("uap", u), ("agreement", agree), ("rank-mean", (rankdata(u) + rankdata(agree)) / 2)):
                res[kind][(name, int(r["seed"]))].append(auc(v, y))
    print("| split kind | uap similarity | clean-anchor agreement | rank mean |")
    print("|---|---|---|---|")
    for kind in ("random", "family", "arch"):
        cells = []
        for name in ("uap", "agreement", "rank-mean"):
            per_seed = [statistics.mean(v) for (n, _), v in sorted(res[kind].items()) if n == name]
            cells.append(f"{statistics.median(per_seed):.3f}" if per_seed else "–")
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
