"""SAC (Guan, Liang, He, NeurIPS 2022, "Are you stealing my model? Sample correlation for
fingerprinting deep neural networks").

Queries (``variant``):
  * ``w`` (SAC-w): ``n_queries`` test inputs the victim labels wrongly (seeded random choice);
  * ``m`` (SAC-m): ``n_queries`` CutMix images made from seeded random test inputs (SAC's choice
    against fine-tuning / transfer learning, where misclassified samples stop transferring).
Representation: the sample-correlation matrix C[a, b] = cos(f(x_a), f(x_b)) of the model's output
vectors (the paper's cosine correlation), f in ``space`` (see
:func:`modelprint.methods._baseline.output_space`): ``cprob`` (default: centred probabilities
p - 1/C), ``prob`` (the probabilities as answered) or ``logprob`` (centred log-probabilities =
centred logits, what SAC's code sees). Chosen on the FashionMNIST zoo's *training* members (AUC,
SAC-w): cprob 0.68, prob 0.66, logprob 0.49. ``prob`` has a blind spot: every near-uniform
probability vector has cosine ~1 with every soft one, so a random-init net looks like a soft victim;
centring removes it.
Score: SAC's distance is the mean absolute difference between the victim's and the suspect's
matrices, d = ||C_v - C_s||_1 / n^2, in [0, 2] for centred vectors ([0, 1] for probabilities); we
report 1 - d / d_max so that higher = more similar, in [0, 1].

Label-only suspects: SAC needs output vectors. A probs-mode fingerprint refuses label-only suspects
with an error naming the fix; built with ``output_mode=label`` it runs the documented degraded
variant (QuRD's "HardSAC"): one-hot outputs, so C[a, b] = 1 when a and b get the same label, and the
score is the fraction of sample pairs on which victim and suspect agree about "same label or not".

Queries per suspect: ``n_queries`` (100 by default).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelprintError
from ..suspects import OutputMode
from ..tasks import Task
from ._baseline import SPACES, BaselineFingerprint, BaselineMethod, cutmix, output_space, misclassified_inputs, split_inputs
from .base import register_method

if TYPE_CHECKING:
    from ..data import Dataset
    from ..zoo import Zoo


def correlation_matrix(out: torch.Tensor, space: str = "cprob") -> torch.Tensor:
    """Cosine correlation C[a, b] between the output vectors of samples a and b."""
    z = F.normalize(output_space(out, space), dim=1, eps=1e-12)
    return z @ z.T


class SACFingerprint(BaselineFingerprint):
    method = "sac"
    default_mode = "probs"
    needs_probs = True

    def compare(self, reference: torch.Tensor, observed: torch.Tensor) -> tuple[float, dict[str, Any]]:
        space = "prob" if self.mode.is_label_only else self.params.get("space", "cprob")
        d = float((correlation_matrix(reference, space) - correlation_matrix(observed, space)).abs().mean())
        # cosines lie in [0, 1] for probabilities and one-hot labels, in [-1, 1] for centred vectors
        d_max = 1.0 if space == "prob" else 2.0
        variant = f"sac-{self.params.get('variant', 'w')}" + (" (hard labels, degraded)" if self.mode.is_label_only else f" ({space})")
        return 1.0 - d / d_max, {"variant": variant, "correlation_distance": d}


@register_method("sac")
class SAC(BaselineMethod):
    """Sample correlation on misclassified (SAC-w) or CutMix (SAC-m) inputs. Needs probabilities (label mode degraded)."""

    fingerprint_cls = SACFingerprint
    defaults = {"variant": "w", "n_queries": 100, "cutmix_alpha": 1.0, "space": "cprob", "split": "test"}
    default_threshold = 0.89

    def default_threshold_for(self) -> float:
        if OutputMode.parse(self.params["output_mode"]).is_label_only:
            return 0.81
        return 0.93 if self.params["variant"] == "m" else float(self.default_threshold)

    def validate(self) -> None:
        self._int_param("n_queries", 2)
        self._float_param("cutmix_alpha", 1e-6)
        if self.params["variant"] not in ("w", "m"):
            raise ModelprintError(f"sac: variant must be w (wrongly classified samples) or m (CutMix samples), got {self.params['variant']!r}")
        if self.params["space"] not in SPACES:
            raise ModelprintError(f"sac: space must be one of {SPACES}, got {self.params['space']!r}")

    def build(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None", device: torch.device, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        n = int(self.params["n_queries"])
        if self.params["variant"] == "w":
            x, _ = misclassified_inputs(victim, dataset, n, seed, device, self.params["split"])
            if len(x) < 2:
                raise ModelprintError(f"sac-w: the victim misclassifies only {len(x)} {self.params['split']} inputs", fix="use --param variant=m (CutMix samples)")
            return {"queries": x}, {"misclassified_queries": int(len(x)), "requested_queries": n}
        xs, ys = split_inputs(dataset, self.params["split"])
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(xs), generator=g)[:n]
        mixed = cutmix(xs[idx], ys[idx] if len(ys) else torch.zeros(len(idx), dtype=torch.long), int(task.num_classes or 0), seed, float(self.params["cutmix_alpha"]))
        return {"queries": mixed}, {"cutmix_queries": int(len(mixed))}
