"""Baselines (ipguard, modeldiff, conferae, sac, akh) on a real zoo: held-out, leave-one-family-out and
leave-one-architecture-out quality, queries per suspect, construction and verification seconds, and a
per-family breakdown, next to the figures the papers report.

Folds are exactly those of :func:`modelprint.bench.runner.evaluate_splits` (``split_random`` and
``leave_one_out`` by family / architecture, same seed and test fraction), each scored with
:func:`modelprint.bench.runner.run_method`. Every fold's result is appended to a JSONL file as soon as
it is done and re-running skips finished folds, so a killed run resumes where it stopped.

Training-free methods (all but conferae) build the same queries whatever the training zoo, so their
fingerprint is built once per seed (that build is the reported construction time) and only the
threshold is re-calibrated on each fold's training members; conferae is re-fitted on every fold,
since its queries are crafted on the fold's training members.

    python benchmarks/eval_baselines.py run   --run runs/fmnist-quick --dataset fashion-mnist
    python benchmarks/eval_baselines.py table --results runs/baselines-eval/results.jsonl
    python benchmarks/eval_baselines.py tune  --run runs/fmnist-quick --dataset fashion-mnist   # training-split only
    python benchmarks/eval_baselines.py timing --run runs/fmnist-quick --dataset fashion-mnist
"""
from __future__ import annotations

import argparse
import copy
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

# name -> (method, params, suspect output mode)
CONFIGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ipguard": ("ipguard", {}, "label"),
    "modeldiff": ("modeldiff", {}, "probs"),
    "modeldiff-label": ("modeldiff", {"output_mode": "label"}, "label"),
    "sac-w": ("sac", {"variant": "w"}, "probs"),
    "sac-m": ("sac", {"variant": "m"}, "probs"),
    "sac-w-label": ("sac", {"variant": "w", "output_mode": "label"}, "label"),
    "akh": ("akh", {}, "label"),
    "conferae": ("conferae", {}, "label"),
}

# What the papers report (different benchmarks: a reference point, not a like-for-like comparison).
PAPER = {
    "ipguard": "AUC 0.83 on FMNIST (UAP paper §5); ARUC 0.27 on Skin (UTAF Fig. 2); TPR@5%FPR 0.12 on label-only extraction (QuRD)",
    "modeldiff": "TPR@5%FPR 0.15 on label-only extraction (QuRD)",
    "modeldiff-label": "TPR@5%FPR 0.15 on label-only extraction (QuRD; ModelDiff)",
    "sac-w": "TPR@5%FPR 0.59 on label-only extraction (QuRD; SAC)",
    "sac-m": "TPR@5%FPR 0.59 on label-only extraction (QuRD; SAC)",
    "sac-w-label": "TPR@5%FPR 0.59 on label-only extraction (QuRD; SAC)",
    "akh": "competitive with far costlier schemes at 100 label-only queries (QuRD)",
    "conferae": "ARUC below IPGuard's 0.27 on Skin (UTAF Fig. 2); construction > 2860 s (UTAF Table 2)",
}
# UTAF Table 2 (seconds, ResNet-18 on Skin, their GPU environment)
UTAF_TABLE2 = {"ipguard": (177, 9.1), "modeldiff": (123, 13.6), "conferae": (2860, 10.0)}


def _done(path: Path) -> set[str]:
    keys: set[str] = set()
    if path.exists():
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


def _wait_ready(run: Path, poll: float) -> None:
    ready = run / "READY"
    while not ready.exists():
        print(f"waiting for {ready} ...", flush=True)
        time.sleep(poll)


def _folds(zoo, splits: list[str], seed: int, test_fraction: float):
    from modelprint.zoo import leave_one_out, split_random

    for sp in splits:
        if sp == "random":
            tr, te = split_random(zoo, test_fraction, seed)
            yield "random", tr, te
        else:
            for group, tr, te in leave_one_out(zoo, sp, test_fraction, seed):
                yield f"{sp}:{group}", tr, te


def _clone(fp):
    return type(fp)(fp.task, copy.deepcopy(fp.params), fp.threshold, copy.deepcopy(fp.meta), fp.alpha, fp.tensors())


