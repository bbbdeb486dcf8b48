"""``modelprint bench``: every method on the same zoo split, same query budget, same output mode.

For each method and each split (random held-out members per seed, a held-out family or
architecture, leave-one-family-out / leave-one-architecture-out folds) the method is fitted on the
split's training members and every held-out member is verified as a black box. Each finished
(method, split) is cached as JSON under ``OUT/cache/`` (and its fingerprint under
``OUT/fingerprints/``), keyed by a hash of everything that determines it, so a killed bench resumes
where it stopped and a changed setting recomputes only what it affects.

Split specs (``BenchConfig.splits``): ``random`` | ``family:F`` (every family named F or F-*, e.g.
``family:extract``) | ``arch:A`` | ``lofo`` (one fold per family) | ``loao`` (one fold per architecture).
A held-out group of one label is scored together with the random split's held-out members of the
other label, so AUC is defined and those were unseen too (as :func:`modelprint.zoo.leave_one_out`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import re
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ModelprintError
from ..zoo import Zoo, ZooMember, add_training, leave_one_out, partition_for_folds, split_random
from ..zoo.split import held_out
from .metrics import auc, compute_metrics, r_at_full_uniqueness, recovery, tpr_at_fpr, welch_one_sided
from .runner import MemberScore, RunResult, score_members

CACHE_VERSION = 1

#: the report's family groups (the issue's breakdown): zoo family -> group
FAMILY_GROUPS: dict[str, str] = {
    "victim": "victim",
    "extract-soft": "extraction-soft",
    "extract-topk": "extraction-soft",
    "extract-label": "extraction-label",
    "extract-jbda": "extraction-label",
    "extract-cloudleak": "extraction-label",
    "finetune": "fine-tune",
    "retrain": "fine-tune",
    "prune-weight": "prune",
    "prune-filter": "prune",
    "quantise": "quantise",
    "distil": "distil",
    "advtrain": "adversarial training",
    "composite": "composite",
    "independent": "independent",
    "disjoint": "independent",
    "extract-independent": "independent (derived)",
    "distil-independent": "independent (derived)",
    "modified-independent": "independent (derived)",
    "homologous": "homologous",
    "irrelevant": "irrelevant",
}

#: verdict-detail keys under which a method may expose per-fingerprint similarities / embeddings
SIMILARITY_KEYS = ("similarities", "fingerprint_similarities", "per_fingerprint")
EMBEDDING_KEYS = ("embedding", "embeddings")

#: at most this many embedding vectors per model are kept for the t-SNE plot
EMBEDDINGS_PER_MEMBER = 20

SPLIT_SPECS_HELP = "random | lofo | loao | family:F | arch:A"


def family_group(family: str) -> str:
    if family in FAMILY_GROUPS:
        return FAMILY_GROUPS[family]
    for k, v in FAMILY_GROUPS.items():
        if family.startswith(k + "-"):
            return v
    return family


@dataclass
class BenchConfig:
    """Everything a bench run depends on (saved into results.json)."""

    victim: str
    dataset: str
    zoo: str
    methods: list[str]
    out: str
    output_mode: str = "probs"
    budget: int | None = None
    splits: list[str] = field(default_factory=lambda: ["random"])
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    test_fraction: float = 0.5
    device: str = "auto"
    ablations: list[str] = field(default_factory=list)
    budgets: list[int] = field(default_factory=list)
    suspect_zoos: list[str] = field(default_factory=list)  # extra suspects (zoos of the same victim), never trained on
    folds_from: str | None = None  # a zoo this one extends: folds use its members only, the rest only train
    plots: bool = True
    title: str = "modelprint benchmark"

    def validate(self) -> None:
        if not self.methods:
            raise ModelprintError("no methods to benchmark", fix="pass --methods uap,utaf,...")
        if len(set(self.methods)) != len(self.methods):
            raise ModelprintError(f"a method is listed twice in --methods {','.join(self.methods)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ModelprintError(f"test fraction must lie in (0, 1), got {self.test_fraction}")
        if self.budget is not None and self.budget < 1:
            raise ModelprintError(f"--budget must be >= 1, got {self.budget}")
        if any(b < 1 for b in self.budgets):
            raise ModelprintError(f"--budgets must all be >= 1, got {self.budgets}")
        if not self.seeds:
            raise ModelprintError("no seeds", fix="pass --seeds 0 (or 0,1,2)")
        for m in self.params:
            if m not in self.methods:
                raise ModelprintError(f"--param given for {m!r}, which is not in --methods", fix=f"methods: {', '.join(self.methods)}")
        for s in self.splits:
            parse_split_spec(s)
        from ..suspects.modes import OutputMode

        OutputMode.parse(self.output_mode)


def parse_split_spec(spec: str) -> tuple[str, str | None]:
    """``random`` / ``lofo`` / ``loao`` / ``family:F`` / ``arch:A`` -> (kind, group)."""
    if spec in ("random", "lofo", "loao"):
        return spec, None
    if ":" in spec:
        kind, group = spec.split(":", 1)
        if kind in ("family", "arch") and group:
            return kind, group
    raise ModelprintError(f"bad split {spec!r}", fix=f"use one of: {SPLIT_SPECS_HELP}")


@dataclass
class PlannedSplit:
    name: str  # "random" | "family:<F>" | "arch:<A>"
    kind: str  # "random" | "family" | "arch"
    seed: int
    train: Zoo
    test: Zoo


def holdout_split(zoo: Zoo, kind: str, group: str, test_fraction: float = 0.5, seed: int = 0) -> tuple[Zoo, Zoo]:
    """Hold out every member of a family (``F`` or ``F-*``) or an architecture; see the module docstring."""
    members = [m for m in zoo.members if m.family != "victim"]
    hm = [m for m in members if held_out(m, kind, group)]
    if not hm:
        choices = zoo.families() if kind == "family" else zoo.archs()
        raise ModelprintError(f"no zoo member has {kind} {group!r}", path=str(zoo.root), fix=f"choose one of: {', '.join(c for c in choices if c != 'victim')}")
    base_train, base_test = split_random(zoo, test_fraction, seed)
    labels = {m.label for m in hm}
    train = [m for m in base_train.members if not held_out(m, kind, group)]
    test = hm + ([m for m in base_test.members if not held_out(m, kind, group) and m.label not in labels] if len(labels) == 1 else [])
    for what, ms in (("training", train), ("test", test)):
        if {m.label for m in ms} != {"positive", "negative"}:
            raise ModelprintError(
                f"holding out {kind} {group!r} leaves the {what} set without both positives and negatives",
                path=str(zoo.root),
                fix="hold out a smaller group, or build a zoo with more families",
            )
    return zoo.subset(train), zoo.subset(test)


def plan_splits(zoo: Zoo, specs: list[str], seeds: list[int], test_fraction: float = 0.5, folds_from: Zoo | None = None) -> list[PlannedSplit]:
    """The (split, seed) folds to run. With ``folds_from`` (a smaller zoo that ``zoo`` extends) the folds
    are drawn from its members only, exactly as a bench on it would, and every other member joins each
    fold's training set unless the fold holds out its family or architecture
    (:func:`modelprint.zoo.partition_for_folds`)."""
    if folds_from is not None:
        base, extra = partition_for_folds(zoo, folds_from.names(), str(folds_from.root))
        return [PlannedSplit(ps.name, ps.kind, ps.seed, add_training(ps.train, extra, ps.kind, ps.name.partition(":")[2] or None), ps.test)
                for ps in plan_splits(base, specs, seeds, test_fraction)]
    out: list[PlannedSplit] = []
    for seed in seeds:
        for spec in specs:
            kind, group = parse_split_spec(spec)
            if kind == "random":
                tr, te = split_random(zoo, test_fraction, seed)
                if {m.label for m in te.members} != {"positive", "negative"}:
                    raise ModelprintError("the random split's test set lacks positives or negatives", path=str(zoo.root), fix="the zoo needs at least 2 members of a positive and of a negative family")
                out.append(PlannedSplit("random", "random", seed, tr, te))
            elif kind in ("lofo", "loao"):
                by = "family" if kind == "lofo" else "arch"
                folds = leave_one_out(zoo, by, test_fraction, seed)
                if not folds:
                    raise ModelprintError(f"no {kind} fold has both labels in training and test", path=str(zoo.root))
                out += [PlannedSplit(f"{by}:{g}", by, seed, tr, te) for g, tr, te in folds]
            else:
                tr, te = holdout_split(zoo, kind, group, test_fraction, seed)
                out.append(PlannedSplit(f"{kind}:{group}", kind, seed, tr, te))
    # a fold may be asked for twice (e.g. --lofo and --holdout-family of the same family)
    seen, uniq = set(), []
    for ps in out:
        if (ps.name, ps.seed) not in seen:
            seen.add((ps.name, ps.seed))
            uniq.append(ps)
    return uniq


@functools.lru_cache(maxsize=None)
def code_digest(method: str) -> str:
    """Digest of the source files of ``method``'s class and its modelprint base classes: part of the cache
    key, so that results cached by an older version of a method are recomputed, not silently reused."""
    import inspect

    from ..methods.base import METHODS

    cls = METHODS.get(method)
    h = hashlib.sha256()
    for f in sorted({inspect.getsourcefile(c) or "" for c in cls.__mro__ if c.__module__.startswith("modelprint")}):
        if f and Path(f).exists():
            h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", s).strip("-")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _atomic_json(path: Path, obj: Any) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, json.dumps(_json_safe(obj), indent=1, allow_nan=False))


def _json_safe(o: Any) -> Any:
    """NaN/inf -> None so results.json is strict JSON that browsers and jq read."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, (np.floating,)):
        return _json_safe(float(o))
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.ndarray):
        return _json_safe(o.tolist())
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return o


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


