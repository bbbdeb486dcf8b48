"""How far can *any* black-box verifier go on a classifier zoo? An upper-bound estimate.

Every fingerprint answers one question from a suspect's outputs on a few thousand queries. This script
gives a verifier far more than any method has — ``--n`` queries (default 1 000) on each of five input
sets, 5 000 in all, and the full probability vectors — and asks how well the best it can learn from
those outputs separates a zoo's thieves from its honest models, on exactly the folds the benches use.

Query sets (all crafted on the victim, white-box, as an owner could):

* ``test``      held-out test images (typical inputs);
* ``mistakes``  training images the victim misclassifies (its idiosyncrasies: AKH's and our ``uap``
  default's anchors);
* ``pgd``       test images pushed by untargeted L-inf PGD (eps 0.1, 10 steps) against the victim
  (adversarial examples transfer better to copies: IPGuard's, ConferAE's and UAP's premise);
* ``uap``       test images plus the victim's universal perturbation (80 % fooling, L2: the UAP paper's);
* ``noise``     uniform random images (behaviour off the data manifold).

Per set, six statistics of each member's answers against the victim's (higher = closer): top-1
agreement; second-choice agreement where the top-1 agrees; rank correlation of the probability vectors;
negated KL(victim || member); cosine of the probability vectors; linear-map R² (a ridge map from the
victim's centred log-probabilities to the member's, fitted on even rows and scored on odd ones: closeness
up to any linear change of the output layer). 30 statistics in all.

Reported, on the folds of ``modelprint bench`` (random split per seed, every leave-one-family-out and
leave-one-architecture-out fold; ``modelprint.bench.suite.plan_splits``):

* **best single statistic**: each statistic's AUC over the fold's test members, no training; the best of
  the 30 is picked *after* looking at the test labels, so it is optimistic (``best_single``); the
  honest version picks the statistic with the best AUC on the fold's training members
  (``chosen_single``);
* **verifiers fitted** on all 30 statistics of the fold's training members, scored on its test members:
  ``zmean`` (each statistic z-scored against the training honest models, averaged: nothing learned but
  the scale), logistic regression (standardised, L2, C by 3-fold cross-validation) and a random forest
  (scikit-learn) — meta-verifiers with 50× ``utaf``'s queries and exact output statistics;
* over all members at once: leave-one-member-out AUC of ``zmean`` and the logistic regression (the most
  training data a zoo this size allows), with the members they get most wrong;
* **the dominance bound**: pairs (thief, honest model) where the honest model is at least as close to
  the victim on *every* statistic. No verifier that is monotone in closeness (each statistic can only
  raise the score: the fidelity oracle, AKH, SAC-style agreement, ``zmean``) can rank such a thief above
  that honest model, so its AUC is at most 1 - dominated / (2 P N) — a bound from outputs alone, with no
  learning in it. Given for all 30 statistics and for the five top-1 agreements (label-only answers).

A method that reaches AUC 0.99 must do better than these; where they stay below it, the zoo's labels
are not recoverable from outputs alone at that level, and the members listed under "hardest" say why.
Responses are cached in ``--out``'s JSON (statistics per member); ``--recompute`` queries again.

    python benchmarks/blackbox_ceiling.py --zoo runs/fmnist-quick/zoo --seeds 0 1 2 --out runs/blackbox-ceiling-quick.json
"""
from __future__ import annotations

import argparse
import json
import statistics as st
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_utaf's helpers

SETS = ("test", "mistakes", "pgd", "uap", "noise")
STATS = ("top1", "second", "rankcorr", "negkl", "cosine", "linmap_r2")
FEATURES = [f"{s}:{t}" for s in SETS for t in STATS]


