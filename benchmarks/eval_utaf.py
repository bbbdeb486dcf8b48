"""UTAF on a real zoo: held-out, leave-one-family-out and leave-one-architecture-out quality, the
ARUC-vs-N (paper Fig. 4) and ARUC-vs-zoo-size (Fig. 5) curves, batched-variant convergence, and timing.

Every fold's result is appended to a JSONL file as soon as it is done; re-running skips finished
folds (same tag, zoo, mode, split, seed), so a killed run resumes where it stopped.

    python benchmarks/eval_utaf.py splits  --zoo runs/fmnist-quick --dataset fashion-mnist --mode probs --tag default
    python benchmarks/eval_utaf.py curve-n --zoo runs/fmnist-quick --dataset fashion-mnist
    python benchmarks/eval_utaf.py curve-zoo --zoo runs/fmnist-quick --dataset fashion-mnist
    python benchmarks/eval_utaf.py convergence --zoo runs/fmnist-quick --dataset fashion-mnist
    python benchmarks/eval_utaf.py table   --results runs/utaf-eval/results.jsonl
    python benchmarks/eval_utaf.py plot    --results runs/utaf-eval/results.jsonl --out docs/results/utaf_curves.png
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("MODELPRINT_PROGRESS", "0")


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _done(path: Path) -> set[str]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        try:
            keys.add(json.loads(line)["key"])
        except (json.JSONDecodeError, KeyError):
            continue
    return keys


def _append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def zoo_victim_and_dataset(zoo: Any, victim: str | None = None, dataset: str | None = None) -> tuple[Any, Any]:
    """The zoo's victim (a loaded model) and dataset as its manifest records them; ``victim`` / ``dataset``
    override. Exits with the flag to pass when the zoo records neither."""
    from modelprint.data import load_dataset
    from modelprint.io import load_model

    info_v = zoo.info.get("victim")
    rec = [m for m in zoo.members if m.family == "victim"]
    if victim:
        vpath = Path(victim)
    elif isinstance(info_v, dict) and info_v.get("path"):
        vpath = Path(info_v["path"])
    elif rec:
        vpath = zoo.root / rec[0].path
    else:
        raise SystemExit(f"{zoo.root}: no victim recorded; pass --victim")
    info_d = zoo.info.get("dataset")
    if dataset:
        ds = load_dataset(dataset)
    elif isinstance(info_d, dict):
        ds = load_dataset(info_d["name"], **(info_d.get("kwargs") or {}))
    elif isinstance(info_d, str):
        ds = load_dataset(info_d)
    else:
        raise SystemExit(f"{zoo.root}: no dataset recorded; pass --dataset")
    return load_model(vpath), ds


def victim_mistakes(zoo: Any, n: int, seed: int, what: str) -> tuple[Any, Any, Any, Any]:
    """For a classifier zoo: its victim (eval mode), dataset, ``n`` training images the victim
    misclassifies (seeded order) and the victim's labels for them. ``what`` names the caller's
    option in the exit message for a zoo of another task."""
    import torch

    from modelprint.methods._baseline import misclassified_inputs

    loaded, ds = zoo_victim_and_dataset(zoo)
    victim = loaded.module.eval()
    if ds.task.kind != "classification":
        raise SystemExit(f"{what} needs a classifier zoo ({zoo.root} is {ds.task.kind})")
    wrong, _ = misclassified_inputs(victim, ds, n, seed=seed, device=torch.device("cpu"), split="train")
    with torch.no_grad():
        return victim, ds, wrong, victim(wrong).argmax(1)


def _setup(args: argparse.Namespace):
    from modelprint.zoo import Zoo

    torch.set_num_threads(args.threads)
    zoo = Zoo.open(args.zoo)
    victim, ds = zoo_victim_and_dataset(zoo, args.victim, args.dataset)
    return zoo, victim, ds


def _row(args: argparse.Namespace, key: str, kind: str, split: str, seed: int, params: dict[str, Any], res, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "tag": args.tag,
        "zoo": str(args.zoo),
        "mode": args.mode,
        "split": split,
        "seed": seed,
        "params": params,
        "metrics": res.metrics,
        "construction_seconds": res.construction_seconds,
        "verify_seconds": res.verify_seconds,
        "queries_per_suspect": res.queries_per_suspect,
        # with a distance guard: + the member's distance to the victim's answers and the guard's ceiling
        "scores": [[s.name, s.label, s.family, s.arch, s.score] + _guard_fields(s.details) for s in res.scores],
        "meta": {k: v for k, v in (extra or {}).items()},
        "folds_from": getattr(args, "folds_from", None),
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
    }


def _guard_fields(details: dict[str, Any]) -> list[float]:
    g = (details or {}).get("guard") or {}
    return [g["distance_to_victim"], g["ceiling"]] if "distance_to_victim" in g else []


def guard_rescored(rows: list[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """The rows re-scored as if fitted with ``distance_guard=factor``: needs rows run with a guard (any
    factor at least as large, e.g. 1000 to record distances without guarding anyone); others are dropped."""
    from modelprint.bench.metrics import compute_metrics
    from modelprint.methods.utaf import guarded_score

    out = []
    for r in rows:
        used = (r.get("params") or {}).get("distance_guard")
        if not used or not r["scores"] or len(r["scores"][0]) < 7:
            continue
        if factor > float(used):
            raise SystemExit(f"{r['key']}: ran with distance_guard={used}; re-scoring needs a run with a guard >= {factor} (e.g. 1000)")
        scores = [guarded_score(s[4], s[5], factor * s[6] / float(used)) for s in r["scores"]]
        out.append({**r, "tag": f"{r['tag']}@guard{factor:g}", "scores": [[*s[:4], v, *s[5:]] for s, v in zip(r["scores"], scores)],
                    "metrics": compute_metrics(scores, [1 if s[1] == "positive" else 0 for s in r["scores"]])})
    return out


def _fold_source(args: argparse.Namespace) -> tuple[Any, str]:
    """``--folds-from``: the smaller zoo the folds come from (or None) and the suffix it adds to result keys."""
    from modelprint.zoo import Zoo

    if not args.folds_from:
        return None, ""
    return Zoo.open(args.folds_from), f"|folds-from={args.folds_from}"


def cmd_splits(args: argparse.Namespace) -> None:
    """Random held-out split + leave-one-family-out + leave-one-arch-out, one JSONL row per fold."""
    from modelprint.bench.runner import run_method
    from modelprint.bench.suite import plan_splits

    zoo, victim, ds = _setup(args)
    params = _parse_params(args.param)
    out = Path(args.results)
    done = _done(out)
    # the bench's folds (per seed: random, every family, every architecture); --folds-from: the test sets
    # of a run on that smaller zoo, this zoo's other members only train
    specs = [spec for spec, name in (("random", "random"), ("lofo", "family"), ("loao", "arch")) if name in args.splits]
    folds_from, key_suffix = _fold_source(args)
    for ps in plan_splits(zoo, specs, args.seeds, args.test_fraction, folds_from):
        split, seed = ps.name, ps.seed
        key = f"splits|{args.tag}|{args.zoo}|{args.mode}|{split}|{seed}" + key_suffix + (f"|fit+{args.fit_seed}" if args.fit_seed else "")
        if key in done or (args.only and split not in args.only.split(",")):
            continue
        c0 = time.process_time()
        res = run_method("utaf", params, victim, ds, ps.train, ps.test, mode=args.mode, split=split, seed=seed + 1000 * args.fit_seed, device=args.device)
        _append(out, _row(args, key, "splits", split, seed, params, res, {"cpu_seconds": time.process_time() - c0, "fit_seed": args.fit_seed}))
        m = res.metrics
        print(f"{args.tag:>14} {split:>28} seed {seed}: ARUC {m['aruc']:.3f} AUC {m['auc']:.3f} R@U=100% {m['r@u=100%']:.3f}  fit {res.construction_seconds:.0f}s", flush=True)


def cmd_curve(args: argparse.Namespace, which: str) -> None:
    """ARUC vs N (``n_inputs``) or vs the training zoo size (``max_members``) on the random split."""
    from modelprint.bench.runner import run_method
    from modelprint.zoo import split_random

    zoo, victim, ds = _setup(args)
    base = _parse_params(args.param)
    out = Path(args.results)
    done = _done(out)
    for seed in args.seeds:
        tr, te = split_random(zoo, args.test_fraction, seed)
        values = args.values or ([10, 20, 40, 60, 80, 100] if which == "n" else None)
        if which == "zoo":
            n_train = len(tr.members)
            values = args.values or sorted({max(2, int(round(f * n_train))) for f in (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)})
        for v in values:
            key = f"curve-{which}|{args.tag}|{args.zoo}|{args.mode}|{v}|{seed}"
            if key in done:
                continue
            params = {**base, ("n_inputs" if which == "n" else "max_members"): int(v)}
            c0 = time.process_time()
            res = run_method("utaf", params, victim, ds, tr, te, mode=args.mode, split="random", seed=seed, device=args.device)
            row = _row(args, key, f"curve-{which}", "random", seed, params, res, {"value": int(v), "cpu_seconds": time.process_time() - c0})
            _append(out, row)
            print(f"curve-{which} {v:>4} seed {seed}: ARUC {res.metrics['aruc']:.3f} AUC {res.metrics['auc']:.3f}", flush=True)


def cmd_convergence(args: argparse.Namespace) -> None:
    """Held-out ARUC along training for 1 vs k models per step (the batched variant), against steps
    and training seconds (evaluation time excluded)."""
    from modelprint.bench.metrics import compute_metrics
    from modelprint.bench.runner import score_members
    from modelprint.bench.suite import plan_splits
    from modelprint.methods import get_method

    zoo, victim, ds = _setup(args)
    base = _parse_params(args.param)
    out = Path(args.results)
    done = _done(out)
    folds_from, key_suffix = _fold_source(args)
    for seed in args.seeds:
        # the random split (with --folds-from: the smaller zoo's test members, the others only train)
        (ps,) = plan_splits(zoo, ["random"], [seed], args.test_fraction, folds_from)
        tr, te = ps.train, ps.test
        for k in args.values or [1, 4]:
            key = f"convergence|{args.tag}|{args.zoo}|{args.mode}|{k}|{seed}" + key_suffix
            if key in done:
                continue
            params = {**base, "models_per_step": int(k)}
            m = get_method("utaf", **({"output_mode": args.mode} if args.mode != "probs" else {}), **params)
            curve: list[dict[str, float]] = []
            cpu = {"start": 0.0, "in_callback": 0.0}

            def cb(step: int, secs: float, fp: Any) -> None:
                c0 = time.process_time()
                sc = score_members(fp, te, te.members, args.mode)
                met = compute_metrics([s.score for s in sc], [1 if s.label == "positive" else 0 for s in sc])
                cpu_s = c0 - cpu["start"] - cpu["in_callback"]  # CPU seconds spent fitting (the machine is shared: wall time lies)
                curve.append({"step": step, "seconds": secs, "cpu_seconds": cpu_s, "aruc": met["aruc"], "auc": met["auc"]})
                print(f"k={k} step {step:>5} wall {secs:7.1f}s cpu {cpu_s:7.1f}s ARUC {met['aruc']:.3f} AUC {met['auc']:.3f}", flush=True)
                cpu["in_callback"] += time.process_time() - c0

            m.callback = cb
            cpu["start"] = time.process_time()
            m.fit(victim.module, victim.task, ds, tr, device=args.device, seed=seed)
            _append(out, {"key": key, "kind": "convergence", "tag": args.tag, "zoo": str(args.zoo), "mode": args.mode, "seed": seed, "params": params, "k": int(k), "curve": curve, "folds_from": args.folds_from, "date": time.strftime("%Y-%m-%d"), "threads": args.threads})


def _zoo_name(zoo: str) -> str:
    p = Path(zoo)
    return p.parent.name if p.name == "zoo" else p.name


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _member_recovery(zoo_dir: str) -> dict[str, float | None]:
    """Recovery rate (share of the victim's performance kept) of every member of a zoo, by name."""
    from modelprint.bench.metrics import recovery
    from modelprint.zoo import Zoo

    zoo = Zoo.open(zoo_dir)
    info_v = zoo.info.get("victim")
    vm = ((info_v.get("meta") or {}).get("metrics") or {}) if isinstance(info_v, dict) else {}
    if not vm:
        raise SystemExit(f"{zoo_dir}: the zoo records no victim metrics, so --working cannot tell working copies; drop --working")
    return {m.name: recovery(m.metrics, vm) for m in zoo.members}


def working_only(rows: list[dict[str, Any]], min_recovery: float) -> list[dict[str, Any]]:
    """The rows re-scored without the positives that keep less than ``min_recovery`` of the victim's
    performance (destroyed "copies" no verifier can or need flag). Positives of unknown recovery stay."""
    from modelprint.bench.metrics import compute_metrics

    by_zoo: dict[str, dict[str, float | None]] = {}
    out = []
    for r in rows:
        if r["zoo"] not in by_zoo:
            by_zoo[r["zoo"]] = _member_recovery(r["zoo"])
        rec = by_zoo[r["zoo"]]
        keep = [s for s in r["scores"] if s[1] != "positive" or rec.get(s[0]) is None or rec[s[0]] >= min_recovery]
        labels = [1 if s[1] == "positive" else 0 for s in keep]
        if 0 < sum(labels) < len(labels):
            out.append({**r, "metrics": compute_metrics([s[4] for s in keep], labels)})
    return out


def with_ceiling(r: dict[str, Any]) -> dict[str, Any]:
    """The row with its ARUC ceiling (best min(TPR, TNR); rows written before the metric existed get it
    from their stored per-member scores)."""
    from modelprint.bench.metrics import aruc_ceiling

    if "aruc_ceiling" in r["metrics"]:
        return r
    labels = [1 if s[1] == "positive" else 0 for s in r["scores"]]
    return {**r, "metrics": {**r["metrics"], "aruc_ceiling": aruc_ceiling([s[4] for s in r["scores"]], labels)}}


def cmd_table(args: argparse.Namespace) -> None:
    """Markdown summary of the split results, per zoo/tag/mode: the random split's median over seeds; for
    families and architectures, each fold's median over seeds, then their mean and the worst fold."""
    rows = [r for r in _load(Path(args.results)) if r["kind"] == "splits"]
    if args.guard is not None:
        rows = guard_rescored(rows, args.guard)
        print(f"Re-scored with distance_guard={args.guard:g} (rows run with a guard only).\n")
    if args.working is not None:
        rows = working_only(rows, args.working)
        print(f"Working copies only: positives that keep < {args.working:g} of the victim's performance are left out.\n")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    rows = [with_ceiling(r) for r in rows]
    for r in rows:
        zoo = _zoo_name(r["zoo"]) + (f" (folds of {_zoo_name(r['folds_from'])})" if r.get("folds_from") else "")
        fit = r["meta"].get("fit_seed", 0)  # other fits of the same folds are their own rows of the table
        groups[(zoo, r["tag"] + (f" (fit +{fit})" if fit else ""), r["mode"])].append(r)
    print("| zoo | setting | mode | random ARUC | random AUC | random R@U=100% | family ARUC mean (worst) | family AUC mean | arch ARUC mean (worst) | arch AUC mean | ARUC ceiling random / family / arch | fit+score CPU s (median) | verify s/suspect |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (zoo, tag, mode), rs in sorted(groups.items()):
        def agg(prefix: str, metric: str) -> tuple[float, float, int]:
            by_fold: dict[str, list[float]] = defaultdict(list)
            for r in rs:
                x = r["metrics"][metric]
                if r["split"].startswith(prefix) and x == x:
                    by_fold[r["split"]].append(x)
            v = [float(np.median(xs)) for xs in by_fold.values()]
            return (float(np.mean(v)), float(np.min(v)), len(v)) if v else (float("nan"), float("nan"), 0)

        ra, _, nr = agg("random", "aruc")
        rauc, _, _ = agg("random", "auc")
        rr, _, _ = agg("random", "r@u=100%")
        fa, fw, nf = agg("family:", "aruc")
        fauc, _, _ = agg("family:", "auc")
        aa, aw, na = agg("arch:", "aruc")
        aauc, _, _ = agg("arch:", "auc")
        ceil = " / ".join(f"{agg(k, 'aruc_ceiling')[0]:.3f}" for k in ("random", "family:", "arch:"))
        fit = statistics.median(r["meta"].get("cpu_seconds", r["construction_seconds"]) for r in rs)
        ver = statistics.median(r["verify_seconds"] for r in rs)
        seeds = len({r["seed"] for r in rs})
        setting = tag + (f" ({seeds} seeds)" if seeds > 1 else "")
        print(f"| {zoo} | {setting} | {mode} | {ra:.3f} | {rauc:.3f} | {rr:.3f} | {fa:.3f} ({fw:.3f}, {nf} folds) | {fauc:.3f} | {aa:.3f} ({aw:.3f}, {na} folds) | {aauc:.3f} | {ceil} | {fit:.0f} | {ver:.3f} |")
    allrows = _load(Path(args.results))
    for kind, what in (("curve-n", "N"), ("curve-zoo", "training members")):
        cur = [r for r in allrows if r["kind"] == kind]
        if not cur:
            continue
        print(f"\n| zoo | mode | {what} | ARUC | AUC | R@U=100% | fit+score CPU s |")
        print("|---|---|---|---|---|---|---|")
        for r in sorted(cur, key=lambda r: (r["zoo"], r["mode"], r["meta"]["value"], r["seed"])):
            m = r["metrics"]
            print(f"| {_zoo_name(r['zoo'])} | {r['mode']} | {r['meta']['value']} | {m['aruc']:.3f} | {m['auc']:.3f} | {m['r@u=100%']:.3f} | {r['meta'].get('cpu_seconds', float('nan')):.0f} |")
    conv = [r for r in allrows if r["kind"] == "convergence"]
    if conv:
        print("\n| zoo | mode | models per step | step | fit CPU s | held-out ARUC | AUC |")
        print("|---|---|---|---|---|---|---|")
        for r in sorted(conv, key=lambda r: (r["zoo"], r["mode"], r["k"])):
            for c in r["curve"]:
                print(f"| {_zoo_name(r['zoo'])} | {r['mode']} | {r['k']} | {c['step']} | {c.get('cpu_seconds', float('nan')):.0f} | {c['aruc']:.3f} | {c['auc']:.3f} |")
    if args.folds:
        print("\n| setting | mode | fold | ARUC | AUC | R@U=100% | n+ | n- |")
        print("|---|---|---|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: (r["tag"], r["mode"], r["split"])):
            m = r["metrics"]
            print(f"| {r['tag']} | {r['mode']} | {r['split']} | {m['aruc']:.3f} | {m['auc']:.3f} | {m['r@u=100%']:.3f} | {m['n_pos']} | {m['n_neg']} |")


def cmd_plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _load(Path(args.results))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, kind, xlabel in ((axes[0], "curve-n", "number of fingerprint inputs N"), (axes[1], "curve-zoo", "training zoo members")):
        series: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["kind"] == kind:
                series[(_zoo_name(r["zoo"]), r["mode"])][r["meta"]["value"]].append(r["metrics"]["aruc"])
        if kind == "curve-n":  # N = 100 is the default: take it from the random split of the same tag
            for r in rows:
                key = (_zoo_name(r["zoo"]), r["mode"])
                if r["kind"] == "splits" and r["split"] == "random" and key in series and "n_inputs" not in r["params"] and any(c["tag"] == r["tag"] and c["kind"] == kind and _zoo_name(c["zoo"]) == key[0] for c in rows) and "max_members" not in r["params"] and len(r["params"]) == 0:
                    series[key][100].append(r["metrics"]["aruc"])
        for (zoo, mode), pts in sorted(series.items()):
            xs = sorted(pts)
            ax.errorbar(xs, [np.mean(pts[x]) for x in xs], yerr=[np.std(pts[x]) for x in xs], marker="o", capsize=3, label=f"{zoo} ({mode})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out ARUC")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    for r in rows:
        if r["kind"] == "convergence":
            c = r["curve"]
            ax.plot([p.get("cpu_seconds", p["seconds"]) for p in c], [p["aruc"] for p in c], marker=".", label=f"{_zoo_name(r['zoo'])} {r['mode']} k={r['k']} seed {r['seed']}")
    ax.set_xlabel("CPU seconds spent fitting (1 thread)")
    ax.set_ylabel("held-out ARUC")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    axes[0].set_title("ARUC vs N (Fig. 4)")
    axes[1].set_title("ARUC vs zoo size (Fig. 5)")
    axes[2].set_title("batched variant: k models per step")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("splits", "curve-n", "curve-zoo", "convergence"):
        p = sub.add_parser(name)
        p.add_argument("--zoo", required=True)
        p.add_argument("--dataset", default=None, help="dataset name (default: the zoo's)")
        p.add_argument("--victim", default=None, help="victim model (default: the zoo's victim member)")
        p.add_argument("--mode", default="probs", help="probs | label | raw")
        p.add_argument("--tag", default="default")
        p.add_argument("--param", action="append", default=[], help="utaf parameter name=value")
        p.add_argument("--seeds", type=int, nargs="+", default=[0])
        p.add_argument("--splits", default="random,family,arch")
        p.add_argument("--only", default="", help="comma-separated fold names to run (e.g. family:homologous,arch:arc-c); default all")
        p.add_argument("--values", type=int, nargs="*", default=None)
        p.add_argument("--test-fraction", type=float, default=0.5)
        p.add_argument("--folds-from", default=None, help="splits, convergence: a zoo --zoo extends; folds come from its members, the others only train")
        p.add_argument("--results", default="runs/utaf-eval/results.jsonl")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--device", default="auto")
    sub.choices["splits"].add_argument("--fit-seed", type=int, default=0, help="another fit of the same folds: the fit's seed is the split's + 1000 × this (the test members stay); utaf_offline.py ensemble averages such fits")
    p = sub.add_parser("table")
    p.add_argument("--results", default="runs/utaf-eval/results.jsonl")
    p.add_argument("--folds", action="store_true")
    p.add_argument("--working", type=float, default=None, metavar="R", help="re-score without the positives that keep less than R (e.g. 0.85) of the victim's performance")
    p.add_argument("--guard", type=float, default=None, metavar="K", help="re-score as with --param distance_guard=K (rows run with a guard of at least K, e.g. 1000)")
    p = sub.add_parser("plot")
    p.add_argument("--results", default="runs/utaf-eval/results.jsonl")
    p.add_argument("--out", default="docs/results/utaf_curves.png")
    args = ap.parse_args(argv)
    if args.cmd == "splits":
        cmd_splits(args)
    elif args.cmd == "curve-n":
        cmd_curve(args, "n")
    elif args.cmd == "curve-zoo":
        cmd_curve(args, "zoo")
    elif args.cmd == "convergence":
        cmd_convergence(args)
    elif args.cmd == "table":
        cmd_table(args)
    else:
        cmd_plot(args)


if __name__ == "__main__":
    sys.exit(main())