def member_similarities(ms: dict[str, Any]) -> list[float] | None:
    """Per-fingerprint similarities a method exposed in its verdict details (UAP: one per fingerprint)."""
    d = ms.get("details") or {}
    for k in SIMILARITY_KEYS:
        v = d.get(k)
        if isinstance(v, list) and len(v) >= 1 and all(isinstance(x, (int, float)) or x is None for x in v):
            return [_nan(x) for x in v]
    return None


def member_embeddings(ms: dict[str, Any]) -> list[list[float]] | None:
    """Embedding vector(s) a method exposed in its verdict details, as a list of vectors."""
    d = ms.get("details") or {}
    for k in EMBEDDING_KEYS:
        v = d.get(k)
        if isinstance(v, list) and v:
            a = np.asarray([[_nan(x) for x in row] if isinstance(row, list) else _nan(row) for row in v], dtype=float)
            if a.ndim == 1:
                a = a[None, :]
            if a.ndim == 2 and a.shape[1] >= 2:
                return a.tolist()
    return None


def _find_key(d: dict[str, Any], key: str) -> Any:
    if key in d:
        return d[key]
    for v in d.values():
        if isinstance(v, dict) and key in v:
            return v[key]
    return None


# -- per-run analysis -------------------------------------------------------------------------------
def analyse_run(run: dict[str, Any], zoo: Zoo) -> dict[str, Any]:
    """Decision-based rates, the per-family breakdown and the UAP Tables 2–3 layout for one run."""
    scores = run["scores"]
    s = np.array([_nan(m["score"]) for m in scores])
    y = np.array([1 if m["label"] == "positive" else 0 for m in scores])
    flagged = np.array([m["decision"] == "pirated" for m in scores])
    incon = np.array([m["decision"] == "inconclusive" for m in scores])
    pos, neg = y == 1, y == 0
    out: dict[str, Any] = {
        "detection_rate": float(flagged[pos].mean()) if pos.any() else None,  # TPR at the fingerprint's own threshold
        "false_positive_rate": float(flagged[neg].mean()) if neg.any() else None,
        "inconclusive_rate": float(incon.mean()) if len(incon) else None,
        "accuracy_at_threshold": float(((flagged & pos) | (~flagged & ~incon & neg)).mean()) if len(y) else None,
    }
    # per family
    fams: dict[str, Any] = {}
    for fam in sorted({m["family"] for m in scores}):
        idx = np.array([m["family"] == fam for m in scores])
        fs = s[idx]
        label = scores[int(np.argmax(idx))]["label"]
        fin = fs[np.isfinite(fs)]
        row: dict[str, Any] = {
            "family": fam,
            "group": family_group(fam),
            "label": label,
            "n": int(idx.sum()),
            "mean": float(fin.mean()) if len(fin) else None,
            "std": float(fin.std()) if len(fin) else None,
            "min": float(fin.min()) if len(fin) else None,
            "max": float(fin.max()) if len(fin) else None,
            "flagged_rate": float(flagged[idx].mean()),
            "inconclusive": int(incon[idx].sum()),
        }
        if label == "positive" and neg.any():
            sub = idx | neg
            row["auc_vs_negatives"] = auc(s[sub], y[sub])
            row["r@u=100%_vs_negatives"] = r_at_full_uniqueness(s[sub], y[sub])
            row["tpr@5%fpr_vs_negatives"] = tpr_at_fpr(s[sub], y[sub], 0.05)
        elif label == "negative" and pos.any():
            sub = idx | pos
            row["auc_vs_positives"] = auc(s[sub], y[sub])
        fams[fam] = row
    out["per_family"] = fams
    groups: dict[str, Any] = {}
    for g in sorted({family_group(m["family"]) for m in scores}):
        idx = np.array([family_group(m["family"]) == g for m in scores])
        fs = s[idx]
        fin = fs[np.isfinite(fs)]
        label = scores[int(np.argmax(idx))]["label"]
        row = {"group": g, "label": label, "n": int(idx.sum()), "mean": float(fin.mean()) if len(fin) else None, "std": float(fin.std()) if len(fin) else None, "flagged_rate": float(flagged[idx].mean())}
        if label == "positive" and neg.any():
            row["auc_vs_negatives"] = auc(s[idx | neg], y[idx | neg])
            row["tpr@5%fpr_vs_negatives"] = tpr_at_fpr(s[idx | neg], y[idx | neg], 0.05)
        elif label == "negative" and pos.any():
            row["auc_vs_positives"] = auc(s[idx | pos], y[idx | pos])
        groups[g] = row
    out["per_group"] = groups
    out["table2"] = table2(scores, zoo)
    return out


