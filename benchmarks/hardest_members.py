"""Which suspects cap a method's quality? The members a method keeps on the wrong side of its best
threshold, fold after fold, and how close each is to the victim.

For every fold of every result file, the threshold that defines the fold's ARUC ceiling (the best
``min(TPR, TNR)``, :func:`modelprint.bench.metrics.aruc_ceiling`) is found on the fold's own scores;
a positive scored below it or a negative at or above it is *wrong at the best threshold*. No
calibration of the method's scores can put such a member right without putting another wrong, so these
members, not the score scale, are what stands between a method and AUC 0.99 / ARUC 0.95. Each is
printed with its fidelity (agreement with the victim on held-out data, from the zoo manifest) and that
fidelity's rank among the zoo's negatives: a thief below most honest models, or an honest model above
most thieves, is one no closeness measure separates.

Reads ``modelprint bench`` results (``results.json``, one method or ``--method``) and
``benchmarks/eval_utaf.py`` JSONL files (``--tag``) alike:

    python benchmarks/hardest_members.py --zoo runs/fmnist-xl/zoo \\
        --results runs/bench-fmnist-xl-default-s11-seed0/results.json runs/bench-fmnist-xl-default-s11-seed1/results.json \\
        --results runs/utaf-eval/results.jsonl --tag it2000 --top 15

``--closeness`` (classifier zoos) adds how close each listed member is to the victim by five output
statistics, each as its rank among the zoo's honest models (1.0 = closer than every honest model): top-1
agreement on training images the victim misclassifies, the second choice's agreement where the top-1
agrees, the rank correlation of the probability vectors and (low) KL divergence from the victim's, on
``--closeness-n`` images, and how well a linear map of the victim's log-probabilities predicts the member's
(R², on mistakes and test images: indifferent to how a re-trained last layer mixes the classes). A thief
ranked low on all five looks, by its outputs, like an honest model.

``--without A B …`` re-scores every fold without those members (AUC and ARUC ceiling per split kind:
each fold's median over seeds, then the mean over folds [worst fold]) beside the scores with them — how
much of the gap a handful of members makes. A diagnosis, not a result: the members are picked by looking
at the test scores.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from modelprint.bench.metrics import aruc_ceiling, auc, best_threshold

sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_utaf's helpers

# (method, split, seed, [(name, label, family, arch, score), ...])
Fold = tuple[str, str, int, list[tuple[str, str, str, str, float]]]


def _same(a: str, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


def read_folds(path: Path, zoo: Path, method: str | None, tag: str | None) -> Iterator[Fold]:
    """The folds of one result file — a bench ``results.json`` or an ``eval_utaf.py`` JSONL — that were
    fitted on ``zoo`` (a JSONL file holds runs on several zoos)."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        for line in text.splitlines():
            r = json.loads(line) if line.strip() else {}
            if r.get("kind") == "splits" and (tag is None or r["tag"] == tag) and _same(r["zoo"], zoo):
                yield f"utaf:{r['tag']}:{r['mode']}", r["split"], int(r["seed"]), [tuple(s[:5]) for s in r["scores"]]
        return
    res = json.loads(text)
    if not _same((res.get("zoo") or {}).get("path", ""), zoo):
        return
    for r in res.get("runs", []):
        if r.get("error") or not r.get("scores") or (method and r["method"] != method):
            continue
        yield f"{r['method']}:{r.get('mode', '')}", r["split"], int(r["seed"]), [(s["name"], s["label"], s["family"], s["arch"], s["score"]) for s in r["scores"]]


def wrong_at_best_threshold(scores: list[tuple[str, str, str, str, float]]) -> tuple[float, set[str]]:
    """The fold's ARUC ceiling and the members on the wrong side of the threshold that reaches it."""
    ceiling, flagged = best_threshold([x[4] for x in scores], [1 if x[1] == "positive" else 0 for x in scores])
    return ceiling, {x[0] for x, f in zip(scores, flagged) if f != (x[1] == "positive")}


CLOSENESS = ("agree on mistakes", "2nd choice", "rank corr.", "low KL", "linear-map R²")


