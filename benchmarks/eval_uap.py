"""UAP fingerprinting (and its local-perturbation ablation, ``deepfool``) on a real zoo.

Folds are exactly those of :func:`modelprint.bench.runner.evaluate_splits` (``split_random`` and
``leave_one_out`` by family / architecture, same seed and test fraction), each scored with
:func:`modelprint.bench.runner.run_method` (fit on the fold's training members, verify every held-out
member as a black box in the given output mode). Every fold's result is appended to a JSONL file as
soon as it is done and re-running skips finished folds, so a killed run resumes where it stopped.
Zoo members' answers on the fingerprint pool are cached on disk (``--cache``), so the many folds and
ablations do not re-query the zoo.

K-means anchors are taken from the victim's own training data (``train_idx.safetensors`` next to the
victim, D_v of the paper) when the zoo builder recorded it, else from the whole training split.

    python benchmarks/eval_uap.py run --run runs/fmnist-quick --config uap --mode probs --splits random,family,arch
    python benchmarks/eval_uap.py run --run runs/fmnist-quick --config uap --mode label --splits random,family,arch
    python benchmarks/eval_uap.py run --run runs/fmnist-quick --config uap-views20 --splits random
    python benchmarks/eval_uap.py table --results runs/fmnist-quick/eval-uap/results.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("MODELPRINT_PROGRESS", "0")

# name -> (method, params). Ablations vary one knob of the default (see docs/results/uap.md).
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "uap": ("uap", {}),
    "uap-views10": ("uap", {"n_views": 20, "n_fingerprints": 10}),
    "uap-views20": ("uap", {"n_views": 20}),
    "uap-views100": ("uap", {"n_views": 100}),
    "uap-anchors50": ("uap", {"n_anchors": 50}),
    "uap-enc128": ("uap", {"hidden": 128, "embed_dim": 32}),
    "uap-enc512": ("uap", {"hidden": 512, "embed_dim": 128}),
    "uap-enc-deep": ("uap", {"hidden": 512, "embed_dim": 128, "depth": 3, "steps": 600}),
    "uap-fool50": ("uap", {"target_fooling": 0.5}),
    "uap-fool90": ("uap", {"target_fooling": 0.9}),
    "uap-sgd": ("uap", {"uap_algorithm": "sgd"}),
    "uap-linf": ("uap", {"norm": "inf"}),
    "uap-insample": ("uap", {"calibration_folds": 0}),
    "uap-paper-anchors": ("uap", {"anchor_pool": "all", "agreement_weight": 0}),  # the default before the tenth session's anchors and mix
    "uap-miscls": ("uap", {"anchor_pool": "misclassified"}),
    "uap-miscls-relative": ("uap", {"anchor_pool": "misclassified", "encoder_input": "relative"}),
    "uap-relative": ("uap", {"encoder_input": "relative"}),
    "uap-negmodel": ("uap", {"negative_classes": "per-model"}),
    "deepfool": ("deepfool", {}),
    "deepfool-minimal": ("deepfool", {"ap_scale": "minimal"}),
    "deepfoolfp": ("deepfool", {"scheme": "matching"}),
}
PAPER_FMNIST = "AUC 1.0 on FMNIST (Peng et al. §5.2); piracy similarity 0.88-0.999, homologous 0.00-0.11 (Table 2)"


def load_run(run: Path, dataset: str):
    from modelprint.data import load_dataset
    from modelprint.io import load_model
    from modelprint.zoo import Zoo

    victim = load_model(run / "victim")
    ds = load_dataset(dataset)
    idx_file = run / "victim" / "train_idx.safetensors"
    if idx_file.exists():
        from safetensors.torch import load_file

        t = load_file(str(idx_file))
        idx = next(iter(t.values())).long()
        from modelprint.data import Dataset

        ds = Dataset(ds.name, ds.task, ds.x_train[idx], ds.y_train[idx], ds.x_test, ds.y_test, ds.classes, {**ds.meta, "subset": "victim train_idx"})
    zoo = Zoo.open(run / "zoo")
    return victim, ds, zoo


def folds(zoo, splits: list[str], seed: int, test_fraction: float):
    """The folds of :func:`modelprint.bench.runner.evaluate_splits`, in its order."""
    from modelprint.zoo import leave_one_out, split_random

    for sp in splits:
        if sp == "random":
            tr, te = split_random(zoo, test_fraction, seed)
            yield "random", tr, te
        else:
            for group, tr, te in leave_one_out(zoo, sp, test_fraction, seed):
                yield f"{sp}:{group}", tr, te


def cmd_run(a: argparse.Namespace) -> None:
    from modelprint.bench.runner import run_method

    torch.set_num_threads(a.threads)
    if a.config not in CONFIGS:
        sys.exit(f"unknown config {a.config!r}; choose from {sorted(CONFIGS)}")
    method, params = CONFIGS[a.config]
    params = {**params, **json.loads(a.params or "{}"), "cache_dir": str(a.cache)} if method != "deepfool" or params.get("scheme") != "matching" else {**params, **json.loads(a.params or "{}")}
    out = Path(a.results or a.run / "eval-uap" / "results.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            done.add((r["config"], r["mode"], r["split"], r["seed"]))
    victim, ds, zoo = load_run(a.run, a.dataset)
    for seed in [int(s) for s in a.seeds.split(",")]:
        for split, tr, te in folds(zoo, a.splits.split(","), seed, a.test_fraction):
            if (a.config, a.mode, split, seed) in done:
                continue
            t0 = time.perf_counter()
            r = run_method(method, params, victim, ds, tr, te, mode=a.mode, split=split, seed=seed, device=a.device)
            d = r.to_dict()
            rec = {"config": a.config, "mode": a.mode, "seed": seed, "split": split, "method": method, "params": {k: v for k, v in r.params.items() if k != "cache_dir"},
                   "metrics": r.metrics, "construction_seconds": r.construction_seconds, "verify_seconds": r.verify_seconds,
                   "queries_per_suspect": r.queries_per_suspect, "scores": d["scores"], "wall_seconds": time.perf_counter() - t0,
                   "n_train": len(tr), "n_test": len(te), "date": time.strftime("%Y-%m-%d"), "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {a.threads}, device {a.device}"}
            with open(out, "a") as f:
                f.write(json.dumps(rec, default=float) + "\n")
            m = r.metrics
            print(f"{a.config:16s} {a.mode:6s} {split:32s} AUC {m['auc']:.4f}  pos {m['pos_mean']:+.3f}±{m['pos_std']:.3f}  neg {m['neg_mean']:+.3f}±{m['neg_std']:.3f}  "
                  f"fit {r.construction_seconds:6.1f}s  verify {r.verify_seconds:5.2f}s/suspect", flush=True)


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def _load(results: Path) -> list[dict[str, Any]]:
    rows = []
    for line in results.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _fmt(x: Any, nd: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _p(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return "0.0" if x == 0 else (f"{x:.2g}" if x < 1e-3 else f"{x:.3f}")


def table2(rec: dict[str, Any], alpha: float = 0.01) -> list[str]:
    """Like the paper's Table 2: per family of held-out members, mean/STD of model similarity, mean
    p-value of the t-test, share flagged pirated, and the family's AUC against the other label."""
    from modelprint.bench.metrics import auc

    sc = rec["scores"]
    by_fam: dict[str, list[dict]] = defaultdict(list)
    for s in sc:
        by_fam[(s["label"], s["family"])].append(s)
    lines = ["| label | family | n | mean sim | STD | mean p-value | p < α | decision pirated | AUC vs other label |", "|---|---|---|---|---|---|---|---|---|"]
    for (lab, fam), ss in sorted(by_fam.items(), key=lambda kv: (kv[0][0] != "positive", kv[0][1])):
        vals = np.array([s["score"] for s in ss])
        ps = np.array([s["p_value"] if s["p_value"] is not None else np.nan for s in ss], float)
        other = [s for s in sc if s["label"] != lab]
        a = auc([s["score"] for s in ss + other], [1 if s["label"] == "positive" else 0 for s in ss + other])
        lines.append(f"| {lab} | {fam} | {len(ss)} | {vals.mean():.4f} | {vals.std():.4f} | {_p(float(np.nanmean(ps)) if np.isfinite(ps).any() else None)} | "
                     f"{int((ps < alpha).sum())}/{len(ss)} | {sum(s['decision'] == 'pirated' for s in ss)}/{len(ss)} | {_fmt(a)} |")
    return lines