def table2(scores: list[dict[str, Any]], zoo: Zoo) -> dict[str, Any]:
    """UAP paper Tables 2–3 layout: per architecture (× optimizer when the zoo records one), mean and STD
    similarity of piracy (positive) and homologous models and a one-sided Welch p-value.

    Similarities: the per-fingerprint similarities the method exposes (pooled over the group's models, as
    the paper's STD over fingerprints) or else one score per model. Reference for the t-test: the held-out
    homologous models (all held-out negatives when the zoo has no homologous family), excluding the model
    tested. Per model p = Welch(its fingerprint similarities, reference similarities); the group's p is the
    median over its models (the paper averages 30 repeats). Without per-fingerprint similarities the group's
    scores are tested against the reference scores. ``method_p`` is the median of the method's own p-values.
    """
    names = zoo.names()

    def opt(m: dict[str, Any]) -> str | None:
        if m["name"] not in names:
            return None
        zm = zoo[m["name"]]
        v = _find_key(zm.params or {}, "optimizer")
        return str(v) if v is not None else None

    homolog = [m for m in scores if m["family"] == "homologous"]
    ref_kind = "homologous"
    if not homolog:
        homolog = [m for m in scores if m["label"] == "negative"]
        ref_kind = "negatives"
    per_fp = all(member_similarities(m) is not None for m in scores) and bool(scores)

    def sims(ms: list[dict[str, Any]]) -> np.ndarray:
        if per_fp:
            return np.array([x for m in ms for x in member_similarities(m)], dtype=float)
        return np.array([_nan(m["score"]) for m in ms], dtype=float)

    def stats(group: list[dict[str, Any]]) -> dict[str, Any]:
        if not group:
            return {"n": 0, "mean": None, "std": None, "p_value": None, "method_p": None}
        v = sims(group)
        v = v[np.isfinite(v)]
        gnames = {m["name"] for m in group}
        if per_fp:
            ps = []
            for m in group:
                ref = sims([h for h in homolog if h["name"] != m["name"]])
                ps.append(welch_one_sided(member_similarities(m), ref))
            ps = [p for p in ps if math.isfinite(p)]
            p = float(np.median(ps)) if ps else None
        else:
            ref = sims([h for h in homolog if h["name"] not in gnames])
            p = welch_one_sided(v, ref)
            p = p if math.isfinite(p) else None
        mp = [m["p_value"] for m in group if m.get("p_value") is not None and math.isfinite(m["p_value"])]
        return {
            "n": len(group),
            "mean": float(v.mean()) if len(v) else None,
            "std": float(v.std()) if len(v) else None,
            "p_value": p,
            "method_p": float(np.median(mp)) if mp else None,
        }

    # rows per architecture × optimizer, as the paper, only when the zoo records an optimizer for every model
    # scored (else piracy and homologous models of one architecture would land in different rows)
    use_opt = all(opt(m) is not None for m in scores)
    if not use_opt:
        opt = lambda m: None  # noqa: E731
    keys = sorted({(m["arch"], opt(m)) for m in scores}, key=lambda k: (k[0], k[1] or ""))
    rows = []
    for arch, o in keys:
        grp = [m for m in scores if m["arch"] == arch and opt(m) == o]
        rows.append({
            "arch": arch,
            "optimizer": o,
            "piracy": stats([m for m in grp if m["label"] == "positive"]),
            "homologous": stats([m for m in grp if m in homolog]),
        })
    allrow = {"arch": "all", "optimizer": None, "piracy": stats([m for m in scores if m["label"] == "positive"]), "homologous": stats(homolog)}
    return {"reference": ref_kind, "per_fingerprint": per_fp, "rows": rows + [allrow]}


