"""ConferAE (Lukas, Zhang, Kerschbaum, ICLR 2021): conferrable adversarial examples.

A conferrable example x' (near a test input x the victim labels correctly) is misclassified by the
victim as some class t, and *surrogates* of the victim (models derived from it) also say t while
*references* (independent models) do not. Its conferrability score is

    CAE_t(x') = mean_S S(x')_t * (1 - mean_R R(x')_t).

Surrogates and references are the positive and negative members of the zoo's *training* split given
to ``fit`` (never the victim-family entry), at most ``max_models`` of each, picked round-robin over
families for diversity. The perturbation delta (||delta||_inf <= ``eps``, inside the input box) is
optimised with Adam for ``steps`` steps on the paper's three-term loss, adapted to bounded terms:

    L = -log CAE_t(x')                       (conferrability of the victim's current label t)
        - log(1 - M(x')_y)                   (the victim leaves its clean label y: adversarial)
        + H(M(x'), mean_S S(x'))             (surrogates agree with the victim on x')

Of ``n_candidates`` optimised inputs the ``n_queries`` adversarial ones with the highest CAE score
form the fingerprint, with the victim's labels on them.

Verification: score = fingerprint retention, the fraction of the fingerprint a suspect labels like the
victim (the paper's "1 - error rate"), in [0, 1]. Label-only; ``n_queries`` queries (100 by default).

Calibration: the training members are split per (label, family) into a crafting part and a
calibration part (``calibration_fraction``); the threshold is chosen on the calibration part only,
because members used for crafting are optimised against and would bias it. When a part would lack a
label, all members serve both purposes and ``meta["calibration_on_crafting_members"]`` says so.
Needs a zoo: without one there are no surrogates or references to craft on.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelprintError
from ..progress import progress_bar
from ..tasks import Task
from ._baseline import BaselineFingerprint, BaselineMethod, calibration_members, label_agreement, split_inputs, victim_labels
from .base import register_method

if TYPE_CHECKING:
    from ..data import Dataset
    from ..zoo import Zoo, ZooMember


class ConferAEFingerprint(BaselineFingerprint):
    method = "conferae"
    default_mode = "label"

    def compare(self, reference: torch.Tensor, observed: torch.Tensor) -> tuple[float, dict[str, Any]]:
        s = label_agreement(reference, observed)
        return s, {"retention": s, "error_rate": 1.0 - s}


def _round_robin(members: list["ZooMember"], k: int, rng: random.Random) -> list["ZooMember"]:
    by_fam: dict[str, list] = defaultdict(list)
    for m in sorted(members, key=lambda m: m.name):
        by_fam[m.family].append(m)
    for v in by_fam.values():
        rng.shuffle(v)
    out: list = []
    fams = sorted(by_fam)
    while len(out) < k and any(by_fam[f] for f in fams):
        for f in fams:
            if by_fam[f] and len(out) < k:
                out.append(by_fam[f].pop())
    return out


def split_crafting(members: list["ZooMember"], fraction: float, seed: int) -> tuple[list["ZooMember"], list["ZooMember"], bool]:
    """Per (label, family): a ``fraction`` goes to calibration, the rest to crafting (each group of 2+
    members gives at least one to each side). Returns (craft, calib, shared) where ``shared`` means both
    sides are all members because a side would lack positives or negatives."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for m in sorted(members, key=lambda m: m.name):
        groups[(m.label, m.family)].append(m)
    craft, calib = [], []
    for key in sorted(groups):
        ms = groups[key]
        rng.shuffle(ms)
        k = int(round(fraction * len(ms)))
        if len(ms) >= 2:
            k = min(max(k, 1), len(ms) - 1)
        calib += ms[:k]
        craft += ms[k:]
    ok = all({"positive", "negative"} <= {m.label for m in side} for side in (craft, calib))
    if not ok:
        return list(members), list(members), True
    return craft, calib, False


