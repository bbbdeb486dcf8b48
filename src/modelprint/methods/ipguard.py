"""IPGuard (Cao, Jia, Gong, AsiaCCS 2021): fingerprint the victim's classification boundary.

Fingerprint: ``n_queries`` data points near the victim's decision boundary, found by the IPGuard
optimisation (:func:`modelprint.attacks.boundary.ipguard_points`): each seed is moved until its two
top logits are labels (j, i) with j ahead of i by ``k`` and i ahead of every other class. Seeds are
test inputs (``init="data"``) or uniform noise in the input box (``init="uniform"``, the paper's random
initialisation); j is a random label other than the seed's own label i. The victim's labels on the
points are kept.

Verification: the suspect labels the points; score = label matching rate with the victim (in [0, 1]).
Label-only (hard labels suffice); ``n_queries`` queries per suspect (100 by default, as in the paper
and in UTAF/QuRD's comparisons).

``k`` trades robustness for uniqueness: k = 0 puts points on the boundary (any change to the model
flips many of them), a large k moves them deep into class j (independent models agree too). The
paper tunes k per dataset; our default k = 10 (in logits) is the best of {0, 1, 3, 10, 20} by AUC over
the FashionMNIST quick zoo's *training* members (0.50, 0.52, 0.53, 0.64, 0.61; held-out members were
not looked at). The right k scales with the victim's logits: re-tune for other victims with
``benchmarks/eval_baselines.py tune``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..attacks.boundary import ipguard_points
from ..errors import ModelprintError
from ..tasks import Task
from ._baseline import BaselineFingerprint, BaselineMethod, label_agreement, random_inputs
from .base import register_method

if TYPE_CHECKING:
    from ..data import Dataset
    from ..zoo import Zoo


class IPGuardFingerprint(BaselineFingerprint):
    method = "ipguard"
    default_mode = "label"

    def compare(self, reference: torch.Tensor, observed: torch.Tensor) -> tuple[float, dict[str, Any]]:
        return label_agreement(reference, observed), {"matching_rate": label_agreement(reference, observed)}


@register_method("ipguard")
class IPGuard(BaselineMethod):
    """Boundary data points; score = label matching rate. Label-only, ``n_queries`` queries."""

    fingerprint_cls = IPGuardFingerprint
    defaults = {"n_queries": 100, "k": 10.0, "steps": 1000, "lr": 0.01, "init": "data", "split": "test"}
    default_threshold = 0.27

    def validate(self) -> None:
        self._int_param("n_queries")
        self._int_param("steps")
        self._float_param("k", 0.0)
        self._float_param("lr", 1e-6)
        if self.params["init"] not in ("data", "uniform"):
            raise ModelprintError(f"ipguard: init must be data or uniform, got {self.params['init']!r}")

    def build(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None", device: torch.device, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        n = int(self.params["n_queries"])
        g = torch.Generator().manual_seed(seed)
        if self.params["init"] == "data":
            x0 = random_inputs(dataset, n, seed, self.params["split"])
            if len(x0) < n:
                raise ModelprintError(f"ipguard: the {self.params['split']} split has {len(x0)} inputs, fewer than n_queries={n}", fix="lower n_queries or use --param init=uniform")
        else:
            x0 = task.sample_uniform(n, g)
        bp = ipguard_points(victim, x0, k=float(self.params["k"]), steps=int(self.params["steps"]), lr=float(self.params["lr"]),
                            low=task.low_tensor(device), high=task.high_tensor(device), generator=g)
        meta = {"boundary_reached": float(bp.reached.float().mean()), "median_top2_gap": float(bp.gap.median()), "median_steps": float(bp.steps.float().median())}
        return {"queries": bp.x.cpu()}, meta