# -- aggregation ------------------------------------------------------------------------------------
SUMMARY_METRICS = ("auc", "aruc", "aruc_ceiling", "tpr@1%fpr", "tpr@5%fpr", "r@u=100%", "pos_mean", "neg_mean")
# a stolen copy counts as a working copy when it keeps at least this share of the victim's performance
# (the UAP paper's recovery-rate rule, §5.1: an extracted model "recovers" the victim at >= 85 %)
WORKING_RECOVERY = 0.85


def working_metrics(run: dict[str, Any], recoveries: dict[str, float | None], min_recovery: float = WORKING_RECOVERY) -> dict[str, Any] | None:
    """The run's metrics on working copies only: its test positives that keep less than ``min_recovery``
    of the victim's performance left out (a thief destroyed by pruning or re-training is no copy anyone
    needs to flag), negatives and positives of unknown performance kept. ``n_left_out`` says how many;
    None for failed runs or when a label would be missing."""
    if run.get("error") or not run.get("scores"):
        return None
    keep = [s for s in run["scores"] if s["label"] != "positive" or recoveries.get(s["name"]) is None or recoveries[s["name"]] >= min_recovery]
    labels = [1 if s["label"] == "positive" else 0 for s in keep]
    if not 0 < sum(labels) < len(labels):
        return None
    out = compute_metrics([s["score"] for s in keep], labels, tuple(run.get("score_range") or (0.0, 1.0)))
    return {**out, "n_left_out": len(run["scores"]) - len(keep), "min_recovery": min_recovery}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method and split kind: mean (and min, std) of each metric over seeds/folds, plus cost."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mr = [r for r in runs if r["method"] == method and not r.get("error")]
        entry: dict[str, Any] = {}
        for kind in ("random", "family", "arch"):
            kr = [r for r in mr if r["split_kind"] == kind]
            if not kr:
                continue
            e: dict[str, Any] = {"n_runs": len(kr)}
            for k in SUMMARY_METRICS:
                v = np.array([_nan(r["metrics"].get(k)) for r in kr], dtype=float)
                v = v[np.isfinite(v)]
                e[k] = float(v.mean()) if len(v) else None
                e[k + "_std"] = float(v.std()) if len(v) else None
                e[k + "_min"] = float(v.min()) if len(v) else None
            for k in ("detection_rate", "false_positive_rate"):
                v = np.array([_nan(r["analysis"].get(k)) for r in kr], dtype=float)
                v = v[np.isfinite(v)]
                e[k] = float(v.mean()) if len(v) else None
            if kind != "random":
                e["worst_fold"] = min(kr, key=lambda r: _nan(r["metrics"].get("auc")) if math.isfinite(_nan(r["metrics"].get("auc"))) else 2.0)["split"]
            wk = [r["metrics_working"] for r in kr if r.get("metrics_working")]
            if wk:
                e["working"] = {"n_runs": len(wk), "n_left_out": int(sum(w["n_left_out"] for w in wk)),
                                **{k: (float(np.nanmean([_nan(w.get(k)) for w in wk])) if any(math.isfinite(_nan(w.get(k))) for w in wk) else None) for k in ("auc", "aruc", "tpr@1%fpr")}}
            entry[kind] = e
        if mr:
            cpu_c = [r["construction_cpu_seconds"] for r in mr if r.get("construction_cpu_seconds") is not None]
            cpu_v = [r["verify_cpu_seconds"] for r in mr if r.get("verify_cpu_seconds") is not None]
            entry["cost"] = {
                "queries_per_suspect": float(np.mean([r["queries_per_suspect"] for r in mr])),
                "construction_seconds": float(np.median([r["construction_seconds"] for r in mr])),
                "verify_seconds": float(np.median([r["verify_seconds"] for r in mr])),
                "construction_cpu_seconds": float(np.median(cpu_c)) if cpu_c else None,
                "verify_cpu_seconds": float(np.median(cpu_v)) if cpu_v else None,
                "device": mr[0].get("device"),
            }
        errs = [r for r in runs if r["method"] == method and r.get("error")]
        if errs:
            entry["errors"] = [{"split": r["split"], "seed": r["seed"], "error": r["error"]} for r in errs]
        out[method] = entry
    return out


