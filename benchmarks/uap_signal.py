"""How much piracy signal the UAP fingerprint's queries carry, before any encoder is trained.

For every zoo member, on the first m views of the ``uap`` pool (anchors and anchors + UAP), training-free
statistics against the victim: label agreement on clean and on perturbed queries, agreement on *which*
queries the UAP flips, cosine of the concatenated probability vectors, and cosine of the UAP-induced
change f(x+v) − f(x). Their AUC (positives vs negatives over the whole zoo) bounds what a similarity on
these outputs can do without learning, and the per-member rows show which thieves look like independent
models. Uses the pool and the zoo answers cached by ``benchmarks/eval_uap.py`` (``--cache``).

    python benchmarks/uap_signal.py --run runs/fmnist-quick [--param anchor_pool=misclassified]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

os.environ.setdefault("MODELPRINT_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from eval_uap import load_run

    from modelprint.bench.metrics import auc
    from modelprint.methods import get_method
    from modelprint.methods.uap import _cached_responses, _member_key, _module_digest, _query_probs
    from modelprint.verdict import digest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/fmnist-quick"))
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--cache", default="runs/.cache/uap-responses")
    ap.add_argument("--param", action="append", default=[], help="uap parameter name=value")
    ap.add_argument("--rows", action="store_true", help="print every member's statistics")
    ap.add_argument("--json", type=Path, default=None, help="also write every member's statistics to this JSON file")
    a = ap.parse_args()
    torch.set_num_threads(1)
    params = {k: (json.loads(v) if v[:1].isdigit() else v) for k, _, v in (p.partition("=") for p in a.param)}
    victim, ds, zoo = load_run(a.run, a.dataset)
    meth = get_method("uap", cache_dir=a.cache, **params)
    p = meth.params
    pool = meth._build_pool(victim.module, victim.task, ds, "cpu", 0)
    n, k, C, m = p["n_anchors"], p["n_views"], victim.task.num_classes, p["n_fingerprints"]
    x_q = torch.cat([pool["pool_x"], pool["pool_adv"]])

    def feats(probs: torch.Tensor) -> torch.Tensor:  # [2, n, k, C]
        return probs.reshape(2, n, k, C)[:, :, :m]

    vp, _ = _cached_responses(digest(pool["pool_digest"], _module_digest(victim.module)), a.cache, lambda: _query_probs(victim.module, victim.task, x_q, "cpu", "victim"))
    V = feats(vp)
    names = ["agree_clean", "agree_uap", "flip_agree", "cos_outputs", "cos_uap_shift"]
    rows = []
    for mem in zoo.members:
        if mem.family == "victim":
            continue

        def comp(mem=mem):
            lm = zoo.load(mem)
            return _query_probs(lm.module, lm.task, x_q, "cpu", mem.name)

        probs, _ = _cached_responses(digest(pool["pool_digest"], _member_key(zoo, mem)), a.cache, comp)
        S = feats(probs)
        vflip, sflip = V[0].argmax(-1) != V[1].argmax(-1), S[0].argmax(-1) != S[1].argmax(-1)
        cos = torch.nn.functional.cosine_similarity
        stats = [
            (S[0].argmax(-1) == V[0].argmax(-1)).float().mean().item(),
            (S[1].argmax(-1) == V[1].argmax(-1)).float().mean().item(),
            (vflip == sflip).float().mean().item(),
            cos(S.reshape(-1), V.reshape(-1), dim=0).item(),
            cos((S[1] - S[0]).reshape(-1), (V[1] - V[0]).reshape(-1), dim=0).item(),
        ]
        rows.append((mem.name, mem.family, mem.arch, mem.label, stats))
    lab = [1 if r[3] == "positive" else 0 for r in rows]
    print(f"uap pool {json.dumps(params) if params else '(defaults)'}: {n} anchors x {m} views, UAP fooling rate {pool['info']['uap'].get('fooling_rate', float('nan')):.3f}")
    print("| statistic | AUC (all members) | positives mean | negatives mean (excl. irrelevant) |")
    print("|---|---|---|---|")
    for i, nm in enumerate(names):
        pos = [r[4][i] for r in rows if r[3] == "positive"]
        neg = [r[4][i] for r in rows if r[3] == "negative" and r[1] != "irrelevant"]
        print(f"| {nm} | {auc([r[4][i] for r in rows], lab):.3f} | {sum(pos) / len(pos):.3f} | {sum(neg) / len(neg):.3f} |")
    if a.rows:
        print("\n| member | label | family | arch | " + " | ".join(names) + " |")
        print("|---|---|---|---|" + "---|" * len(names))
        for r in sorted(rows, key=lambda r: (r[3], r[1], r[2], r[0])):
            print(f"| {r[0]} | {r[3]} | {r[1]} | {r[2]} | " + " | ".join(f"{v:.3f}" for v in r[4]) + " |")
    if a.json:
        a.json.write_text(json.dumps({r[0]: {"label": r[3], "family": r[1], "arch": r[2], **dict(zip(names, r[4]))} for r in rows}, indent=1))


if __name__ == "__main__":
    main()
