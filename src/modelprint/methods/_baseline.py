"""What the baseline methods (ipguard, modeldiff, conferae, sac, akh) share.

Every baseline is QuRD-shaped (Godinot et al., AAAI 2025): a fixed set of query inputs, a
representation of the answers, and a similarity to the victim's representation. So one fingerprint
class carries the queries and the victim's probabilities on them; subclasses only say how two sets of
answers compare (:meth:`BaselineFingerprint.compare`).

Output modes. A fingerprint is built for one output mode (``params["output_mode"]``; label-only methods
default to ``label``, ModelDiff and SAC to ``probs``). At verification the suspect must reveal at
least that much: a ``probs`` suspect can be checked by a ``label`` fingerprint (its answers are reduced
to labels), but a ``label`` suspect cannot be checked by a ``probs`` fingerprint, whose threshold was
calibrated on probabilities: that is a :class:`ModelprintError` naming the fix. The victim's stored
probabilities are reduced the same way, so victim and suspect are always compared like for like.

Calibration. With a zoo, the fingerprint scores the zoo's training members (as black boxes, in its
output mode) and takes the threshold that maximises balanced accuracy on them (the midpoint of the
best gap, the highest such threshold when several tie, so that false accusations are the rarer
error); their scores are kept in ``meta["calibration"]`` and give an empirical p-value
``(1 + #{negatives >= score}) / (1 + #negatives)`` at verification. Without a zoo the method's
documented default threshold is used and no p-value is given.
"""
from __future__ import annotations

import math
import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

import numpy as np
import torch
from torch import nn

from ..device import pick_device
from ..errors import ModelprintError
from ..suspects import OutputMode, TorchSuspect
from ..tasks import Task
from .base import Fingerprint, Method

if TYPE_CHECKING:
    from ..data import Dataset
    from ..suspects import Suspect
    from ..zoo import Zoo, ZooMember


# -- output modes -------------------------------------------------------------------------------------
def mode_resolution(mode: OutputMode, num_classes: int) -> float:
    """How much a mode reveals: 1 for labels, K for top-K, infinity for full probabilities."""
    if mode.kind == "label":
        return 1.0
    if mode.kind == "topk":
        k = mode.k or 1
        return math.inf if k >= num_classes else float(k)
    return math.inf


def as_probs(y: torch.Tensor) -> torch.Tensor:
    """Canonical classifier answers as probability-like rows: raw logits are softmaxed, the rest
    (probabilities, zero-padded top-K, one-hot labels) pass through."""
    y = y.float()
    s = y.sum(1)
    if (y < -1e-6).any() or not torch.allclose(s, torch.ones_like(s), atol=1e-3):
        if y.min() >= 0 and (s <= 1 + 1e-3).all():  # top-K rows sum to < 1
            return y
        return torch.softmax(y, dim=1)
    return y


LOG_FLOOR = 1e-8  # probabilities below this (or rounded to 0 by an API) count as this in log space


def centred_log(p: torch.Tensor) -> torch.Tensor:
    """Centred log-probabilities, log p - mean(log p): equal to the centred logits when ``p`` is a
    softmax (softmax is shift-invariant), so methods written for logits can run on probabilities."""
    z = p.double().clamp_min(LOG_FLOOR).log()
    return z - z.mean(1, keepdim=True)


SPACES = ("prob", "cprob", "logprob")


def output_space(p: torch.Tensor, space: str) -> torch.Tensor:
    """Output vectors in which a method compares answers: ``prob`` (as answered), ``cprob`` (centred
    probabilities p - 1/C: a near-uniform answer becomes a near-zero vector instead of one that is
    cosine-close to every soft answer) or ``logprob`` (centred log-probabilities = centred logits)."""
    if space == "prob":
        return p.double()
    if space == "cprob":
        return p.double() - 1.0 / p.shape[1]
    if space == "logprob":
        return centred_log(p)
    raise ModelprintError(f"unknown output space {space!r}", fix=f"choose one of {SPACES}")


