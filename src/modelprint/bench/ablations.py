"""Ablations of the UAP paper (§5.3–5.4) and the query-budget sweep, as bench options.

Each ablation is driven through method parameters, output modes and zoo families, and every point
is an ordinary cached bench run (so ablations resume like the rest of the bench):

| name            | what varies                                             | paper            |
|-----------------|---------------------------------------------------------|------------------|
| ``anchors``     | number of anchor points n (refit per value)             | UAP Fig. 6 left  |
| ``topk``        | suspect output mode: top-1 … top-k, label, probs        | UAP Fig. 6 left  |
| ``recovery``    | extraction members binned by recovery rate (no refit)   | UAP Fig. 6 right |
| ``local-ap``    | UAP fingerprints vs local (DeepFool) adversarial points | UAP Fig. 7       |
| ``modifications``| fine-tune / prune / INT8 / adversarial-training members, by strength | UAP Fig. 8 |
| ``sweep:M.P``   | any method parameter: ``sweep:utaf.n_inputs=10,50,100`` | UTAF Fig. 4      |

Spec syntax on the command line: ``--ablation anchors`` (paper values) or ``--ablation anchors=10,50,100``;
``--ablation topk=1,3,label``. The budget sweep (``--budgets 20,50,100``) gives AUC versus queries per
suspect for every method, each verified under a hard budget of q queries: a method that says how to
spend a budget (``Method.budget_params(q)`` classmethod, or the table :data:`QUERY_PARAMS`) is refitted
to use at most q queries (uap instead verifies with as many fingerprints as q affords); a method that
does not is verified as it is, and a verification that needs more than q is ``inconclusive``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import ModelprintError
from .metrics import recovery
from .suite import PlannedSplit, _nan, family_group, member_similarities

if TYPE_CHECKING:
    from .suite import Bench

#: per-method parameter giving the number of anchor points n of the UAP pipeline
ANCHOR_PARAMS: dict[str, str] = {"uap": "n_anchors", "deepfool": "n_anchors"}
def _uap_budget(q: int, params: dict[str, Any]) -> dict[str, Any] | None:
    # uap verifies with as many of its m fingerprints as the budget affords (2 × n_anchors queries each,
    # at least 2 fingerprints); below that, fewer anchors per fingerprint
    return None if q >= 4 * 100 else {"n_anchors": max(2, q // 4)}


#: how each method spends a budget of q queries per suspect, for the budget sweep (used when the method
#: class has no ``budget_params`` classmethod): parameters to refit with, or None when the method adapts
#: to a hard budget by itself
QUERY_PARAMS: dict[str, Callable[[int, dict[str, Any]], dict[str, Any] | None]] = {
    "uap": _uap_budget,
    "deepfool": lambda q, p: {"n_queries": q} if p.get("scheme") == "matching" else _uap_budget(q, p),
    "utaf": lambda q, p: {"n_inputs": q},
    "akh": lambda q, p: {"n_queries": q},
    "ipguard": lambda q, p: {"n_queries": q},
    "sac": lambda q, p: {"n_queries": q},
    "conferae": lambda q, p: {"n_queries": q, "n_candidates": max(int(p.get("n_candidates", 300)), 3 * q)},
    "modeldiff": lambda q, p: {"n_pairs": max(1, q // 2)},
}
#: default values, as in the papers
DEFAULT_ANCHORS = [10, 30, 50, 70, 100]
DEFAULT_TOPK = ["topk:1", "topk:2", "topk:3", "topk:5", "label", "probs"]
#: the UAP paper's "UAP vs local AP" pair: (global method, local method)
LOCAL_AP_PAIR = ("uap", "deepfool")
#: member parameters that measure a modification's strength, in order of preference
STRENGTH_KEYS = ("iterations", "steps", "rate", "amount", "sparsity", "ratio", "epochs", "fraction", "bits")
MODIFICATION_GROUPS = ("fine-tune", "prune", "quantise", "adversarial training")

ABLATION_NAMES = ("anchors", "topk", "recovery", "local-ap", "modifications")


@dataclass
class AblationSpec:
    name: str
    values: list[Any] | None = None
    method: str | None = None
    param: str | None = None


def _parse_value(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def parse_ablation(spec: str) -> AblationSpec:
    """``anchors`` | ``anchors=10,50`` | ``topk=1,3,label`` | ``recovery`` | ``local-ap`` | ``modifications``
    | ``sweep:METHOD.PARAM=v1,v2,...``."""
    name, _, vals = spec.partition("=")
    name = name.strip()
    values = [_parse_value(v.strip()) for v in vals.split(",") if v.strip()] if vals else None
    if name.startswith("sweep:"):
        target = name[len("sweep:"):]
        if "." not in target or not values:
            raise ModelprintError(f"bad ablation {spec!r}", fix="write sweep:METHOD.PARAM=v1,v2, e.g. sweep:utaf.n_inputs=10,50,100")
        m, p = target.split(".", 1)
        return AblationSpec(name, values, m, p)
    if name not in ABLATION_NAMES:
        raise ModelprintError(f"unknown ablation {name!r}", fix=f"choose from {', '.join(ABLATION_NAMES)} or sweep:METHOD.PARAM=v1,v2")
    if name == "topk" and values is not None:
        values = [f"topk:{v}" if isinstance(v, int) else str(v) for v in values]
    if name in ("recovery", "local-ap", "modifications") and values:
        raise ModelprintError(f"ablation {name!r} takes no values", fix=f"write --ablation {name}")
    return AblationSpec(name, values)


def _base_split(bench: "Bench") -> PlannedSplit:
    """The split ablations refit on: the bench's first random split (made if only holdouts were asked)."""
    for ps in bench.splits:
        if ps.kind == "random":
            return ps
    from ..zoo import split_random

    tr, te = split_random(bench.zoo, bench.cfg.test_fraction, bench.cfg.seeds[0])
    return PlannedSplit("random", "random", bench.cfg.seeds[0], tr, te)