@register_method("conferae")
class ConferAE(BaselineMethod):
    """Conferrable adversarial examples crafted on zoo surrogates/references; score = retention. Label-only; needs a zoo."""

    needs_zoo = True
    fingerprint_cls = ConferAEFingerprint
    defaults = {"n_queries": 100, "n_candidates": 300, "eps": 0.05, "steps": 50, "lr": 0.01, "max_models": 5,
                "calibration_fraction": 0.5, "split": "test"}
    default_threshold = 0.56

    def validate(self) -> None:
        self._int_param("n_queries")
        self._int_param("n_candidates")
        self._int_param("steps")
        self._int_param("max_models")
        self._float_param("eps", 0.0)
        self._float_param("lr", 1e-6)
        self._float_param("calibration_fraction", 0.0, 0.9)
        if self.params["n_candidates"] < self.params["n_queries"]:
            raise ModelprintError("conferae: n_candidates must be >= n_queries")

    def calibration_zoo(self, zoo: "Zoo", meta: dict[str, Any]) -> "Zoo":
        names = set(meta["calibration_members"])
        return zoo.subset([m for m in zoo.members if m.name in names])

    def build(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None", device: torch.device, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if zoo is None:
            raise ModelprintError("conferae crafts its fingerprint on surrogate (positive) and reference (negative) models and needs a zoo",
                                  fix="pass --zoo DIR (a zoo built with `modelprint zoo build`)")
        members = calibration_members(zoo)
        if not any(m.label == "positive" for m in members) or not any(m.label == "negative" for m in members):
            raise ModelprintError("conferae needs both positive and negative zoo training members", path=str(zoo.root),
                                  fix="build a zoo with piracy (positive) and independent (negative) members")
        craft, calib, shared = split_crafting(members, float(self.params["calibration_fraction"]), seed)
        rng = random.Random(seed)
        k = int(self.params["max_models"])
        surrogates = [zoo.load(m).module.to(device).eval() for m in _round_robin([m for m in craft if m.label == "positive"], k, rng)]
        references = [zoo.load(m).module.to(device).eval() for m in _round_robin([m for m in craft if m.label == "negative"], k, rng)]

        n, nc = int(self.params["n_queries"]), int(self.params["n_candidates"])
        xs, ys = split_inputs(dataset, self.params["split"])
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(xs), generator=g)
        pred = victim_labels(victim, xs[perm[: 4 * nc]], device)
        truth = ys[perm[: 4 * nc]] if len(ys) else pred
        good = perm[: 4 * nc][pred == truth][:nc]
        if len(good) < n:
            raise ModelprintError(f"conferae: only {len(good)} correctly classified {self.params['split']} inputs found (< n_queries={n})", fix="lower n_queries or use more data")
        x = xs[good].to(device)
        y = victim_labels(victim, x, device).to(device)
        lo, hi = task.low_tensor(device), task.high_tensor(device)
        eps = float(self.params["eps"])
        delta = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=float(self.params["lr"]))
        ar = torch.arange(len(x), device=device)

        def forward(xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            pm = torch.softmax(victim(xa), 1)
            ps = torch.stack([torch.softmax(s(xa), 1) for s in surrogates]).mean(0)
            pr = torch.stack([torch.softmax(r(xa), 1) for r in references]).mean(0)
            return pm, ps, pr

        steps = int(self.params["steps"])
        with progress_bar(steps, "conferae: crafting") as advance:
            for _ in range(steps):
                xa = torch.maximum(torch.minimum(x + delta, hi), lo)
                pm, ps, pr = forward(xa)
                t = pm.argmax(1).detach()
                conf = ps[ar, t] * (1 - pr[ar, t])
                loss = (-torch.log(conf + 1e-8) - torch.log(1 - pm[ar, y] + 1e-8) - (pm.detach() * torch.log(ps + 1e-8)).sum(1)).mean()
                delta.grad, = torch.autograd.grad(loss, delta)  # the models' parameters get no .grad
                opt.step()
                with torch.no_grad():
                    delta.clamp_(-eps, eps)
                advance(1, info=f"loss {loss.item():.3f}")
        with torch.no_grad():
            xa = torch.maximum(torch.minimum(x + delta, hi), lo)
            pm, ps, pr = forward(xa)
            t = pm.argmax(1)
            conf = ps[ar, t] * (1 - pr[ar, t])
            adversarial = t != y
            rank = conf + adversarial.float() * 2.0  # adversarial ones first, each side by conferrability
            top = rank.argsort(descending=True)[:n]
        meta = {
            "surrogates": len(surrogates), "references": len(references),
            "crafting_members": sorted(m.name for m in craft), "calibration_members": sorted(m.name for m in calib),
            "calibration_on_crafting_members": shared,
            "adversarial_fraction": float(adversarial[top].float().mean()),
            "mean_conferrability": float(conf[top].mean()),
            "surrogate_agreement": float((ps[top].argmax(1) == t[top]).float().mean()),
            "reference_agreement": float((pr[top].argmax(1) == t[top]).float().mean()),
        }
        return {"queries": xa[top].detach().cpu()}, meta