def cmd_run(a: argparse.Namespace) -> None:
    from modelprint.bench.runner import run_method
    from modelprint.data import load_dataset
    from modelprint.device import pick_device
    from modelprint.io import load_model
    from modelprint.methods import get_method
    from modelprint.zoo import Zoo, split_random

    torch.set_num_threads(a.threads)
    run = Path(a.run)
    if a.wait:
        _wait_ready(run, a.poll)
    victim = load_model(run / "victim")
    zoo = Zoo.open(run / "zoo")
    ds = load_dataset(a.dataset)
    out = Path(a.results)
    done = _done(out)
    dev = pick_device(a.device)
    splits = a.splits.split(",")
    for name in a.configs.split(","):
        if name not in CONFIGS:
            sys.exit(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}")
        method, params, mode = CONFIGS[name]
        for seed in a.seeds:
            base = None  # training-free methods: one build per seed, re-calibrated per fold
            folds = list(_folds(zoo, splits, seed, a.test_fraction))
            if a.start_at:  # begin at this fold (e.g. family:extract-topk), to split work between processes
                names = [f[0] for f in folds]
                folds = folds[names.index(a.start_at):] if a.start_at in names else folds
            for split, tr, te in (reversed(folds) if a.reverse else folds):
                key = f"{name}|{split}|{seed}"
                # other processes may be working on the same folds (--skip-from): re-read before each fold
                if key in done or any(key in _done(Path(f)) for f in (out, *a.skip_from)):
                    continue
                m = get_method(method, **params)
                t0 = time.perf_counter()
                if m.needs_zoo:  # crafted on this fold's training members: a fresh fit per fold
                    fp = m.fit(victim.module, victim.task, ds, tr, device=dev, seed=seed)
                    res = run_method(method, params, victim, ds, tr, te, mode=mode, split=split, seed=seed, device=str(dev), fingerprint=fp)
                    res.extra["threshold"] = fp.threshold
                else:
                    if base is None:
                        # construction_seconds (set by fit) covers query generation and calibration
                        base = m.fit(victim.module, victim.task, ds, split_random(zoo, a.test_fraction, seed)[0], device=dev, seed=seed)
                    fp = _clone(base)
                    tc = time.perf_counter()
                    m.calibrate(fp, tr, dev)
                    fp.meta["calibration_seconds"] = time.perf_counter() - tc
                    res = run_method(method, params, victim, ds, tr, te, mode=mode, split=split, seed=seed, device=str(dev), fingerprint=fp)
                    res.extra["threshold"] = fp.threshold
                row = res.to_dict()
                row.update(key=key, config=name, seed=seed, zoo=str(run), wall_seconds=time.perf_counter() - t0,
                           threshold=res.extra.get("threshold"), queries_per_suspect=res.queries_per_suspect)
                _append(out, row)
                met = res.metrics
                print(f"{key:40s} auc {met['auc']:.3f} aruc {met['aruc']:.3f} tpr@1% {met['tpr@1%fpr']:.2f} tpr@5% {met['tpr@5%fpr']:.2f} "
                      f"q {res.queries_per_suspect:.0f} build {res.construction_seconds:.1f}s verify {res.verify_seconds:.3f}s/suspect", flush=True)