def closeness(zoo: Any, n: int) -> dict[str, tuple[float, ...]]:
    """Per member (not the victim): the :data:`CLOSENESS` statistics against the zoo's victim, higher =
    closer (KL negated). Mistakes: the first ``n`` training images the victim misclassifies (seeded order).
    Linear-map R²: a ridge map from the victim's centred log-probabilities to the member's, fitted on the
    even rows of mistakes + test images and scored on the odd rows — closeness up to any linear change of
    the output layer, the part a thief that re-trains its last layer cannot wash out of its features."""
    import torch
    from sklearn.linear_model import Ridge

    def clr(net: Any, x: Any) -> Any:
        lp = torch.log_softmax(net(x), 1).double()
        return (lp - lp.mean(1, keepdim=True)).numpy()

    from eval_utaf import victim_mistakes

    victim, ds, wrong, v_wrong = victim_mistakes(zoo, n, 0, "--closeness")
    x = ds.x_test[:n]
    out = {}
    with torch.no_grad():
        pv = torch.softmax(victim(x), 1)
        v2 = pv.topk(2, 1).indices
        rv = pv.argsort(1).argsort(1).float()
        both = torch.cat([wrong, x])
        lv = clr(victim, both)
        for m in zoo.members:
            if m.family == "victim":
                continue
            net = zoo.module(m).eval()
            p = torch.softmax(net(x), 1)
            t2 = p.topk(2, 1).indices
            same = t2[:, 0] == v2[:, 0]
            rm = p.argsort(1).argsort(1).float()
            c = (pv.shape[1] - 1) / 2
            lm = clr(net, both)
            out[m.name] = (
                float((net(wrong).argmax(1) == v_wrong).float().mean()),
                float((t2[same, 1] == v2[same, 1]).float().mean()) if same.any() else 0.0,
                float(torch.nn.functional.cosine_similarity(rv - c, rm - c, dim=1).mean()),
                -float((pv * (pv.clamp_min(1e-8).log() - p.clamp_min(1e-8).log())).sum(1).mean()),
                float(Ridge(alpha=1.0).fit(lv[::2], lm[::2]).score(lv[1::2], lm[1::2])),
            )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", required=True, help="the zoo the runs were fitted on (only its runs are read); its manifest gives each member's fidelity")
    ap.add_argument("--results", nargs="+", action="append", required=True, help="result files (repeatable)")
    ap.add_argument("--method", help="bench results: only this method")
    ap.add_argument("--tag", help="eval_utaf JSONL: only this tag")
    ap.add_argument("--top", type=int, default=15, help="members to list per method")
    ap.add_argument("--without", nargs="*", default=[], help="also re-score every fold without these members")
    ap.add_argument("--closeness", action="store_true", help="classifier zoos: add each member's closeness ranks among honest models")
    ap.add_argument("--closeness-n", type=int, default=500, help="images per closeness statistic")
    args = ap.parse_args(argv)
    from modelprint.zoo import Zoo

    zoo = Zoo.open(args.zoo)
    fid = {m.name: m.fidelity for m in zoo.members}
    neg_fid = np.array([m.fidelity for m in zoo.members if m.label == "negative" and m.fidelity is not None and m.family != "irrelevant"], float)

    tested: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    wrong: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    info: dict[str, tuple[str, str, str]] = {}
    ceilings: dict[str, list[float]] = defaultdict(list)
    # method -> which ("all" / "without") -> split -> [(auc, ceiling) per seed]
    by_split: dict[str, dict[str, dict[str, list[tuple[float, float]]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    drop = set(args.without)
    for path in (Path(p) for group in args.results for p in group):
        for method, split, seed, scores in read_folds(path, Path(args.zoo), args.method, args.tag):
            ceiling, bad = wrong_at_best_threshold(scores)
            ceilings[method].append(ceiling)
            for which, sc in (("all", scores), ("without", [x for x in scores if x[0] not in drop])):
                y = [1 if x[1] == "positive" else 0 for x in sc]
                if drop and 0 < sum(y) < len(y):
                    by_split[method][which][split].append((auc([x[4] for x in sc], y), aruc_ceiling([x[4] for x in sc], y)))
            for name, label, family, arch, _ in scores:
                info[name] = (label, family, arch)
                tested[method][name] += 1
                wrong[method][name] += name in bad
    if not ceilings:
        raise SystemExit("no folds found: check --results, --zoo (the zoo the runs were fitted on), --method and --tag")
    close = closeness(zoo, args.closeness_n) if args.closeness else {}
    honest = [close[m.name] for m in zoo.members if m.name in close and m.label == "negative" and m.family != "irrelevant"]
    for method in sorted(ceilings):
        c = np.array(ceilings[method])
        print(f"\n## {method}: {len(c)} folds, ARUC ceiling median {np.median(c):.3f} [min {c.min():.3f}]\n")
        extra = "".join(f" {c} |" for c in CLOSENESS) if close else ""
        print("| member | label | family | arch | fidelity | rank among negatives | wrong / tested |" + extra)
        print("|---|---|---|---|---|---|---|" + "---|" * (len(CLOSENESS) if close else 0))
        ranked = sorted(tested[method], key=lambda n: (-wrong[method][n] / tested[method][n], -wrong[method][n], n))
        for name in [n for n in ranked if wrong[method][n]][: args.top]:
            label, family, arch = info[name]
            f = fid.get(name)
            rank = f"{(neg_fid < f).mean():.2f}" if f is not None and len(neg_fid) else "–"
            cells = "".join(f" {np.mean([h[i] < close[name][i] for h in honest]):.2f} |" for i in range(len(CLOSENESS))) if close and name in close else ""
            print(f"| {name} | {label} | {family} | {arch} | {'–' if f is None else f'{f:.3f}'} | {rank} | {wrong[method][name]} / {tested[method][name]} |" + cells)
        if drop:
            print(f"\nWithout {', '.join(sorted(drop))} — AUC / ARUC ceiling, mean over folds [worst fold]:\n")
            print("| split kind | all members | without them |")
            print("|---|---|---|")
            for kind in ("random", "family", "arch"):
                cells = []
                for which in ("all", "without"):
                    folds = {sp: v for sp, v in by_split[method][which].items() if sp.split(":")[0] == kind}
                    if not folds:
                        cells.append("–")
                        continue
                    a = [float(np.median([x[0] for x in v])) for v in folds.values()]
                    c = [float(np.median([x[1] for x in v])) for v in folds.values()]
                    cells.append(f"{np.mean(a):.3f} [{min(a):.3f}] / {np.mean(c):.3f} [{min(c):.3f}]")
                print(f"| {kind} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