def cmd_table(a: argparse.Namespace) -> None:
    rows = _load(a.results)
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        groups[(r["config"], r["mode"])].append(r)
    print(f"Reference: {PAPER_FMNIST}\n")
    print("| config | mode | AUC held-out (random) | ARUC | TPR@1%FPR | pos sim | neg sim | LOFO AUC mean / min (folds) | LOAO AUC mean / min (folds) | queries | fit s | verify s/suspect |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (cfg, mode), rs in sorted(groups.items()):
        rnd = [r for r in rs if r["split"] == "random"]
        fam = [r["metrics"]["auc"] for r in rs if r["split"].startswith("family:")]
        arc = [r["metrics"]["auc"] for r in rs if r["split"].startswith("arch:")]
        m = rnd[0]["metrics"] if rnd else {}
        c = rnd[0] if rnd else (rs[0] if rs else {})
        print(f"| {cfg} | {mode} | {_fmt(m.get('auc'))} | {_fmt(m.get('aruc'))} | {_fmt(m.get('tpr@1%fpr'))} | "
              f"{_fmt(m.get('pos_mean'), 3)}±{_fmt(m.get('pos_std'), 3)} | {_fmt(m.get('neg_mean'), 3)}±{_fmt(m.get('neg_std'), 3)} | "
              f"{_fmt(float(np.mean(fam)) if fam else None)} / {_fmt(min(fam) if fam else None)} ({len(fam)}) | "
              f"{_fmt(float(np.mean(arc)) if arc else None)} / {_fmt(min(arc) if arc else None)} ({len(arc)}) | "
              f"{_fmt(c.get('queries_per_suspect'), 0)} | {_fmt(c.get('construction_seconds'), 1)} | {_fmt(c.get('verify_seconds'), 2)} |")
    for (cfg, mode), rs in sorted(groups.items()):
        if a.config and cfg not in a.config.split(","):
            continue
        for r in rs:
            if r["split"] == "random":
                print(f"\n#### {cfg}, {mode}: held-out members (random split, seed {r['seed']}) — Table 2 layout\n")
                print("\n".join(table2(r)))
        lo = [r for r in rs if r["split"] != "random"]
        if lo:
            print(f"\n#### {cfg}, {mode}: leave-one-out folds\n")
            print("| held out | n test | AUC | pos sim | neg sim | held-out members flagged pirated |")
            print("|---|---|---|---|---|---|")
            for r in sorted(lo, key=lambda r: r["split"]):
                grp = r["split"].split(":", 1)[1]
                kind = r["split"].split(":", 1)[0]
                held = [s for s in r["scores"] if (s["family"] if kind == "family" else s["arch"]) == grp]
                m = r["metrics"]
                print(f"| {r['split']} | {r['n_test']} | {_fmt(m['auc'])} | {_fmt(m['pos_mean'], 3)} | {_fmt(m['neg_mean'], 3)} | "
                      f"{sum(s['decision'] == 'pirated' for s in held)}/{len(held)} ({held[0]['label'] if held else ''}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--run", type=Path, default=Path("runs/fmnist-quick"), help="folder with victim/ and zoo/")
    r.add_argument("--dataset", default="fashion-mnist")
    r.add_argument("--config", default="uap", help=f"one of {sorted(CONFIGS)}")
    r.add_argument("--params", default=None, help="JSON overriding the config's parameters")
    r.add_argument("--mode", default="probs", help="suspect output mode: probs | topk:K | label")
    r.add_argument("--splits", default="random,family,arch")
    r.add_argument("--seeds", default="0")
    r.add_argument("--test-fraction", type=float, default=0.5)
    r.add_argument("--results", type=Path, default=None, help="JSONL (default RUN/eval-uap/results.jsonl)")
    r.add_argument("--cache", type=Path, default=Path("runs/.cache/uap-responses"), help="on-disk cache of zoo answers on the pool")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device", default="auto")
    r.set_defaults(fn=cmd_run)
    t = sub.add_parser("table")
    t.add_argument("--results", type=Path, default=Path("runs/fmnist-quick/eval-uap/results.jsonl"))
    t.add_argument("--config", default=None, help="comma-separated configs to detail (default all)")
    t.set_defaults(fn=cmd_table)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