def _load(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.exists():
        print(f"note: {path} does not exist (yet); skipped", file=sys.stderr)
        return rows
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _f(x: float | None, d: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{d}f}"


def _family_tpr(scores: list[dict[str, Any]], fpr: float = 0.05) -> dict[str, float]:
    """TPR per positive family at the threshold where the FPR over this test set's negatives is <= fpr."""
    neg = np.array([s["score"] for s in scores if s["label"] == "negative"], float)
    neg = np.nan_to_num(neg, nan=-np.inf)
    if not len(neg):
        return {}
    k = int(np.floor(fpr * len(neg)))  # negatives allowed above the threshold
    thr = np.sort(neg)[::-1][k] if k < len(neg) else -np.inf  # strictly above this score
    by: dict[str, list[float]] = defaultdict(list)
    for s in scores:
        if s["label"] == "positive":
            by[s["family"]].append(float(np.nan_to_num(s["score"], nan=-np.inf) > thr))
    return {f: float(np.mean(v)) for f, v in by.items()}


def _at_threshold(r: dict[str, Any]) -> tuple[float, float]:
    """(TPR, FPR) of a result's held-out scores at the threshold calibrated on its training members."""
    t = r["threshold"]
    pos = [s["score"] >= t for s in r["scores"] if s["label"] == "positive"]
    neg = [s["score"] >= t for s in r["scores"] if s["label"] == "negative"]
    return (float(np.mean(pos)) if pos else float("nan"), float(np.mean(neg)) if neg else float("nan"))


def cmd_table(a: argparse.Namespace) -> None:
    rows, seen = [], set()
    for path in a.results:  # several result files may be merged; the first row of a key wins
        for r in _load(Path(path)):
            if r["key"] not in seen:
                seen.add(r["key"])
                rows.append(r)
    by_cfg: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_cfg[r["config"]].append(r)
    order = [c for c in CONFIGS if c in by_cfg]
    lines = []
    lines.append("### Held-out members (random split, half of every family held out)\n")
    lines.append("Median over split seeds; AUC range over seeds in brackets.\n")
    lines.append("| method | mode | seeds | AUC | ARUC | TPR@1%FPR | TPR@5%FPR | R@U=100% | TPR / FPR at calibrated threshold | queries/suspect | construction s | verification s/suspect | n pos/neg |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in order:
        rr = [r for r in by_cfg[c] if r["split"] == "random"]
        if not rr:
            continue
        med = lambda k: statistics.median(r["metrics"][k] for r in rr)  # noqa: E731
        aucs = [r["metrics"]["auc"] for r in rr]
        rng = f" [{min(aucs):.2f}–{max(aucs):.2f}]" if len(rr) > 1 else ""
        cal = [_at_threshold(r) for r in rr if r.get("threshold") is not None]
        cal_s = f"{statistics.median(t for t, _ in cal):.2f} / {statistics.median(f for _, f in cal):.2f}" if cal else "—"
        lines.append(f"| {c} | {rr[0]['mode']} | {len(rr)} | {_f(med('auc'))}{rng} | {_f(med('aruc'))} | {_f(med('tpr@1%fpr'))} | {_f(med('tpr@5%fpr'))} | {_f(med('r@u=100%'))} | {cal_s} | "
                     f"{statistics.median(r['queries_per_suspect'] for r in rr):.0f} | {_f(statistics.median(r['construction_seconds'] for r in rr), 1)} | "
                     f"{_f(statistics.median(r['verify_seconds'] for r in rr), 3)} | {rr[0]['metrics']['n_pos']}/{rr[0]['metrics']['n_neg']} |")
    lines.append("\nWith 14 held-out negatives one false positive is already 7% FPR, so TPR@1%FPR = TPR@5%FPR = R@U=100% here. "
                 "The last-but-three column applies the threshold calibrated on the training members (no held-out data) to the held-out members.")
    lines.append("\n### Generalisation: leave-one-family-out and leave-one-architecture-out folds\n")
    lines.append("Each fold holds a whole family (or architecture) out of calibration/crafting and tests it against the random split's held-out members of the other label. "
                 "Mean and worst fold.\n")
    lines.append("| method | held-out AUC | LOFO AUC mean / min | LOFO TPR@5%FPR mean | LOAO AUC mean / min | LOAO TPR@5%FPR mean | LOFO folds | LOAO folds |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for c in order:
        rnd = [r["metrics"]["auc"] for r in by_cfg[c] if r["split"] == "random"]
        fam = [r["metrics"] for r in by_cfg[c] if r["split"].startswith("family:")]
        arc = [r["metrics"] for r in by_cfg[c] if r["split"].startswith("arch:")]
        def mm(ms, k):
            v = [m[k] for m in ms if np.isfinite(m[k])]
            return (float(np.mean(v)), float(np.min(v))) if v else (float("nan"), float("nan"))
        fa, fa_min = mm(fam, "auc")
        aa, aa_min = mm(arc, "auc")
        lines.append(f"| {c} | {_f(statistics.median(rnd) if rnd else float('nan'))} | {_f(fa)} / {_f(fa_min)} | {_f(mm(fam, 'tpr@5%fpr')[0])} | {_f(aa)} / {_f(aa_min)} | "
                     f"{_f(mm(arc, 'tpr@5%fpr')[0])} | {len(fam)} | {len(arc)} |")
    # per-family breakdown: TPR@5%FPR of each positive family in its leave-one-family-out fold
    labels = {s["family"]: s["label"] for c in order for r in by_cfg[c] for s in r["scores"]}
    held = sorted({r["split"].split(":", 1)[1] for c in order for r in by_cfg[c] if r["split"].startswith("family:")})
    fams = [f for f in held if labels.get(f) == "positive"]
    neg_fams = [f for f in held if labels.get(f) == "negative"]
    if fams:
        lines.append("\n### Per positive family: TPR@5%FPR in its leave-one-family-out fold (and, in brackets, among the random split's held-out members, seed 0, threshold at 5% FPR over that split's held-out negatives)\n")
        lines.append("| family | " + " | ".join(order) + " |")
        lines.append("|---|" + "---|" * len(order))
        for f in fams:
            cells = []
            for c in order:
                fold = [r for r in by_cfg[c] if r["split"] == f"family:{f}"]
                rnd = [r for r in by_cfg[c] if r["split"] == "random" and r["seed"] == 0]
                lofo = fold[0]["metrics"]["tpr@5%fpr"] if fold else float("nan")
                rt = _family_tpr(rnd[0]["scores"]).get(f) if rnd else None
                cells.append(f"{_f(lofo)} ({_f(rt)})")
            lines.append(f"| {f} | " + " | ".join(cells) + " |")
        lines.append("\n### Per negative family: TPR@5%FPR in its leave-one-family-out fold (all held-out positives against that unseen negative family)\n")
        lines.append("| family | " + " | ".join(order) + " |")
        lines.append("|---|" + "---|" * len(order))
        for f in neg_fams:
            cells = []
            for c in order:
                fold = [r for r in by_cfg[c] if r["split"] == f"family:{f}"]
                cells.append(_f(fold[0]["metrics"]["tpr@5%fpr"] if fold else None))
            lines.append(f"| {f} | " + " | ".join(cells) + " |")
        lines.append("\n### Negative families: mean score (random split, seed 0) vs the calibrated threshold\n")
        negs = sorted({s["family"] for c in order for r in by_cfg[c] if r["split"] == "random" for s in r["scores"] if s["label"] == "negative"})
        lines.append("| family | " + " | ".join(order) + " |")
        lines.append("|---|" + "---|" * len(order))
        for f in negs:
            cells = []
            for c in order:
                rnd = [r for r in by_cfg[c] if r["split"] == "random" and r["seed"] == 0]
                v = [s["score"] for s in rnd[0]["scores"] if s["family"] == f] if rnd else []
                cells.append(_f(float(np.mean(v)) if v else None))
            lines.append(f"| {f} | " + " | ".join(cells) + " |")
        lines.append("| *threshold* | " + " | ".join(_f(([r for r in by_cfg[c] if r["split"] == "random" and r["seed"] == 0] or [{}])[0].get("threshold")) for c in order) + " |")
    # next to the papers' figures
    lines.append("\n### Next to the figures the papers report (different benchmarks: a reference point, not a like-for-like comparison)\n")
    lines.append("| method | ours: held-out AUC / ARUC | ours: label-only extraction (extract-label LOFO fold) TPR@5%FPR | papers report |")
    lines.append("|---|---|---|---|")
    for c in order:
        rr = [r for r in by_cfg[c] if r["split"] == "random"]
        fold = [r for r in by_cfg[c] if r["split"] == "family:extract-label"]
        if not rr:
            continue
        lines.append(f"| {c} | {_f(statistics.median(r['metrics']['auc'] for r in rr))} / {_f(statistics.median(r['metrics']['aruc'] for r in rr))} | "
                     f"{_f(fold[0]['metrics']['tpr@5%fpr'] if fold else None)} | {PAPER.get(c, '')} |")
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)


def cmd_tune(a: argparse.Namespace) -> None:
    """Pick IPGuard's k, ModelDiff's eps and ConferAE's eps on the random split's TRAINING members only
    (AUC over them); held-out members are never looked at."""
    from modelprint.bench.metrics import auc
    from modelprint.data import load_dataset
    from modelprint.device import pick_device
    from modelprint.io import load_model
    from modelprint.methods import get_method
    from modelprint.suspects import TorchSuspect
    from modelprint.zoo import Zoo, split_random

    torch.set_num_threads(a.threads)
    run = Path(a.run)
    victim = load_model(run / "victim")
    zoo = Zoo.open(run / "zoo")
    ds = load_dataset(a.dataset)
    dev = pick_device(a.device)
    tr, _ = split_random(zoo, 0.5, 0)
    members = [m for m in tr.members if m.family != "victim"]
    grid = json.loads(a.grid)
    out = Path(a.results)
    done = _done(out)
    for method, values in grid.items():
        # "method.param": [values]  or  "method": [{param: value, ...}, ...]
        name, _, pname = method.partition(".")
        for v in values:
            params = dict(v) if isinstance(v, dict) else {pname: v}
            key = f"tune|{method}|{json.dumps(v, sort_keys=True)}" if isinstance(v, dict) else f"tune|{method}|{v}"
            if key in done:
                continue
            t0 = time.perf_counter()
            fp = get_method(name, **params).fit(victim.module, victim.task, ds, tr if name == "conferae" else None, device=dev, seed=0)
            build = time.perf_counter() - t0
            if name == "conferae":  # only members it did not craft on
                names = set(fp.meta["calibration_members"])
                ms = [m for m in members if m.name in names]
            else:
                ms = members
            s, y = [], []
            for m in ms:
                lm = tr.load(m)
                s.append(fp.verify(TorchSuspect(lm.module, lm.task, mode=fp.params["output_mode"], device=dev)).score)
                y.append(int(m.label == "positive"))
            row = {"key": key, "method": method, "value": v, "zoo_members": len(zoo.members), "train_auc": auc(s, y), "build_seconds": build, "meta": {k: x for k, x in fp.meta.items() if isinstance(x, (int, float))}}
            _append(out, row)
            print(json.dumps(row), flush=True)


def cmd_timing(a: argparse.Namespace) -> None:
    """Construction seconds (query generation, no calibration) and verification seconds per suspect,
    median of ``--repeats`` runs, with the machine's load average recorded next to them."""
    from modelprint.data import load_dataset
    from modelprint.device import pick_device
    from modelprint.io import load_model
    from modelprint.methods import get_method
    from modelprint.suspects import TorchSuspect
    from modelprint.zoo import Zoo, split_random

    torch.set_num_threads(a.threads)
    run = Path(a.run)
    victim = load_model(run / "victim")
    zoo = Zoo.open(run / "zoo")
    ds = load_dataset(a.dataset)
    dev = pick_device(a.device)
    tr, te = split_random(zoo, 0.5, 0)
    suspects = [te.load(m) for m in te.members[: a.suspects]]
    out = Path(a.results)
    done = _done(out)
    for name in a.configs.split(","):
        method, params, mode = CONFIGS[name]
        key = f"timing|{name}|{a.repeats}"
        if key in done:
            continue
        builds, verifies = [], []
        for r in range(a.repeats):
            m = get_method(method, **params)
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            fp = m.fit(victim.module, victim.task, ds, tr if m.needs_zoo else None, device=dev, seed=r)
            builds.append(time.perf_counter() - t0 - fp.meta.get("calibration_seconds", 0.0))
            for lm in suspects:
                v = fp.verify(TorchSuspect(lm.module, lm.task, mode=mode, device=dev))
                verifies.append(v.seconds)
        row = {"key": key, "config": name, "construction_seconds": builds, "verify_seconds": verifies,
               "construction_median": statistics.median(builds), "verify_median": statistics.median(verifies),
               "loadavg_1min_at_start": load0, "threads": a.threads, "device": str(dev)}
        _append(out, row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("construction_seconds", "verify_seconds")}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--run", default="runs/fmnist-quick", help="directory holding victim/ and zoo/")
    r.add_argument("--dataset", default="fashion-mnist")
    r.add_argument("--configs", default=",".join(CONFIGS))
    r.add_argument("--splits", default="random,family,arch")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--test-fraction", type=float, default=0.5)
    r.add_argument("--results", default="runs/baselines-eval/results.jsonl")
    r.add_argument("--device", default="auto")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--wait", action="store_true", help="poll for RUN/READY before starting")
    r.add_argument("--start-at", default=None, help="skip the folds before this one, e.g. family:extract-topk")
    r.add_argument("--reverse", action="store_true", help="run the folds in reverse order (to split work with a second process)")
    r.add_argument("--skip-from", nargs="*", default=[], help="result files of other processes: folds found there are skipped")
    r.add_argument("--poll", type=float, default=60.0)
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("table")
    t.add_argument("--results", nargs="+", default=["runs/baselines-eval/results.jsonl"])
    t.add_argument("--out", default=None)
    t.set_defaults(func=cmd_table)
    u = sub.add_parser("tune")
    u.add_argument("--run", default="runs/fmnist-quick")
    u.add_argument("--dataset", default="fashion-mnist")
    u.add_argument("--grid", default='{"ipguard.k": [0.0, 1.0, 3.0, 10.0], "modeldiff.eps": [0.03, 0.1, 0.3], "conferae.eps": [0.05, 0.1, 0.2]}')
    u.add_argument("--results", default="runs/baselines-eval/tune.jsonl")
    u.add_argument("--device", default="auto")
    u.add_argument("--threads", type=int, default=1)
    u.set_defaults(func=cmd_tune)
    tm = sub.add_parser("timing")
    tm.add_argument("--run", default="runs/fmnist-quick")
    tm.add_argument("--dataset", default="fashion-mnist")
    tm.add_argument("--configs", default="ipguard,modeldiff,sac-w,sac-m,akh")
    tm.add_argument("--repeats", type=int, default=3)
    tm.add_argument("--suspects", type=int, default=5)
    tm.add_argument("--results", default="runs/baselines-eval/timing.jsonl")
    tm.add_argument("--device", default="auto")
    tm.add_argument("--threads", type=int, default=1)
    tm.set_defaults(func=cmd_timing)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