def _row(run: dict[str, Any]) -> dict[str, Any]:
    if run.get("error"):
        return {"error": run["error"]}
    m = run["metrics"]
    gap = None if m.get("pos_mean") is None or m.get("neg_mean") is None else m["pos_mean"] - m["neg_mean"]
    return {
        "auc": m.get("auc"), "aruc": m.get("aruc"), "tpr@1%fpr": m.get("tpr@1%fpr"), "r@u=100%": m.get("r@u=100%"),
        "pos_mean": m.get("pos_mean"), "neg_mean": m.get("neg_mean"), "gap": gap,
        "queries_per_suspect": run.get("queries_per_suspect"), "construction_seconds": run.get("construction_seconds"),
    }


def _registered(name: str) -> bool:
    from ..methods import METHODS

    return name in METHODS


def _sweep_methods(bench: "Bench", table: dict[str, str], what: str) -> list[str]:
    ms = [m for m in bench.cfg.methods if m in table]
    if not ms and _registered("uap") and "uap" in table:
        ms = ["uap"]
    if not ms:
        raise ModelprintError(f"ablation {what!r} needs a method with that parameter", fix=f"include one of {', '.join(table)} in --methods")
    return ms


def ablation_param_sweep(bench: "Bench", method: str, param: str, values: list[Any], label: str) -> dict[str, Any]:
    ps = _base_split(bench)
    rows = []
    for v in values:
        run = bench.run_one(method, ps, params={param: v}, tag=f"{label}-{param}={v}")
        rows.append({"value": v, **_row(run)})
    return {"kind": "sweep", "method": method, "param": param, "split": ps.name, "seed": ps.seed, "rows": rows}


def ablation_topk(bench: "Bench", values: list[str]) -> dict[str, Any]:
    ps = _base_split(bench)
    if not _classification(bench):
        raise ModelprintError("the top-k ablation needs a classification victim")
    methods = list(bench.cfg.methods)
    out = {}
    for method in methods:
        rows = []
        for mode in values:
            run = bench.run_one(method, ps, mode=mode, tag=f"topk-{mode}")
            rows.append({"value": mode, **_row(run)})
        out[method] = {"kind": "sweep", "method": method, "param": "output_mode", "split": ps.name, "seed": ps.seed, "rows": rows}
    return out


def _classification(bench: "Bench") -> bool:
    return bench.victim.task.kind == "classification"


def _random_runs(bench: "Bench", method: str) -> list[dict[str, Any]]:
    return [r for r in bench.runs if r["method"] == method and r.get("split_kind") == "random" and not r.get("error")]


