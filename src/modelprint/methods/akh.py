"""AKH (Godinot et al., AAAI 2025, "Queries, Representations and Detection: the next 100 model
fingerprinting schemes"): the training-free bar every learned fingerprint must clear.

Queries: ``n_queries`` inputs the victim misclassifies (a seeded random choice among the wrongly
labelled inputs of the test split); when there are too few, the pool is topped up as in QuRD with
rounds of CutMix of the pool and its horizontally and vertically flipped copies (image tasks only).
Representation: the hard labels. Score: 1 - Hamming distance between the victim's and the suspect's
label vectors, i.e. the fraction of queries labelled alike (in [0, 1]). Label-only; ``n_queries``
(100 by default) queries per suspect; no gradient, no zoo needed (a zoo only calibrates the
threshold).

Why it works: on inputs the victim gets wrong, an independent model tends to give the true label or a
different mistake, while a copy (extracted, fine-tuned, pruned…) inherits the victim's mistakes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ModelprintError
from ..tasks import Task
from ._baseline import BaselineFingerprint, BaselineMethod, label_agreement, misclassified_inputs, topped_up
from .base import register_method

if TYPE_CHECKING:
    from ..data import Dataset
    from ..zoo import Zoo


class AKHFingerprint(BaselineFingerprint):
    method = "akh"
    default_mode = "label"

    def compare(self, reference: torch.Tensor, observed: torch.Tensor) -> tuple[float, dict[str, Any]]:
        s = label_agreement(reference, observed)
        return s, {"hamming_distance": 1.0 - s}


@register_method("akh")
class AKH(BaselineMethod):
    """Misclassified inputs (+ CutMix/flip top-up), hard labels, 1 - Hamming. Label-only, training-free."""

    fingerprint_cls = AKHFingerprint
    defaults = {"n_queries": 100, "split": "test"}
    default_threshold = 0.69

    def validate(self) -> None:
        self._int_param("n_queries")

    def build(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None", device: torch.device, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        n = int(self.params["n_queries"])
        x, y = misclassified_inputs(victim, dataset, n, seed, device, self.params["split"])
        if len(x) < n and len(task.input_shape) != 3:
            raise ModelprintError(f"akh: the victim misclassifies only {len(x)} {self.params['split']} inputs (< n_queries={n}) and CutMix top-up needs images",
                                  fix=f"lower --param n_queries to {len(x)} or give more labelled data")
        q, augmented = topped_up(x, y, n, int(task.num_classes or 0), seed)
        return {"queries": q}, {"misclassified_queries": int(n - augmented), "augmented_queries": int(augmented)}