# -- the bench --------------------------------------------------------------------------------------
class Bench:
    """Holds the loaded victim, dataset and zoo; runs (method, split) pairs with caching."""

    def __init__(self, cfg: BenchConfig, log: Callable[[str], None] | None = None):
        from ..data import load_dataset
        from ..device import pick_device
        from ..io import load_model
        from ..methods import METHODS
        from ..train import evaluate

        cfg.validate()
        self.cfg = cfg
        self.log = log or (lambda msg: None)
        for m in cfg.methods:
            METHODS.get(m)  # unknown method -> clear error listing the registered ones
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = str(pick_device(cfg.device))
        self.victim = load_model(cfg.victim)
        self.dataset = load_dataset(cfg.dataset)
        if self.dataset.task.input_shape != self.victim.task.input_shape:
            raise ModelprintError(
                f"dataset {cfg.dataset!r} has inputs of shape {self.dataset.task.input_shape}, the victim expects {self.victim.task.input_shape}",
                path=cfg.victim,
                fix="pass the dataset the victim was trained on",
            )
        self.zoo = Zoo.open(cfg.zoo)
        if not self.zoo.positives or not self.zoo.negatives:
            raise ModelprintError("the zoo needs positive and negative members", path=str(cfg.zoo), fix="build it with `modelprint zoo build`")
        self.victim_id = self._victim_id()
        self.victim_metrics: dict[str, float] = {}
        if self.victim.task.kind in ("classification", "regression") and len(self.dataset.y_test):  # accuracy / MAE, for the report
            self.victim_metrics = evaluate(self.victim.module, self.dataset.x_test, self.dataset.y_test, self.victim.task, device=self.device)
        self.extra_zoos: dict[str, Zoo] = {}
        for zdir in cfg.suspect_zoos:
            ez = Zoo.open(zdir)
            vsha = (ez.info.get("victim") or {}).get("sha256")
            if vsha is not None and vsha != self.victim_id:
                raise ModelprintError("this suspects zoo was built from another victim (weights differ)", path=str(zdir), fix="pass zoos built from --victim")
            name = Path(zdir).name if Path(zdir).name not in self.extra_zoos else str(zdir)
            self.extra_zoos[name] = ez
        folds_from = Zoo.open(cfg.folds_from) if cfg.folds_from else None
        self.splits = plan_splits(self.zoo, cfg.splits, cfg.seeds, cfg.test_fraction, folds_from)
        self.runs: list[dict[str, Any]] = []

    def _victim_id(self) -> str:
        from ..io import sha256_file

        p = Path(self.cfg.victim)
        f = p / "model.safetensors" if p.is_dir() else p
        return sha256_file(f) if f.exists() else str(p)

    def params_for(self, method: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        p = dict(self.cfg.params.get(method, {}))
        p.update(extra or {})
        return p

    # -- one (method, split) ----------------------------------------------------------------------
    def run_one(self, method: str, ps: PlannedSplit, *, params: dict[str, Any] | None = None, mode: str | None = None, budget: int | None = None, tag: str = "") -> dict[str, Any]:
        """Fit ``method`` on ``ps.train`` and verify every member of ``ps.test``; cached by content hash.

        Returns the run record (RunResult fields + seed, split kind, analysis, fingerprint directory).
        A method that raises is recorded with ``error`` (and not cached, so a re-run retries it).
        """
        import torch

        from ..methods import get_method, load_fingerprint

        mode = mode or self.cfg.output_mode
        budget = self.cfg.budget if budget is None else budget
        p = self.params_for(method, params)
        if mode != "probs" and "output_mode" not in p:
            p["output_mode"] = mode
        key = _slug(f"{method}__{ps.name}__seed{ps.seed}" + (f"__{tag}" if tag else ""))
        h = _hash({
            "v": CACHE_VERSION, "code": code_digest(method), "method": method, "params": p, "mode": mode, "budget": budget, "seed": ps.seed,
            "victim": self.victim_id, "dataset": self.cfg.dataset, "device": self.device,
            "train": sorted(m.name for m in ps.train.members), "test": sorted(m.name for m in ps.test.members),
            "extra": {k: sorted(m.name for m in z.members) for k, z in self.extra_zoos.items()} if self._scores_extra(ps, tag) else {},
        })
        cache = self.out / "cache" / f"{key}.json"
        if cache.exists():
            try:
                doc = json.loads(cache.read_text())
                if doc.get("hash") == h:
                    self.log(f"[dim]cached[/] {method} {ps.name} seed {ps.seed}{' ' + tag if tag else ''}")
                    run = doc["run"]
                    if not run.get("error") and run.get("scores"):
                        # the analysis is derived from the cached scores: recompute it so that results cached
                        # by an older version gain the newer columns
                        run["analysis"] = _json_safe(analyse_run(run, self.zoo))
                    return run
            except (json.JSONDecodeError, KeyError):
                pass  # a torn cache file: recompute
        fp_dir = self.out / "fingerprints" / key
        rec: dict[str, Any]
        try:
            fp = None
            stamp = fp_dir / "bench.json"
            if stamp.exists() and json.loads(stamp.read_text()).get("hash") == h:
                try:
                    fp = load_fingerprint(fp_dir)
                    construction = float(fp.meta.get("construction_seconds", float("nan")))
                    self.log(f"[dim]fingerprint reused[/] {method} {ps.name} seed {ps.seed}")
                except ModelprintError:
                    fp = None
            if fp is None:
                self.log(f"fit {method} on {len(ps.train)} members ({ps.name}, seed {ps.seed}{', ' + tag if tag else ''})")
                t0, c0 = time.perf_counter(), time.process_time()
                fp = get_method(method, **p).fit(self.victim.module, self.victim.task, self.dataset, ps.train, device=self.device, seed=ps.seed)
                construction = time.perf_counter() - t0
                fp.meta.setdefault("construction_seconds", construction)
                # CPU seconds of this process: on a shared machine they say more than wall time does
                fp.meta["bench_construction_cpu_seconds"] = time.process_time() - c0
                fp.save(fp_dir)
                _atomic_json(stamp, {"hash": h, "method": method, "split": ps.name, "seed": ps.seed})
            rng = self._score_range(method, fp)
            self.log(f"verify {len(ps.test)} held-out members with {method} ({mode}{', budget ' + str(budget) if budget else ''})")
            c0 = time.process_time()
            scores = score_members(fp, ps.test, ps.test.members, mode, budget, device=self.device)
            verify_cpu = (time.process_time() - c0) / max(1, len(scores))
            metrics = compute_metrics([m.score for m in scores], [1 if m.label == "positive" else 0 for m in scores], rng)
            rr = RunResult(method, ps.name, p, mode, construction, scores, metrics, rng)
            rec = rr.to_dict()
            rec.update({
                "seed": ps.seed, "split_kind": ps.kind, "tag": tag, "budget": budget, "threshold": fp.threshold,
                "declared_queries_per_suspect": fp.queries_per_suspect, "device": self.device,
                "construction_cpu_seconds": fp.meta.get("bench_construction_cpu_seconds"), "verify_cpu_seconds": verify_cpu, "torch_threads": torch.get_num_threads(),
                "fingerprint": str(fp_dir), "n_train": len(ps.train), "n_test": len(ps.test),
                "train_families": sorted({m.family for m in ps.train.members}), "error": None,
            })
            rec["analysis"] = analyse_run(rec, self.zoo)
            if self._scores_extra(ps, tag):
                rec["extra"] = self.score_extra(fp, rec, mode, budget)
            if ps.kind == "random" and not tag and ps.seed == self.cfg.seeds[0]:
                emb = self.collect_embeddings(fp, ps.test, mode)
                if emb:
                    rec["embeddings"] = emb
            rec = _json_safe(rec)
            _atomic_json(cache, {"hash": h, "run": rec})
        except ModelprintError:
            raise
        except Exception as e:  # a method's bug must not sink the other methods' results
            self.log(f"[bold red]{method} failed on {ps.name} seed {ps.seed}:[/] {type(e).__name__}: {e}")
            rec = {"method": method, "split": ps.name, "split_kind": ps.kind, "seed": ps.seed, "tag": tag, "params": p, "mode": mode,
                   "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}
        return rec

    def _scores_extra(self, ps: PlannedSplit, tag: str) -> bool:
        return bool(self.extra_zoos) and ps.kind == "random" and not tag

    def score_extra(self, fp: Any, rec: dict[str, Any], mode: str, budget: int | None) -> dict[str, Any]:
        """Score every member of the extra suspect zoos (never trained on); per family, compare them with
        this run's held-out negatives. Kept apart from the run's metrics."""
        negs = [m for m in rec["scores"] if m["label"] == "negative"]
        out: dict[str, Any] = {}
        for zname, ez in self.extra_zoos.items():
            members = [m for m in ez.members if m.family != "victim"]
            self.log(f"verify {len(members)} extra suspects of {zname} with {rec['method']}")
            sc = [asdict(x) for x in score_members(fp, ez, members, mode, budget, device=self.device)]
            fams = {}
            for fam in sorted({m["family"] for m in sc}):
                ms = [m for m in sc if m["family"] == fam]
                v = np.array([_nan(m["score"]) for m in ms], dtype=float)
                fin = v[np.isfinite(v)]
                label = ms[0]["label"]
                other = [m for m in rec["scores"] if m["label"] != label]
                both = ms + other
                fams[fam] = {
                    "family": fam, "group": family_group(fam), "label": label, "n": len(ms),
                    "mean": float(fin.mean()) if len(fin) else None, "min": float(fin.min()) if len(fin) else None, "max": float(fin.max()) if len(fin) else None,
                    "flagged_rate": float(np.mean([m["decision"] == "pirated" for m in ms])),
                    "auc_vs_heldout": auc([_nan(m["score"]) for m in both], [1 if m["label"] == "positive" else 0 for m in both]) if other else None,
                }
            out[zname] = {"path": str(ez.root), "scores": sc, "per_family": fams, "n_heldout_negatives": len(negs)}
        return out

    def collect_embeddings(self, fp: Any, test: Zoo, mode: str) -> dict[str, Any] | None:
        """Embeddings of the victim's and each held-out member's fingerprints, for the t-SNE plot, when the
        fingerprint can produce them (``embeddings(suspect)``, or ``embed`` + ``fingerprint_outputs`` as
        uap has). Diagnostics only: the members are queried again through separate suspects, so the
        verdicts' query counts are unaffected. Any failure just means no plot."""
        from ..suspects import TorchSuspect

        def one(module: Any, name: str) -> list[list[float]] | None:
            sus = TorchSuspect(module, self.victim.task, mode=mode, name=name, device=self.device)
            if callable(getattr(fp, "embeddings", None)):
                e = fp.embeddings(sus)
            elif callable(getattr(fp, "embed", None)) and callable(getattr(fp, "fingerprint_outputs", None)):
                e = fp.embed(fp.fingerprint_outputs(sus)[0])
            else:
                return None
            a = np.asarray(e.detach().cpu().float().numpy() if hasattr(e, "detach") else e, dtype=float)
            a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(len(a), -1)
            return np.round(a[:EMBEDDINGS_PER_MEMBER], 5).tolist()

        try:
            victim = one(self.victim.module, "victim")
            if victim is None:
                return None
            members = {m.name: one(test.load(m).module, m.name) for m in test.members}
        except Exception as e:  # diagnostics must never sink a result
            self.log(f"[yellow]no embeddings for the t-SNE plot ({type(e).__name__}: {e})[/]")
            return None
        return {"victim": victim, "members": members}

    def _score_range(self, method: str, fp: Any) -> tuple[float, float]:
        rng = fp.meta.get("score_range", (0.0, 1.0))
        try:
            lo, hi = float(rng[0]), float(rng[1])
        except (TypeError, ValueError, IndexError):
            raise ModelprintError(f"method {method!r}: fingerprint meta score_range {rng!r} is not [lo, hi]", fix="the method must declare meta['score_range'] = [lo, hi]") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ModelprintError(f"method {method!r}: fingerprint meta score_range {rng!r} must be finite with hi > lo")
        return lo, hi

    # -- everything ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from .ablations import run_ablations, run_budget_sweep

        t0 = time.perf_counter()
        for ps in self.splits:
            for method in self.cfg.methods:
                self.runs.append(self.run_one(method, ps))
        results = self.results()
        if self.cfg.budgets:
            results["budget_sweep"] = run_budget_sweep(self, self.cfg.budgets)
        if self.cfg.ablations:
            results["ablations"] = run_ablations(self, self.cfg.ablations)
        results["seconds"] = time.perf_counter() - t0
        return results

    def results(self) -> dict[str, Any]:
        import torch

        zoo_fams: dict[str, dict[str, Any]] = {}
        for m in self.zoo.members:
            e = zoo_fams.setdefault(m.family, {"label": m.label, "group": family_group(m.family), "n": 0, "archs": set()})
            e["n"] += 1
            e["archs"].add(m.arch)
        for e in zoo_fams.values():
            e["archs"] = sorted(e["archs"])
        recoveries = {m.name: recovery(m.metrics, self.victim_metrics) for m in self.zoo.members} if self.victim_metrics else {}
        for r in self.runs:
            r["metrics_working"] = working_metrics(r, recoveries) if recoveries else None
        return _json_safe({
            "format": "modelprint-bench",
            "version": 1,
            "title": self.cfg.title,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": asdict(self.cfg),
            "environment": {
                "device": self.device,
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
            },
            "victim": {"path": self.cfg.victim, "arch": self.victim.arch, "sha256": self.victim_id, "task": self.victim.task.kind, **self.victim_metrics},
            "zoo": {"path": str(self.zoo.root), "members": len(self.zoo), "families": zoo_fams, "archs": self.zoo.archs(), "info": self.zoo.info},
            "suspect_zoos": {k: {"path": str(z.root), "members": len(z), "families": sorted(z.families())} for k, z in self.extra_zoos.items()},
            "splits": [{"name": ps.name, "kind": ps.kind, "seed": ps.seed, "n_train": len(ps.train), "n_test": len(ps.test)} for ps in self.splits],
            "runs": self.runs,
            "summary": summarise(self.runs),
        })


def run_bench(cfg: BenchConfig, log: Callable[[str], None] | None = None, report: bool = True) -> dict[str, Any]:
    """Run the whole bench and (by default) write report.md, report.html, results.json and plots to ``cfg.out``."""
    bench = Bench(cfg, log)
    results = bench.run()
    if report:
        from .report import write_report

        results["report"] = {k: str(v) for k, v in write_report(results, cfg.out, plots=cfg.plots).items()}
    return results