# -- calibration ----------------------------------------------------------------------------------------
def pick_threshold(pos: Iterable[float], neg: Iterable[float], default: float) -> float:
    """Threshold maximising balanced accuracy on (positive, negative) training scores.

    Candidates are midpoints between consecutive distinct scores (plus one above the top score and one
    below the lowest); ties go to the highest candidate. Only negatives: just above the highest
    negative. No negatives: ``default``.
    """
    p = np.asarray([s for s in pos if np.isfinite(s)], float)
    n = np.asarray([s for s in neg if np.isfinite(s)], float)
    if not len(n):
        return float(default)
    if not len(p):
        return float(np.nextafter(n.max(), np.inf))
    u = np.unique(np.concatenate([p, n]))
    cands = np.concatenate([(u[:-1] + u[1:]) / 2, [np.nextafter(u[-1], np.inf)], [np.nextafter(u[0], -np.inf)]])
    best, best_t = -1.0, float(default)
    for t in np.sort(cands):
        bal = 0.5 * ((p >= t).mean() + (n < t).mean())
        if bal >= best - 1e-12:
            best, best_t = max(best, bal), float(t)
    return best_t


def empirical_p(score: float, neg: list[float]) -> float | None:
    """One-sided empirical p-value of ``score`` against the calibration negatives (None without any)."""
    if not neg or not np.isfinite(score):
        return None
    n = np.asarray(neg, float)
    return float((1 + (n >= score - 1e-12).sum()) / (1 + len(n)))


def calibration_members(zoo: "Zoo") -> list["ZooMember"]:
    """Training members used for calibration: every member but the victim itself."""
    return [m for m in zoo.members if m.family != "victim"]


# -- the shared fingerprint -------------------------------------------------------------------------------
class BaselineFingerprint(Fingerprint):
    """Queries + the victim's probabilities on them; subclasses define :meth:`compare`.

    Tensors: ``queries`` [N, *input_shape] and ``reference`` [N, C] (victim probabilities), plus any
    listed in ``EXTRA_TENSORS``.
    """

    default_mode: ClassVar[str] = "label"
    needs_probs: ClassVar[bool] = False
    EXTRA_TENSORS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, task: Task, params: dict[str, Any], threshold: float, meta: dict[str, Any] | None, alpha: float | None, tensors: dict[str, torch.Tensor]):
        super().__init__(task, params, threshold, meta, alpha)
        self._t = {k: v.detach().cpu() for k, v in tensors.items()}
        self.params.setdefault("output_mode", self.default_mode)
        self.mode = OutputMode.parse(self.params["output_mode"])

    # -- storage ------------------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(self._t)

    @classmethod
    def from_saved(cls, task: Task, params: dict[str, Any], threshold: float, meta: dict[str, Any], alpha: float | None, tensors: dict[str, torch.Tensor]) -> "BaselineFingerprint":
        need = ("queries", "reference", *cls.EXTRA_TENSORS)
        missing = [k for k in need if k not in tensors]
        if missing:
            raise ModelprintError(f"{cls.method} fingerprint lacks tensors {missing}", fix="rebuild it with `modelprint fingerprint build`")
        q, r = tensors["queries"], tensors["reference"]
        if len(q) != len(r) or r.ndim != 2 or (task.num_classes is not None and r.shape[1] != task.num_classes):
            raise ModelprintError(f"{cls.method} fingerprint tensors disagree: queries {tuple(q.shape)}, reference {tuple(r.shape)}", fix="rebuild the fingerprint")
        return cls(task, params, threshold, meta, alpha, tensors)

    @property
    def queries(self) -> torch.Tensor:
        return self._t["queries"]

    # -- verification -------------------------------------------------------------------------------
    def _check_mode(self, suspect: "Suspect") -> None:
        c = int(self.task.num_classes or 0)
        if mode_resolution(suspect.mode, c) < mode_resolution(self.mode, c):
            if self.needs_probs:
                fix = (f"query the suspect with --output-mode {self.mode}, or rebuild the fingerprint for label-only "
                       f"suspects with --param output_mode=label ({self.method} then runs its documented degraded label variant)")
            else:
                fix = f"query the suspect with --output-mode {self.mode} or rebuild with --param output_mode={suspect.mode}"
            raise ModelprintError(
                f"{self.method} fingerprint was built and calibrated for output mode {self.mode}; suspect {suspect.name!r} reveals only {suspect.mode}",
                fix=fix,
            )

    def observe(self, suspect: "Suspect", x: torch.Tensor) -> torch.Tensor:
        """Query ``suspect`` and reduce its answers to this fingerprint's output mode."""
        self._check_mode(suspect)
        return self.mode.from_probs(as_probs(suspect.query(x)))

    def reference_outputs(self) -> torch.Tensor:
        return self.mode.from_probs(as_probs(self._t["reference"]))

    @abstractmethod
    def compare(self, reference: torch.Tensor, observed: torch.Tensor) -> tuple[float, dict[str, Any]]:
        """Similarity (higher = more alike) of the suspect's answers to the victim's, in this mode."""

    def score_suspect(self, suspect: "Suspect") -> tuple[float, float | None, dict[str, Any], list[torch.Tensor]]:
        out = self.observe(suspect, self.queries)
        score, details = self.compare(self.reference_outputs(), out)
        neg = self.meta.get("calibration", {}).get("negatives", [])
        details = {"output_mode": str(self.mode), **details}
        return float(score), empirical_p(score, neg), details, [self.queries, out]


