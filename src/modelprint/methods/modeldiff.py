"""ModelDiff (Li et al., ISSTA 2021): compare models by their decision distance vectors (DDVs).

Queries: ``n_pairs`` pairs (x, x'): x a seeded random test input, x' an adversarial version of x
against the victim. ModelDiff generates x' by gradient search for inputs on which the model's output
moves far (divergence) in varied amounts (diversity); we use L-inf PGD from
:mod:`modelprint.attacks.pgd` and, for diversity, spread the budget over ``eps_levels`` radii evenly
between ``eps / eps_levels`` and ``eps`` (QuRD uses a single radius of 0.03; ``eps_levels=1``
reproduces that).

Representation (probs mode, the paper's): DDV_i = 1 - cos(f(x_i), f(x'_i)), the output distance of
each pair, f being the output vector in ``ddv_space`` (see
:func:`modelprint.methods._baseline.output_space`): ``cprob`` (default: centred probabilities
p - 1/C), ``prob`` or ``logprob`` (centred log-probabilities = centred logits, what ModelDiff's code
sees). Chosen on the FashionMNIST zoo's *training* members (AUC, eps 0.1): cprob 0.68, prob 0.69,
logprob 0.53; cprob and prob tie on real data, and cprob does not mistake a near-uniform
random-init net for a soft victim. Score: cosine similarity between the victim's and the suspect's
DDVs, in [0, 1] since DDVs are non-negative (0 when a DDV is identically zero, e.g. a constant model).

Label-only suspects: ModelDiff needs probabilities. A probs-mode fingerprint refuses label-only
suspects with an error naming the fix. Built with ``output_mode=label`` it runs QuRD's documented
degraded variant ("HardDDV"): DDV_i = (label(x'_i) - label(x_i)) mod C and score = 1 - Hamming
distance between the victim's and the suspect's hard DDVs.

Queries per suspect: 2 * ``n_pairs`` (100 by default).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.pgd import pgd
from ..errors import ModelprintError
from ..suspects import OutputMode
from ..tasks import Task
from ._baseline import SPACES, BaselineFingerprint, BaselineMethod, output_space, random_inputs
from .base import register_method

if TYPE_CHECKING:
    from ..data import Dataset
    from ..zoo import Zoo


def ddv(out: torch.Tensor, n: int, space: str = "cprob") -> torch.Tensor:
    """Decision distance vector of answers ``out`` = [f(x_1..x_n); f(x'_1..x'_n)]: cosine distance of
    each pair's output vectors in the given output space."""
    z = output_space(out, space)
    return 1.0 - F.cosine_similarity(z[:n], z[n:], dim=1, eps=1e-12)


def hard_ddv(out: torch.Tensor, n: int) -> torch.Tensor:
    c = out.shape[1]
    return (out[n:].argmax(1) - out[:n].argmax(1)) % c


class ModelDiffFingerprint(BaselineFingerprint):
    method = "modeldiff"
    default_mode = "probs"
    needs_probs = True

    def compare(self, reference: torch.Tensor, observed: torch.Tensor) -> tuple[float, dict[str, Any]]:
        n = len(reference) // 2
        if self.mode.is_label_only:
            a, b = hard_ddv(reference, n), hard_ddv(observed, n)
            s = float((a == b).float().mean())
            return s, {"variant": "hard-ddv (label-only, degraded)", "hamming_distance": 1.0 - s}
        space = self.params.get("ddv_space", "cprob")
        a, b = ddv(reference, n, space), ddv(observed, n, space)
        na, nb = a.norm(), b.norm()
        s = 0.0 if float(na) == 0.0 or float(nb) == 0.0 else float((a @ b) / (na * nb))
        return min(1.0, max(0.0, s)), {"variant": f"ddv-cosine ({space})", "suspect_ddv_mean": float(b.mean())}


@register_method("modeldiff")
class ModelDiff(BaselineMethod):
    """Normal + adversarial input pairs, DDV cosine similarity. Needs probabilities (label mode degraded)."""

    fingerprint_cls = ModelDiffFingerprint
    defaults = {"n_pairs": 50, "eps": 0.1, "eps_levels": 4, "pgd_steps": 10, "ddv_space": "cprob", "split": "test"}
    default_threshold = 0.59

    def default_threshold_for(self) -> float:
        return 0.51 if OutputMode.parse(self.params["output_mode"]).is_label_only else float(self.default_threshold)

    def validate(self) -> None:
        self._int_param("n_pairs")
        self._int_param("eps_levels")
        self._int_param("pgd_steps")
        self._float_param("eps", 0.0)
        if self.params["ddv_space"] not in SPACES:
            raise ModelprintError(f"modeldiff: ddv_space must be one of {SPACES}, got {self.params['ddv_space']!r}")

    def build(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None", device: torch.device, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        n = int(self.params["n_pairs"])
        x = random_inputs(dataset, n, seed, self.params["split"])
        levels = int(self.params["eps_levels"])
        eps = float(self.params["eps"])
        # pair i gets radius eps * (1 + i % levels) / levels: an even spread over the pairs
        radius = torch.tensor([eps * (1 + i % levels) / levels for i in range(len(x))])
        g = torch.Generator().manual_seed(seed)
        xa = torch.empty_like(x)
        for r in radius.unique():
            idx = (radius == r).nonzero().squeeze(1)
            xa[idx] = pgd(victim, x[idx], eps=float(r), steps=int(self.params["pgd_steps"]), low=task.low_tensor(device), high=task.high_tensor(device), generator=g).cpu()
        return {"queries": torch.cat([x, xa])}, {"pairs": int(len(x)), "eps_levels": [float(r) for r in radius.unique()]}
