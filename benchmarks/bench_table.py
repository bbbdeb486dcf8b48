"""Markdown summary tables of one or more ``modelprint bench`` runs (their ``results.json``), for
docs/RESULTS.md: per method, the random held-out split (median over seeds, with the range), the
leave-one-family-out and leave-one-architecture-out folds (median and worst fold), queries and seconds;
then QuRD's per-family figure (TPR at 5 % FPR of each positive group against all held-out negatives).

    python benchmarks/bench_table.py runs/bench-fmnist-quick/results.json [more results.json ...]
    python benchmarks/bench_table.py --per-fold uap,akh quick=runs/bench-a/results.json+runs/bench-a-seeds/results.json runs/bench-b/results.json

``--per-fold`` instead compares runs fold by fold: one row per split (random seeds and every LOFO / LOAO
fold), one column per (arm, method), cells AUC; then the LOFO / LOAO means and worst folds. An arm is a
results file (named by its directory) or ``NAME=file+file`` (files merged under NAME).

``--only-members ZOO`` (with ``--per-fold``) recomputes each fold's AUC from the recorded per-member scores
of the members that ``ZOO``'s manifest also holds: a method trained on a larger zoo, judged on the test
members a smaller zoo would have had (folds whose restricted test set lacks a label are left out).

Every number is read from the results files; nothing is computed that the bench did not record, except
medians/minima across seeds and folds and the restricted AUCs of ``--only-members``.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator


def _f(x: Any, nd: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and x != x) else f"{x:.{nd}f}"


def _med(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else None


def _spread(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None and x == x]
    if not xs:
        return "–"
    if len(xs) == 1:
        return _f(xs[0])
    return f"{_f(statistics.median(xs))} [{_f(min(xs))}–{_f(max(xs))}]"


def _folds(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None and x == x]
    if not xs:
        return "–"
    return f"{_f(statistics.median(xs))} [{_f(min(xs))}] ({len(xs)})"


def bench_runs(path: Path) -> Iterator[dict[str, Any]]:
    """The runs of a bench ``results.json`` that the tables read: those that finished, untagged (a tag
    marks a parameter variant run beside the method's main runs)."""
    for r in json.loads(Path(path).read_text())["runs"]:
        if not r.get("error") and not r.get("tag"):
            yield r


def mean_worst_table(by_kind: dict[str, list[dict[str, float]]], arms: list[str] | tuple[str, ...]) -> str:
    """Markdown table: one row per split kind, one column per arm, cells "mean [worst fold]" of the
    per-fold AUCs in ``by_kind[kind]`` (a list of {arm: AUC} dicts, one per fold)."""
    lines = [f"| split kind (folds) | {' | '.join(arms)} |", "|---|" + "---|" * len(arms)]
    for kind, outs in by_kind.items():
        cells = [f"{statistics.mean(o[k] for o in outs):.3f} [{min(o[k] for o in outs):.3f}]" for k in arms]
        lines.append(f"| {kind} ({len(outs)}): mean [worst] | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--per-fold", default=None, help="comma-separated methods: a fold-by-fold AUC table across the results files")
    ap.add_argument("--only-members", default=None, help="zoo directory: with --per-fold, AUC over the test members this zoo also holds")
    a = ap.parse_args()
    if a.per_fold:
        keep = None
        if a.only_members:
            from modelprint.zoo import Zoo

            keep = {m.name for m in Zoo.open(a.only_members).members}
        per_fold(a.results, a.per_fold.split(","), keep)
        return
    runs = [r for p in a.results for r in bench_runs(p)]
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by[(r["method"], r["mode"])].append(r)
    print("| method | mode | random AUC | random ARUC | TPR@1%FPR | TPR@5%FPR | R@U=100% | LOFO AUC median [worst] (folds) | LOFO ARUC median | LOAO AUC median [worst] (folds) | LOAO ARUC median | queries / suspect | construction CPU s (median) | verify CPU ms / suspect |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = sorted(by, key=lambda k: (-(_med([r["metrics"]["auc"] for r in by[k] if r["split_kind"] == "random"]) or 0), k))
    for key in order:
        rr = by[key]
        rnd = [r for r in rr if r["split_kind"] == "random"]
        fam = [r for r in rr if r["split_kind"] == "family"]
        arc = [r for r in rr if r["split_kind"] == "arch"]
        m = lambda rs, k: [r["metrics"].get(k) for r in rs]
        cpu = _med([r.get("construction_cpu_seconds") for r in rr])
        ver = _med([r.get("verify_cpu_seconds") for r in rr])
        print(f"| {key[0]} | {key[1]} | {_spread(m(rnd, 'auc'))} | {_spread(m(rnd, 'aruc'))} | {_spread(m(rnd, 'tpr@1%fpr'))} | {_spread(m(rnd, 'tpr@5%fpr'))} | {_spread(m(rnd, 'r@u=100%'))} "
              f"| {_folds(m(fam, 'auc'))} | {_f(_med(m(fam, 'aruc')))} | {_folds(m(arc, 'auc'))} | {_f(_med(m(arc, 'aruc')))} "
              f"| {_f(_med([r.get('queries_per_suspect') for r in rr]), 0)} | {_f(cpu, 1)} | {_f(ver * 1000 if ver is not None else None, 0)} |")
    seeds = sorted({r["seed"] for r in runs if r["split_kind"] == "random"})
    print(f"\nRandom split: median over seeds {seeds} [range]. Folds: median over folds [worst fold] (number of folds).\n")

    # QuRD-style per-family figure
    groups = sorted({g for r in runs if r["split_kind"] == "random" for g, e in r["analysis"]["per_group"].items() if e["label"] == "positive"})
    methods = [k for k in order]
    print("| positive group | " + " | ".join(f"{k[0]} ({k[1]})" for k in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for g in groups:
        cells = []
        for k in methods:
            v = [r["analysis"]["per_group"][g].get("tpr@5%fpr_vs_negatives") for r in by[k] if r["split_kind"] == "random" and g in r["analysis"]["per_group"]]
            cells.append(_f(_med(v), 2))
        print(f"| {g} | " + " | ".join(cells) + " |")
    print("\nCells: TPR at 5 % FPR of that group's held-out members against all held-out negatives (random split, median over seeds).")


def _restricted_auc(scores: list[dict[str, Any]], keep: set[str]) -> float | None:
    """AUC (the bench's own metric) over the members in ``keep``; None when a label is missing there."""
    from modelprint.bench.metrics import auc

    sc = [s for s in scores if s["name"] in keep and s.get("score") is not None]
    value = auc([s["score"] for s in sc], [int(s["label"] == "positive") for s in sc])
    return None if value != value else value


def per_fold(arms: list[str], methods: list[str], keep: set[str] | None = None) -> None:
    cols: list[tuple[str, str]] = []
    auc: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    kind_of: dict[str, str] = {}
    files = []
    for arm in arms:
        name, _, paths = arm.rpartition("=")
        files += [(name or Path(f).parent.name, Path(f)) for f in paths.split("+")]
    for name, p in files:
        for r in bench_runs(p):
            if r["method"] not in methods:
                continue
            col = (name, r["method"])
            if col not in cols:
                cols.append(col)
            split = f"random seed {r['seed']}" if r["split_kind"] == "random" else r["split"]
            value = r["metrics"]["auc"] if keep is None else _restricted_auc(r["scores"], keep)
            if value is None:
                continue
            auc[col][split] = value
            kind_of[split] = r["split_kind"]
    kind_order = {"random": 0, "family": 1, "arch": 2}
    splits = sorted(kind_of, key=lambda s: (kind_order[kind_of[s]], s))
    print("| split | " + " | ".join(f"{d}: {m}" for d, m in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for sp in splits:
        print(f"| {sp} | " + " | ".join(_f(auc[c].get(sp)) for c in cols) + " |")
    for kind, name in (("random", "random: median"), ("family", "LOFO: mean [worst] (folds)"), ("arch", "LOAO: mean [worst] (folds)")):
        cells = []
        for c in cols:
            xs = [v for s, v in auc[c].items() if kind_of[s] == kind]
            if not xs:
                cells.append("–")
            elif kind == "random":
                cells.append(f"{_f(statistics.median(xs))} ({len(xs)})")
            else:
                cells.append(f"{_f(statistics.mean(xs))} [{_f(min(xs))}] ({len(xs)})")
        print(f"| **{name}** | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