def label_agreement(reference: torch.Tensor, observed: torch.Tensor) -> float:
    """Fraction of queries on which the two answer sets have the same top label."""
    return float((reference.argmax(1) == observed.argmax(1)).float().mean())


class BaselineMethod(Method):
    """Validated parameters, device handling, timing and zoo calibration for the baselines."""

    fingerprint_cls: ClassVar[type[BaselineFingerprint]]
    defaults: ClassVar[dict[str, Any]] = {}
    # used only when fit() gets no zoo to calibrate on; see default_threshold_for
    default_threshold: ClassVar[float] = 0.5
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def default_threshold_for(self) -> float:
        """The no-zoo threshold for these parameters (methods whose scale depends on the output mode or
        variant override this). Defaults are the median thresholds calibrated on the FashionMNIST quick
        zoo over three random splits (docs/results/baselines.md): they are victim-specific, so always
        calibrate with a zoo when one is available."""
        return float(self.default_threshold)

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults) - {"output_mode"})
        if unknown:
            raise ModelprintError(f"{self.name}: unknown parameter(s) {unknown}", fix=f"known: {sorted(self.defaults) + ['output_mode']}")
        p = {**self.defaults, **params}
        p["output_mode"] = str(OutputMode.parse(params.get("output_mode", self.fingerprint_cls.default_mode)))
        if OutputMode.parse(p["output_mode"]).kind == "raw":
            raise ModelprintError(f"{self.name}: output_mode raw is for regression/generation", fix="use probs, topk:K or label")
        super().__init__(**p)
        self.validate()

    def validate(self) -> None:
        """Check ``self.params``; raise ModelprintError naming the bad parameter."""

    def _int_param(self, name: str, lo: int = 1) -> int:
        v = self.params[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ModelprintError(f"{self.name}: parameter {name} must be an integer >= {lo}, got {v!r}")
        return int(v)

    def _float_param(self, name: str, lo: float | None = None, hi: float | None = None) -> float:
        v = self.params[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ModelprintError(f"{self.name}: parameter {name} must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)

    @staticmethod
    def check_task(task: Task, name: str) -> None:
        if task.kind != "classification":
            raise ModelprintError(f"{name} fingerprints classifiers only; this victim's task is {task.kind}", fix="use utaf for regression or generation")

    def fit(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None" = None, *, device: str = "auto", seed: int = 0) -> BaselineFingerprint:
        self.check_task(task, self.name)
        dev = pick_device(device)
        orig = next((p.device for p in victim.parameters()), torch.device("cpu"))
        was_training = victim.training
        t0 = time.perf_counter()
        victim.to(dev).eval()
        try:
            tensors, meta = self.build(victim, task, dataset, zoo, dev, seed)
            with torch.no_grad():
                ref = torch.cat([torch.softmax(victim(q.to(dev)).float(), 1).cpu() for q in tensors["queries"].split(512)])
        finally:
            victim.to(orig)
            victim.train(was_training)
        tensors["reference"] = ref
        meta = {"queries_per_suspect": int(len(tensors["queries"])), "score_range": list(self.score_range), **meta}
        default = self.default_threshold_for()
        fp = self.fingerprint_cls(task, self.params, default, meta, None, tensors)
        if zoo is not None:
            tc = time.perf_counter()
            self.calibrate(fp, self.calibration_zoo(zoo, meta), dev)
            fp.meta["calibration_seconds"] = time.perf_counter() - tc
        else:
            fp.meta["threshold_source"] = f"default {default} (no zoo given; see docs/methods/baselines.md)"
        fp.meta["construction_seconds"] = time.perf_counter() - t0
        return fp

    @abstractmethod
    def build(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None", device: torch.device, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Return the query tensors (at least ``queries``) and extra meta."""

    def calibration_zoo(self, zoo: "Zoo", meta: dict[str, Any]) -> "Zoo":
        return zoo

    def calibrate(self, fp: BaselineFingerprint, zoo: "Zoo", device: torch.device) -> None:
        pos, neg, names = [], [], []
        for m in calibration_members(zoo):
            lm = zoo.load(m)
            sus = TorchSuspect(lm.module, lm.task, mode=fp.mode, name=m.name, device=device)
            s, _, _, _ = fp.score_suspect(sus)
            (pos if m.label == "positive" else neg).append(float(s))
            names.append(m.name)
        # never above the top of the score range: an exact copy of the victim is always flagged
        fp.threshold = min(pick_threshold(pos, neg, self.default_threshold_for()), float(self.score_range[1]))
        fp.meta["calibration"] = {"positives": pos, "negatives": neg, "members": names}
        fp.meta["threshold_source"] = f"balanced accuracy on {len(pos)} positive and {len(neg)} negative zoo training members"


# -- query samplers shared by several baselines ------------------------------------------------------------
def split_inputs(dataset: "Dataset", split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in ("train", "test"):
        raise ModelprintError(f"data split must be train or test, got {split!r}")
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    if not len(x):
        raise ModelprintError(f"dataset {dataset.name!r} has no {split} inputs", fix="use a dataset with a test split or --param split=train")
    return x, y


def random_inputs(dataset: "Dataset", n: int, seed: int, split: str = "test") -> torch.Tensor:
    """``n`` distinct inputs of the split (all of them if it has fewer), in a seeded random order."""
    x, _ = split_inputs(dataset, split)
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(len(x), generator=g)[:n]].clone()


@torch.no_grad()
def victim_labels(victim: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([victim(b.to(device)).argmax(1).cpu() for b in x.split(512)]) if len(x) else torch.empty(0, dtype=torch.long)


def misclassified_inputs(victim: nn.Module, dataset: "Dataset", n: int, seed: int, device: torch.device, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` inputs of the split that the victim labels wrongly and their true labels: the split is
    scanned in a seeded random order, in chunks, until ``n`` are found (as QuRD's sampler does)."""
    x, y = split_inputs(dataset, split)
    if not len(y):
        raise ModelprintError(f"dataset {dataset.name!r} has no labels for its {split} split", fix="misclassified-sample queries need labelled data")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    found: list[torch.Tensor] = []
    have = 0
    for chunk in order.split(max(256, 4 * n)):
        wrong = chunk[victim_labels(victim, x[chunk], device) != y[chunk]]
        found.append(wrong)
        have += len(wrong)
        if have >= n:
            break
    pick = torch.cat(found)[:n] if found else torch.empty(0, dtype=torch.long)
    return x[pick].clone(), y[pick].clone()


def cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int, alpha: float = 1.0) -> torch.Tensor:
    """CutMix (Yun et al., ICCV 2019) of a batch of images with itself rolled by one (torchvision's
    ``CutMix``); seeded without touching the global RNG state."""
    if x.ndim != 4:
        raise ModelprintError(f"CutMix needs image inputs [N, C, H, W], got shape {tuple(x.shape)}", fix="use a misclassified-only or random query sampler for non-image tasks")
    from torchvision.transforms.v2 import CutMix

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mixed, _ = CutMix(num_classes=num_classes, alpha=alpha)(x, y.long())
    return mixed


def topped_up(x: torch.Tensor, y: torch.Tensor, n: int, num_classes: int, seed: int) -> tuple[torch.Tensor, int]:
    """QuRD's augmentation of a too-small query pool: rounds of CutMix of the pool plus its horizontally
    and vertically flipped copies, appended until ``n`` inputs exist. Returns (inputs, number augmented)."""
    if len(x) >= n:
        return x[:n], 0
    if len(x) < 2:
        raise ModelprintError(f"only {len(x)} seed inputs to augment; need at least 2", fix="use a larger data split or fewer queries")
    from torchvision.transforms.v2 import functional as VF

    parts, have, r = [x], len(x), 0
    while have < n:
        mixed = cutmix(x, y, num_classes, seed + 7919 * (r + 1))
        for t in (mixed, VF.horizontal_flip(mixed), VF.vertical_flip(mixed)):
            parts.append(t)
            have += len(t)
        r += 1
    out = torch.cat(parts)[:n].contiguous()
    return out, n - len(x)