def ablation_recovery(bench: "Bench") -> dict[str, Any]:
    """Extraction members of the random split(s) by recovery rate = member accuracy / victim accuracy
    (the paper's "recover 85% performance"), with agreement (fidelity) alongside; bins of 0.02 as the paper."""
    vacc = bench.victim_metrics.get("test_acc")
    out: dict[str, Any] = {"victim_test_acc": vacc, "methods": {}}
    for method in bench.cfg.methods:
        pts = []
        for run in _random_runs(bench, method):
            for s in run["scores"]:
                if not family_group(s["family"]).startswith("extraction"):
                    continue
                zm = bench.zoo[s["name"]]
                rec = recovery(zm.metrics, bench.victim_metrics)
                pts.append({"name": s["name"], "family": s["family"], "seed": run["seed"], "recovery": rec, "fidelity": zm.fidelity, "score": s["score"], "decision": s["decision"]})
        negs = [s["score"] for run in _random_runs(bench, method) for s in run["scores"] if s["label"] == "negative"]
        xs = [p["recovery"] if p["recovery"] is not None else p["fidelity"] for p in pts]
        bins = []
        fin = [x for x in xs if x is not None]
        if fin:
            lo = math.floor(min(fin) / 0.02) * 0.02
            edges = np.arange(lo, max(fin) + 0.02 + 1e-9, 0.02)
            for a, b in zip(edges[:-1], edges[1:]):
                sel = [p for p, x in zip(pts, xs) if x is not None and a <= x < b + (1e-9 if b >= max(fin) else 0)]
                if sel:
                    sc = np.array([_nan(p["score"]) for p in sel], dtype=float)
                    sc = sc[np.isfinite(sc)]
                    bins.append({"lo": float(a), "hi": float(b), "n": len(sel), "mean": float(sc.mean()) if len(sc) else None, "std": float(sc.std()) if len(sc) else None,
                                 "detected": float(np.mean([p["decision"] == "pirated" for p in sel]))})
        out["methods"][method] = {"x": "recovery" if any(p["recovery"] is not None for p in pts) else "fidelity", "points": pts, "bins": bins,
                                  "negative_mean": float(np.nanmean([_nan(v) for v in negs])) if negs else None}
    return out


def ablation_local_ap(bench: "Bench") -> dict[str, Any]:
    """UAP vs local adversarial perturbations (UAP paper §5.3, Fig. 7): both pipelines on the same split."""
    ps = _base_split(bench)
    out: dict[str, Any] = {"split": ps.name, "seed": ps.seed, "methods": {}}
    for method in LOCAL_AP_PAIR:
        if not _registered(method):
            raise ModelprintError(f"the local-ap ablation needs method {method!r}, which is not available", fix="install/implement it, or drop --ablation local-ap")
        run = bench.run_one(method, ps, tag="" if method in bench.cfg.methods else "local-ap")
        if run.get("error"):
            out["methods"][method] = {"error": run["error"]}
            continue
        groups: dict[str, list[float]] = {"positive": [], "negative": []}
        for s in run["scores"]:
            sims = member_similarities(s) or [_nan(s["score"])]
            groups[s["label"]] += sims
        out["methods"][method] = {**_row(run), "similarities": groups, "score_range": run.get("score_range")}
    return out


def _strength(params: Any) -> tuple[str, float] | None:
    """The modification's strength from a member's parameters: the first of :data:`STRENGTH_KEYS` found,
    searching a composite's steps from the last (the modification applied last) to the first."""
    def walk(p: Any) -> tuple[str, float] | None:
        if isinstance(p, list):
            for item in reversed(p):
                hit = walk(item)
                if hit:
                    return hit
            return None
        if not isinstance(p, dict):
            return None
        for k in STRENGTH_KEYS:
            v = p.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return k, float(v)
        for v in reversed(list(p.values())):
            if isinstance(v, (dict, list)):
                hit = walk(v)
                if hit:
                    return hit
        return None

    return walk(params)