def query_sets(zoo: Any, n: int, seed: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The victim and the five query sets crafted on it (see the module docstring), with timing/meta."""
    import torch

    from eval_utaf import victim_mistakes
    from modelprint.attacks.pgd import pgd
    from modelprint.attacks.uap import find_uap

    victim, ds, wrong, _ = victim_mistakes(zoo, n, seed, "blackbox_ceiling")
    lo, hi = ds.task.low_tensor(), ds.task.high_tensor()
    x = ds.x_test[:n].float()
    g = torch.Generator().manual_seed(seed)
    meta: dict[str, Any] = {}
    t0 = time.perf_counter()
    adv = pgd(victim, x, eps=0.1, steps=10, low=lo, high=hi, generator=g)
    meta["pgd_seconds"] = time.perf_counter() - t0
    res = find_uap(victim, ds.x_train[:1000].float(), norm=2, target=0.8, low=lo, high=hi, seed=seed, device="cpu", progress=False)
    meta.update(uap_seconds=res.seconds, uap_xi=res.xi, uap_fooling_rate=res.fooling_rate)
    noise = lo + (hi - lo) * torch.rand(x.shape, generator=g)
    uap_x = torch.max(torch.min(x + res.perturbation.reshape(1, *x.shape[1:]), hi), lo)
    with torch.no_grad():
        meta["victim_changed_by_pgd"] = float((victim(adv).argmax(1) != victim(x).argmax(1)).float().mean())
    return victim, {"test": x, "mistakes": wrong.float(), "pgd": adv.detach(), "uap": uap_x, "noise": noise}, meta


def member_statistics(victim: Any, member: Any, x: Any) -> list[float]:
    """The six :data:`STATS` of ``member``'s answers on ``x`` against ``victim``'s (higher = closer)."""
    import torch
    from sklearn.linear_model import Ridge

    with torch.no_grad():
        lv, lm = torch.log_softmax(victim(x).double(), 1), torch.log_softmax(member(x).double(), 1)
    pv, pm = lv.exp(), lm.exp()
    v2, m2 = pv.topk(2, 1).indices, pm.topk(2, 1).indices
    same = v2[:, 0] == m2[:, 0]
    c = (pv.shape[1] - 1) / 2
    rv, rm = pv.argsort(1).argsort(1).double() - c, pm.argsort(1).argsort(1).double() - c
    cv, cm = (lv - lv.mean(1, keepdim=True)).numpy(), (lm - lm.mean(1, keepdim=True)).numpy()
    return [
        float(same.double().mean()),
        float((v2[same, 1] == m2[same, 1]).double().mean()) if same.any() else 0.0,
        float(torch.nn.functional.cosine_similarity(rv, rm, dim=1).mean()),
        -float((pv * (lv - lm)).sum(1).mean()),
        float(torch.nn.functional.cosine_similarity(pv, pm, dim=1).mean()),
        float(Ridge(alpha=1.0).fit(cv[::2], cm[::2]).score(cv[1::2], cm[1::2])),
    ]


def compute(zoo: Any, n: int, seed: int) -> dict[str, Any]:
    """Statistics of every member (not the victim) on every query set."""
    from modelprint.progress import progress_bar

    victim, sets, meta = query_sets(zoo, n, seed)
    rows = {}
    members = [m for m in zoo.members if m.family != "victim"]
    t0 = time.perf_counter()
    with progress_bar(len(members), "members") as advance:
        for m in members:
            net = zoo.module(m).eval()
            rows[m.name] = [v for s in SETS for v in member_statistics(victim, net, sets[s])]
            advance(1, info=m.name)
    meta["query_seconds"] = time.perf_counter() - t0
    meta["queries_per_member"] = int(sum(len(sets[s]) for s in SETS))
    return {"features": FEATURES, "rows": rows, "meta": meta, "n": n, "seed": seed}


def _clean(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1e6)


class ZMean:
    """Training-light combination: every statistic z-scored against the training *honest* models' mean and
    spread, then averaged (no weights learned, so nothing to overfit)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ZMean":
        neg = x[y == 0]
        self.mu, self.sd = neg.mean(0), neg.std(0) + 1e-9
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        s = ((x - self.mu) / self.sd).mean(1)
        p = 1 / (1 + np.exp(-s))
        return np.stack([1 - p, p], 1)


def learners() -> dict[str, Any]:
    """The verifiers fitted on a fold's training members' statistics (label 1 = thief)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "zmean": ZMean,
        "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=3, max_iter=5000)),
        "forest": lambda: RandomForestClassifier(n_estimators=300, min_samples_leaf=2, random_state=0),
    }


def evaluate(zoo: Any, data: dict[str, Any], specs: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    """One row per (fold, seed): best single statistic's AUC (and which) and each learner's AUC, ARUC
    ceiling and TPR@5%FPR on the fold's test members."""
    from modelprint.bench.metrics import aruc_ceiling, auc, tpr_at_fpr
    from modelprint.bench.suite import plan_splits

    feats = data["rows"]
    out = []
    for ps in plan_splits(zoo, specs, seeds):
        tr = [m for m in ps.train.members if m.family != "victim"]
        te = [m for m in ps.test.members if m.family != "victim"]
        ytr = np.array([m.is_positive for m in tr], int)
        yte = np.array([m.is_positive for m in te], int)
        if yte.min() == yte.max() or ytr.min() == ytr.max():
            continue
        xtr = _clean(np.array([feats[m.name] for m in tr], float))
        xte = _clean(np.array([feats[m.name] for m in te], float))
        single = [auc(xte[:, j], yte) for j in range(xte.shape[1])]
        j = int(np.argmax(single))
        k = int(np.argmax([auc(xtr[:, i], ytr) for i in range(xtr.shape[1])]))
        row: dict[str, Any] = {"split": ps.name, "kind": ps.kind, "seed": ps.seed, "n_test": len(te),
                               "best_single": single[j], "best_single_name": FEATURES[j],
                               "chosen_single": single[k], "chosen_single_name": FEATURES[k]}
        for name, make in learners().items():
            s = make().fit(xtr, ytr).predict_proba(xte)[:, 1]
            row[name] = {"auc": auc(s, yte), "aruc_ceiling": aruc_ceiling(s, yte), "tpr@5%fpr": tpr_at_fpr(s, yte, 0.05),
                         "wrong": sorted(m.name for m, v, y in zip(te, s, yte) if (v >= 0.5) != bool(y))}
        out.append(row)
    return out


# which statistics the dominance bound compares: all 30, and the five top-1 agreements (label-only answers)
DOMINANCE_VIEWS = {"all statistics": list(range(len(FEATURES))), "top-1 agreements": [FEATURES.index(f"{s}:top1") for s in SETS]}


def dominance(x: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Pairs (thief, honest model) where the honest model is at least as close to the victim as the thief
    on *every* statistic in ``x``. A verifier whose score never decreases when a suspect gets closer on
    any statistic (AKH, the fidelity oracle, ``zmean`` and every other closeness score) scores such an
    honest model at least as high as the thief, so that pair counts at most 1/2 in AUC: the bound is
    1 - dominated / (2 P N). Also the thieves with a dominating honest model, and by which."""
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    pairs = [(i, j) for i in pos for j in neg if np.all(x[j] >= x[i])]
    by: dict[str, list[str]] = {}
    for i, j in pairs:
        by.setdefault(names[i], []).append(names[j])
    return {"dominated_pairs": len(pairs), "pairs": int(len(pos) * len(neg)),
            "monotone_auc_bound": 1 - len(pairs) / (2 * len(pos) * len(neg)), "dominated_thieves": by}


def whole_zoo(zoo: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Leave-one-member-out AUC of ``zmean`` and the logistic regression over all members, per-statistic
    AUCs over all members, and the members the logistic regression's leave-one-out scores get most wrong."""
    from modelprint.bench.metrics import auc

    ms = [m for m in zoo.members if m.family != "victim"]
    x = _clean(np.array([data["rows"][m.name] for m in ms], float))
    y = np.array([m.is_positive for m in ms], int)
    names = [m.name for m in ms]

    def loo_scores(make: Any) -> np.ndarray:
        return np.array([make().fit(np.delete(x, i, 0), np.delete(y, i)).predict_proba(x[i:i + 1])[0, 1] for i in range(len(ms))])

    zl = loo_scores(learners()["zmean"])
    loo = loo_scores(learners()["logreg"])
    per = {f: auc(x[:, j], y) for j, f in enumerate(FEATURES)}
    dom = {k: dominance(x[:, cols], y, names) for k, cols in DOMINANCE_VIEWS.items()}
    order = np.argsort(np.where(y == 1, loo, 1 - loo))
    hardest = [{"name": ms[i].name, "label": ms[i].label, "family": ms[i].family, "arch": ms[i].arch,
                "fidelity": ms[i].fidelity, "loo_score": float(loo[i])} for i in order[:10]]
    return {"loo_auc": auc(loo, y), "loo_auc_zmean": auc(zl, y), "per_statistic_auc": per, "hardest": hardest, "dominance": dom,
            "n_pos": int(y.sum()), "n_neg": int((1 - y).sum())}


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """Per split kind and verifier: random = median [min-max] over seeds; family / arch = mean (worst)
    over folds of each fold's median over seeds."""
    lines = []
    for kind in ("random", "family", "arch"):
        for what in ("best_single", "chosen_single", *learners()):
            per: dict[str, list[float]] = {}
            cei: dict[str, list[float]] = {}
            for r in rows:
                if r["kind"] == kind:
                    v = r[what] if what.endswith("_single") else r[what]["auc"]
                    per.setdefault(r["split"], []).append(v)
                    if not what.endswith("_single"):
                        cei.setdefault(r["split"], []).append(r[what]["aruc_ceiling"])
            if not per:
                continue
            if kind == "random":
                vals = per["random"]
                a = f"{st.median(vals):.3f} [{min(vals):.3f}-{max(vals):.3f}]"
                c = f"{st.median(cei['random']):.3f}" if cei else "-"
            else:
                meds = {k: st.median(v) for k, v in per.items()}
                worst = min(meds, key=meds.get)
                a = f"{st.mean(meds.values()):.3f} ({worst.split(':', 1)[1]} {meds[worst]:.3f})"
                c = f"{st.mean(st.median(v) for v in cei.values()):.3f}" if cei else "-"
            lines.append((kind, what, a, c))
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", required=True, help="a classifier zoo (its manifest names victim and dataset)")
    ap.add_argument("--n", type=int, default=1000, help="queries per query set (five sets)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds")
    ap.add_argument("--query-seed", type=int, default=0, help="seed of the query sets")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="JSON file: statistics per member (reused unless --recompute) and the results")
    ap.add_argument("--recompute", action="store_true")
    args = ap.parse_args(argv)
    import torch

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    from modelprint.zoo import Zoo

    torch.set_num_threads(args.threads)
    zoo = Zoo.open(args.zoo)
    out = Path(args.out)
    prev = json.loads(out.read_text()) if out.exists() and not args.recompute else {}
    names = {m.name for m in zoo.members if m.family != "victim"}
    if prev.get("n") == args.n and prev.get("seed") == args.query_seed and set(prev.get("rows", {})) == names:
        data = prev
    else:
        data = compute(zoo, args.n, args.query_seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data))
    rows = evaluate(zoo, data, ["random", "lofo", "loao"], args.seeds)
    whole = whole_zoo(zoo, data)
    data.update(folds=rows, whole=whole, zoo=str(zoo.root), seeds=args.seeds)
    out.write_text(json.dumps(data, indent=1))

    print(f"# {zoo.root}: {whole['n_pos']} thieves, {whole['n_neg']} honest; {data['meta']['queries_per_member']} queries per member")
    print(f"# python benchmarks/blackbox_ceiling.py --zoo {args.zoo} --n {args.n} --seeds {' '.join(map(str, args.seeds))} --out {args.out}")
    print("| split kind | verifier | AUC | ARUC ceiling |")
    print("|---|---|---|---|")
    for kind, what, a, c in summary(rows):
        print(f"| {kind} | {what} | {a} | {c} |")
    print(f"\nall members, leave-one-member-out AUC: logreg {whole['loo_auc']:.3f}, zmean {whole['loo_auc_zmean']:.3f}")
    top = sorted(whole["per_statistic_auc"].items(), key=lambda kv: -kv[1])[:6]
    print("best statistics over all members: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    for k, d in whole["dominance"].items():
        print(f"dominance on {k}: {d['dominated_pairs']} of {d['pairs']} (thief, honest) pairs have the honest model at least as close on every one;"
              f" monotone verifiers' AUC <= {d['monotone_auc_bound']:.3f}; {len(d['dominated_thieves'])} thieves dominated"
              + "".join(f"\n  {t}: by {', '.join(sorted(v)[:4])}{' …' if len(v) > 4 else ''} ({len(v)})" for t, v in sorted(d["dominated_thieves"].items())))
    print("hardest members (leave-one-out logreg score; thieves low / honest high):")
    for h in whole["hardest"]:
        print(f"  {h['name']:32s} {h['label']:8s} {h['arch']:6s} fidelity {h['fidelity'] if h['fidelity'] is None else round(h['fidelity'], 3)}  score {h['loo_score']:.3f}")


if __name__ == "__main__":
    main()