def ablation_modifications(bench: "Bench") -> dict[str, Any]:
    """Scores of modified stolen copies (fine-tune, prune, INT8, adversarial training) by strength
    (UAP Fig. 8). From the random split(s), the extra suspect zoos (``--suspects-zoo``, e.g. one built with
    ``benchmarks/recipes/fmnist-robustness.toml``) and, when run, the leave-one-family-out folds (the
    fingerprint never saw that modification)."""
    out: dict[str, Any] = {"methods": {}}
    for method in bench.cfg.methods:
        pts = []
        for run in bench.runs:
            if run["method"] != method or run.get("error") or run.get("tag"):
                continue
            setting = "random" if run["split_kind"] == "random" else ("unseen family" if run["split_kind"] == "family" else None)
            if setting is None:
                continue
            for s in run["scores"]:
                g = family_group(s["family"])
                if g not in MODIFICATION_GROUPS:
                    continue
                if setting == "unseen family" and run["split"] != f"family:{s['family']}":
                    continue
                st = _strength(bench.zoo[s["name"]].params)
                pts.append({"name": s["name"], "family": s["family"], "group": g, "setting": setting, "seed": run["seed"],
                            "strength_key": st[0] if st else None, "strength": st[1] if st else None, "score": s["score"], "decision": s["decision"]})
            if setting == "random":
                for zname, ex in (run.get("extra") or {}).items():
                    for s in ex["scores"]:
                        g = family_group(s["family"])
                        if g not in MODIFICATION_GROUPS:
                            continue
                        st = _strength(bench.extra_zoos[zname][s["name"]].params)
                        pts.append({"name": s["name"], "family": s["family"], "group": g, "setting": f"extra: {zname}", "seed": run["seed"],
                                    "strength_key": st[0] if st else None, "strength": st[1] if st else None, "score": s["score"], "decision": s["decision"]})
        negs = [s["score"] for run in _random_runs(bench, method) for s in run["scores"] if s["label"] == "negative"]
        summary = []
        for (fam, setting) in sorted({(p["family"], p["setting"]) for p in pts}):
            sc = np.array([_nan(p["score"]) for p in pts if p["family"] == fam and p["setting"] == setting], dtype=float)
            sc = sc[np.isfinite(sc)]
            summary.append({"family": fam, "setting": setting, "n": int(len(sc)), "mean": float(sc.mean()) if len(sc) else None,
                            "min": float(sc.min()) if len(sc) else None, "detected": float(np.mean([p["decision"] == "pirated" for p in pts if p["family"] == fam and p["setting"] == setting]))})
        out["methods"][method] = {"points": pts, "summary": summary, "negative_max": float(np.nanmax([_nan(v) for v in negs])) if negs else None}
    return out


def run_ablations(bench: "Bench", specs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        a = parse_ablation(spec)
        bench.log(f"[bold]ablation[/] {spec}")
        if a.name == "anchors":
            values = a.values or DEFAULT_ANCHORS
            out["anchors"] = {m: ablation_param_sweep(bench, m, ANCHOR_PARAMS[m], values, "anchors") for m in _sweep_methods(bench, ANCHOR_PARAMS, "anchors")}
        elif a.name == "topk":
            out["topk"] = ablation_topk(bench, a.values or DEFAULT_TOPK)
        elif a.name == "recovery":
            out["recovery"] = ablation_recovery(bench)
        elif a.name == "local-ap":
            out["local-ap"] = ablation_local_ap(bench)
        elif a.name == "modifications":
            out["modifications"] = ablation_modifications(bench)
        else:  # sweep:M.P
            if not _registered(a.method):
                raise ModelprintError(f"ablation {spec!r}: unknown method {a.method!r}")
            out[a.name] = {a.method: ablation_param_sweep(bench, a.method, a.param, a.values, "sweep")}
    return out


def budget_params(method: str, budget: int, params: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, str]:
    """(parameters making ``method`` (configured with ``params``) use at most ``budget`` queries per
    suspect, or None; how the budget is applied)."""
    from ..methods import METHODS

    cls = METHODS.get(method)
    fn = getattr(cls, "budget_params", None)
    if callable(fn):
        p = fn(budget)
    elif method in QUERY_PARAMS:
        p = QUERY_PARAMS[method](budget, dict(params or {}))
    else:
        return None, "hard budget"
    return (dict(p), "refit") if p is not None else (None, "method adapts")


def run_budget_sweep(bench: "Bench", budgets: list[int]) -> dict[str, Any]:
    """AUC (and ARUC, TPR@1%FPR) versus queries per suspect for every method on the base split; every
    verification also runs under a hard budget of q queries, so no method can exceed it."""
    ps = _base_split(bench)
    out: dict[str, Any] = {"split": ps.name, "seed": ps.seed, "methods": {}}
    for method in bench.cfg.methods:
        rows = []
        for b in sorted(set(budgets)):
            p, how = budget_params(method, b, bench.params_for(method))
            run = bench.run_one(method, ps, params=p or {}, budget=b, tag=f"budget-{b}")
            rows.append({"budget": b, "how": how, "params": p, **_row(run)})
        out["methods"][method] = rows
    return out


__all__ = ["ABLATION_NAMES", "parse_ablation", "run_ablations", "run_budget_sweep", "budget_params", "ANCHOR_PARAMS", "QUERY_PARAMS"]

