"""Method ``uap``: UAP fingerprinting of Peng et al., "Fingerprinting Deep Neural Networks Globally via
Universal Adversarial Perturbations" (CVPR 2022).

Construction (white-box on the victim, Algorithm 1):

1. **UAP** ``v`` of the victim (:func:`modelprint.attacks.uap.find_uap`; DeepFool-based by default,
   ξ grown automatically until the fooling rate reaches ``target_fooling`` = 80%, §5.1).
2. **Anchors** (§4.2): K-means (scikit-learn) on the victim's last hidden layer representation of its
   training data into ``n_anchors`` clusters; the datapoint nearest each centroid is the cluster's
   anchor, and its ``n_views - 1`` nearest neighbours *within the cluster* form the pool ``K_i`` used for
   the multi-view augmentation of §4.3 (so that every view still takes exactly one point per cluster,
   Algorithm 1 line 13).
3. **Fingerprint function** (Eq. 6): ``F(f, v, X) = [f(x1), f(x1+v), …, f(xn), f(xn+v)]``, queried
   through the :class:`~modelprint.suspects.Suspect` interface in the fingerprint's output mode
   (``probs``, ``topk:K`` or ``label``: the paper's top-k ablation). ``x + v`` is clamped to the domain.
4. **Encoder** (§4.3): an MLP projector trained with the supervised contrastive loss
   (``pytorch_metric_learning.losses.SupConLoss``) on multi-view batches: label 0 for the victim and the
   zoo's training positives (piracy), label 1 for its training negatives (homologous / independent);
   ``negative_classes=per-model`` gives every negative model its own class instead (our variant: the
   loss then pulls only the views of one honest model together, not all honest models into one cluster).
   A view picks one pool neighbour per anchor at random, so training sees far more than ``n_views``
   distinct views (the paper samples 200 fixed ones; the random recombination is a superset of them).
5. **Verification**: ``m = n_fingerprints`` fixed views (view ``j`` = the ``j``-th neighbour of every
   anchor; view 0 = the anchors); per-fingerprint similarity = cosine between the encoder embeddings of
   the suspect's and the victim's fingerprints on that view; model similarity (the score) = their mean.
   Queries per suspect: ``m × n × 2`` (4000 by default).
6. **Decision** (§5.2): one-sided two-sample Welch t-test of the suspect's ``m`` similarities against the
   per-fingerprint similarities of negative models, H1: mean(suspect) > mean(negatives); ``p < alpha``
   and score ≥ threshold → pirated; both the other way → independent; else inconclusive.

Choices where the paper is silent (measured in docs/results/uap.md):

* *Calibration by cross-fitting.* Similarities of negatives the encoder was trained on are optimistic
  (≈ −1), so a null built from them would call almost any unseen model "significantly" similar. The null
  similarities and the threshold therefore come from ``calibration_folds``-fold cross-fitting over the
  training members (each member scored by an encoder that did not see it); the encoder kept in the
  fingerprint is then trained on all of them. ``calibration_folds=0`` uses in-sample similarities
  (the paper's literal reading).
* Similarity is measured on the projector's output (the space the contrastive loss shapes).
* *Functional-plausibility guard* (``agreement_floor``, our extension). The encoder is trained on a few
  dozen models and says nothing reliable about models unlike them: on ``fmnist-wide`` it gave an MNIST
  digit classifier (7.6 % top-1 agreement with the victim on the anchors) similarity 0.995. A pirated
  model is by definition a working copy, so a suspect whose clean-anchor answers agree with the victim's
  less than half as often as the training thieves' 5th percentile (not their minimum: one broken copy in
  the zoo would pull the floor down to chance agreement on misclassified anchors) gets score
  ``min(similarity, agreement − 1)``
  (below every plausible suspect), no p-value, and decision ``independent``, with the reason in the
  verdict. It costs no queries (the clean half of the fingerprint) and never touches plausible suspects.
* *Clean-anchor agreement as a second signal* (``agreement_weight`` w, our extension; default ``auto``:
  0.5 with misclassified anchors, 0.25 with the paper's; 0 = the paper).
  The encoder, trained on the zoo's architectures, ranks honest models of an unseen architecture worse
  than plain closeness to the victim does (docs/results/uap.md). With w > 0 each fingerprint's value is
  ``(1 − w)·s_j + w·ŝ_j``: ``s_j`` its cosine similarity, ``ŝ_j`` its clean-anchor top-1 agreement with
  the victim mapped affinely onto the similarity's scale by the training members' cross-fitted means and
  spreads (``ŝ = μ_s + σ_s (a − μ_a) / σ_a``, clipped to [−1, 1]). The t-test, null, threshold and score
  then use these values; the verdict keeps the raw similarity and agreement. Costs no queries. On
  FashionMNIST (fmnist-xl, every fold × 3 seeds) w = 0.25 raised the unseen-architecture AUC 0.849 →
  0.887 and its worst fold on every zoo tried; held-out / unseen-family AUC medians moved −0.012 … +0.013
  (three zoos, three seeds); 0.5 reaches 0.910 but costs held-out AUC and TPR at 1 % FPR.
* *Anchors on the victim's mistakes* (``anchor_pool``, our extension; default ``auto``: only the sampled
  training points the victim misclassifies are clustered, when there are at least 5 per anchor, else all
  of them as in the paper). Thieves copy the victim's mistakes, honest models make their own, so both the
  clean agreement and the UAP's effect there carry more of the victim's identity than on K-means centres
  of typical points. With the agreement mix at 0.5 this was the largest gain measured for ``uap`` on
  FashionMNIST: fmnist-xl, every fold × 3 seeds, AUC held-out / unseen families / unseen architectures
  0.927 / 0.939 / 0.887 (paper anchors, w = 0.25) → 0.959 / 0.961 / 0.947 (0.959 / 0.962 / 0.952 with the
  5th-percentile floor; label-only 0.912 / 0.920 / 0.893 → 0.937 / 0.960 / 0.957; docs/results/uap.md).
  ``anchor_pool=all agreement_weight=0`` is the paper's setting.
* ``random_negatives`` random-init copies of the victim's architecture join the training negatives
  (never the calibration): an encoder that only ever saw trained models can map an untrained or
  otherwise out-of-distribution suspect anywhere on the sphere, including next to the victim.
* Responses of zoo members on the pool are cached in memory (and on disk with ``cache_dir``) keyed by the
  pool's and the member's hashes, so re-fitting on another split of the same zoo does not re-query.
"""
from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..attacks.uap import find_uap, fooling_rate, parse_norm
from ..bench.metrics import auc as roc_auc
from ..bench.metrics import welch_one_sided
from ..device import pick_device, seed_everything
from ..errors import ModelprintError
from ..progress import progress_bar
from ..suspects import OutputMode, TorchSuspect
from ..tasks import Task
from ..train import last_layer
from ..verdict import digest
from ._baseline import victim_labels
from .base import Fingerprint, Method, register_method

if TYPE_CHECKING:
    from ..data import Dataset
    from ..suspects import Suspect
    from ..zoo import Zoo, ZooMember

DEFAULTS: dict[str, Any] = {
    # fingerprint generation
    "n_anchors": 100,  # n: datapoints per fingerprint (K-means clusters)
    "n_views": 50,  # pool size per anchor (k nearest neighbours incl. the anchor) for multi-view training
    "n_fingerprints": 20,  # m: fingerprints (views) queried per suspect
    "output_mode": "probs",  # probs | topk:K | label
    "xi": "auto",  # UAP radius; "auto": grow until target_fooling is reached
    "norm": 2,  # 2 | inf
    "target_fooling": 0.8,
    "uap_algorithm": "deepfool",  # deepfool (Moosavi-Dezfooli) | sgd (Shafahi et al.)
    "uap_samples": 1000,  # training points the UAP is computed on
    "kmeans_samples": 20000,  # training points clustered (all when fewer)
    # all: K-means over the training sample (the paper) | misclassified: only over the sampled training
    # points the victim gets wrong (a victim-specific region that thieves copy and independent models do
    # not; our extension, see docs/methods/uap.md) | auto: misclassified when the victim gets at least
    # AUTO_MISCLASSIFIED_PER_ANCHOR × n_anchors of them wrong, else all
    "anchor_pool": "auto",
    # encoder
    "hidden": 256,
    "embed_dim": 64,
    "depth": 2,
    "dropout": 0.1,
    "steps": 300,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "temperature": 0.1,
    "encoder_input": "outputs",  # outputs: F itself (the paper) | relative: [F, F - F_victim] on the same view
    "negative_classes": "shared",  # shared: every negative model is SupCon class 1 (the paper) | per-model: one class each
    # decision
    "alpha": 0.01,
    "calibration_folds": 3,
    "random_negatives": 4,  # random-init copies of the victim's architecture added as training negatives
    # functional-plausibility guard (our extension): a suspect whose top-1 answers on the clean anchors agree
    # with the victim's less than this is scored below every plausible model. auto = half the 5th percentile
    # of the zoo's training positives' agreement (FLOOR_PERCENTILE); off = the paper (the encoder's
    # similarity alone); or a number in [0, 1]
    "agreement_floor": "auto",
    # weight of the clean-anchor agreement (mapped onto the similarity's scale by the training members'
    # cross-fitted statistics) in each fingerprint's value; 0 = the paper (the encoder's similarity alone).
    # auto: 0.5 with misclassified anchors, 0.25 with all (AUTO_AGREEMENT_WEIGHT; docs/results/uap.md)
    "agreement_weight": "auto",
    "cache_dir": None,
}
_INT_PARAMS = ("n_anchors", "n_views", "n_fingerprints", "uap_samples", "kmeans_samples", "hidden", "embed_dim", "depth", "steps", "batch_size", "calibration_folds", "random_negatives")
_FLOAT_PARAMS = ("target_fooling", "dropout", "lr", "weight_decay", "temperature", "alpha")


ANCHOR_POOLS = ("all", "misclassified", "auto")
# anchor_pool=auto clusters only the misclassified training points when there are at least this many per
# anchor (so each cluster holds several distinct points for its views), else all points (the paper)
AUTO_MISCLASSIFIED_PER_ANCHOR = 5
# agreement_floor=auto: half this percentile of the training positives' clean agreement
FLOOR_PERCENTILE = 5
# agreement_weight=auto, by the anchor pool a fit used: the clean agreement on the victim's own mistakes is
# a stronger signal than on K-means centres of all points (docs/results/uap.md, "Misclassified anchors
# with the agreement mix"), so it gets more weight
AUTO_AGREEMENT_WEIGHT = {"misclassified": 0.5, "all": 0.25}


def _unit_or_word(p: dict[str, Any], key: str, words: tuple[str, ...], fix: str) -> None:
    """Parameter ``key`` is one of ``words`` or a number in [0, 1]; numbers are parsed in place."""
    if key not in p or p[key] in words:
        return
    try:
        p[key] = float(p[key])
    except (TypeError, ValueError):
        raise ModelprintError(f"parameter {key}={p[key]!r} is not a number", fix=fix) from None
    if not 0 <= p[key] <= 1:
        raise ModelprintError(f"{key}={p[key]} must be in [0, 1]", fix=fix)


def _validate(params: dict[str, Any], defaults: dict[str, Any], method: str) -> dict[str, Any]:
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ModelprintError(f"method {method!r} has no parameter(s) {unknown}", fix=f"known parameters: {', '.join(sorted(defaults))}")
    p = {**defaults, **params}
    for k in _INT_PARAMS:
        if k in p:
            try:
                p[k] = int(p[k])
            except (TypeError, ValueError):
                raise ModelprintError(f"parameter {k}={p[k]!r} is not an integer") from None
            lo = 0 if k in ("calibration_folds", "random_negatives") else 1
            if p[k] < lo:
                raise ModelprintError(f"parameter {k}={p[k]} must be >= {lo}")
    for k in _FLOAT_PARAMS:
        if k in p:
            try:
                p[k] = float(p[k])
            except (TypeError, ValueError):
                raise ModelprintError(f"parameter {k}={p[k]!r} is not a number") from None
    if "target_fooling" in p and not 0 < p["target_fooling"] <= 1:
        raise ModelprintError(f"target_fooling={p['target_fooling']} must be in (0, 1]")
    if "alpha" in p and not 0 < p["alpha"] < 1:
        raise ModelprintError(f"alpha={p['alpha']} must be in (0, 1)")
    _unit_or_word(p, "agreement_weight", ("auto",), "auto, 0 = the encoder's similarity alone (the paper), 1 = clean-anchor agreement alone")
    if "dropout" in p and not 0 <= p["dropout"] < 1:
        raise ModelprintError(f"dropout={p['dropout']} must be in [0, 1)")
    if "n_views" in p and "n_fingerprints" in p and p["n_fingerprints"] > p["n_views"]:
        raise ModelprintError(f"n_fingerprints={p['n_fingerprints']} exceeds n_views={p['n_views']}", fix="the m verification views are drawn from the pool of n_views neighbours: raise n_views")
    if "xi" in p and p["xi"] not in (None, "auto"):
        try:
            p["xi"] = float(p["xi"])
        except (TypeError, ValueError):
            raise ModelprintError(f"parameter xi={p['xi']!r} must be a positive number or 'auto'") from None
        if not p["xi"] > 0:
            raise ModelprintError(f"parameter xi={p['xi']} must be positive")
    if "norm" in p:
        nrm = parse_norm(p["norm"])
        p["norm"] = "inf" if math.isinf(nrm) else 2
    if "output_mode" in p:
        m = OutputMode.parse(str(p["output_mode"]))
        if m.kind == "raw":
            raise ModelprintError("output_mode raw is not a classification output mode", fix="use probs, topk:K or label")
        p["output_mode"] = str(m)
    if "encoder_input" in p and p["encoder_input"] not in ("outputs", "relative"):
        raise ModelprintError(f"encoder_input={p['encoder_input']!r}", fix="use outputs (the paper) or relative")
    _unit_or_word(p, "agreement_floor", ("auto", "off"), "use auto, off, or a number in [0, 1]")
    if "negative_classes" in p and p["negative_classes"] not in ("shared", "per-model"):
        raise ModelprintError(f"negative_classes={p['negative_classes']!r}", fix="use shared (the paper) or per-model")
    if "anchor_pool" in p and p["anchor_pool"] not in ANCHOR_POOLS:
        raise ModelprintError(f"anchor_pool={p['anchor_pool']!r}", fix="use all (the paper), misclassified, or auto (misclassified when the victim errs often enough, else all)")
    if "uap_algorithm" in p and p["uap_algorithm"] not in ("deepfool", "sgd"):
        raise ModelprintError(f"uap_algorithm={p['uap_algorithm']!r}", fix="use deepfool or sgd")
    return p


# ---------------------------------------------------------------------------------------------
# representations and anchors
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def representations(model: nn.Module, x: torch.Tensor, batch_size: int = 512, device: str | torch.device = "auto") -> torch.Tensor:
    """The model's last hidden layer representation of ``x`` ([N, D], CPU): ``model.embed`` when the
    net has one, else the input of its final Linear/Conv layer captured by a forward pre-hook."""
    dev = pick_device(device)
    model.to(dev).eval()
    outs: list[torch.Tensor] = []
    if hasattr(model, "embed") and callable(model.embed):
        for i in range(0, len(x), batch_size):
            outs.append(model.embed(x[i : i + batch_size].to(dev)).reshape(min(batch_size, len(x) - i), -1).float().cpu())
        return torch.cat(outs)
    head = last_layer(model)
    grabbed: list[torch.Tensor] = []
    h = head.register_forward_pre_hook(lambda _m, inp: grabbed.append(inp[0].detach()))
    try:
        for i in range(0, len(x), batch_size):
            grabbed.clear()
            model(x[i : i + batch_size].to(dev))
            if not grabbed:
                raise ModelprintError("the model's final layer was not called in its forward pass", fix="give the net an .embed(x) method returning its last hidden layer")
            outs.append(grabbed[-1].reshape(len(grabbed[-1]), -1).float().cpu())
    finally:
        h.remove()
    return torch.cat(outs)


def select_anchors(reps: torch.Tensor, n_anchors: int, n_views: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """K-means (scikit-learn) of ``reps`` into ``n_anchors`` clusters.

    Returns (``pool`` [n_anchors, n_views] indices into ``reps``: column 0 is the point nearest each
    centroid, the following columns its nearest neighbours inside the same cluster, cycling when a
    cluster is smaller than ``n_views``; ``cluster`` [N] the cluster of every point).
    """
    from sklearn.cluster import KMeans

    n = len(reps)
    if n < n_anchors:
        raise ModelprintError(f"{n} datapoints cannot make {n_anchors} clusters", fix="lower n_anchors or give more training data")
    r = reps.double().numpy()
    km = KMeans(n_clusters=n_anchors, n_init=3, random_state=seed).fit(r)
    labels = km.labels_
    pool = np.zeros((n_anchors, n_views), dtype=np.int64)
    for c in range(n_anchors):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:  # cannot happen with k-means++ on distinct points; duplicates could
            raise ModelprintError(f"K-means left cluster {c} empty (duplicate datapoints?)", fix="lower n_anchors")
        d_c = ((r[members] - km.cluster_centers_[c]) ** 2).sum(1)
        anchor = members[int(np.argmin(d_c))]
        d_a = ((r[members] - r[anchor]) ** 2).sum(1)
        order = members[np.lexsort((members, d_a))]  # anchor first (distance 0), ties by index
        order = np.concatenate([[anchor], order[order != anchor]])
        pool[c] = order[np.arange(n_views) % len(order)]
    return torch.from_numpy(pool), torch.from_numpy(labels.astype(np.int64))


# ---------------------------------------------------------------------------------------------
# encoder
# ---------------------------------------------------------------------------------------------
def random_init_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised (its default initialisation), seeded."""
    import copy

    net = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in net.modules():
            if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()
    return net.eval()


def build_encoder(in_dim: int, hidden: int, embed_dim: int, depth: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
        d = hidden
    layers.append(nn.Linear(d, embed_dim))
    return nn.Sequential(*layers)


def _views(feats: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """feats [n, k, 2, C], cols [B, n] neighbour index per anchor -> fingerprint vectors [B, n*2*C]."""
    n = feats.shape[0]
    rows = torch.arange(n).expand_as(cols)
    return feats[rows, cols].reshape(len(cols), -1)


def encoder_input(suspect_views: torch.Tensor, victim_views: torch.Tensor, kind: str) -> torch.Tensor:
    """What the encoder sees for fingerprint vectors [B, D]: the fingerprint itself (``outputs``, the
    paper) or the fingerprint next to its difference from the victim's on the same view (``relative``)."""
    if kind == "relative":
        return torch.cat([suspect_views, suspect_views - victim_views], 1)
    return suspect_views


def train_encoder(feats: list[torch.Tensor], labels: list[int], p: dict[str, Any], seed: int, device: torch.device, desc: str = "SupCon encoder", victim: torch.Tensor | None = None) -> nn.Sequential:
    """Supervised contrastive training (pytorch-metric-learning ``SupConLoss``) on multi-view batches:
    each batch item is a random view (one pool neighbour per anchor) of a model drawn so that both
    labels fill half the batch. ``victim`` (its pool outputs) is needed for ``encoder_input=relative``."""
    from pytorch_metric_learning.losses import SupConLoss

    kind = p.get("encoder_input", "outputs")
    if kind == "relative" and victim is None:
        raise ModelprintError("encoder_input=relative needs the victim's outputs")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n, k = feats[0].shape[:2]
    in_dim = feats[0][:, 0].numel() * (2 if kind == "relative" else 1)
    enc = build_encoder(in_dim, p["hidden"], p["embed_dim"], p["depth"], p["dropout"]).to(device)
    opt = torch.optim.AdamW(enc.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    loss_fn = SupConLoss(temperature=p["temperature"])
    lab = torch.tensor(labels)
    by_label = [torch.nonzero(lab == c).squeeze(1) for c in (0, 1)]
    stacked = torch.stack(feats)  # [M, n, k, 2, C]
    rows = torch.arange(n)[None, :]
    B = p["batch_size"]
    enc.train()
    with progress_bar(p["steps"], desc) as advance:
        for _ in range(p["steps"]):
            half = [B // 2, B - B // 2]
            midx = torch.cat([by_label[c][torch.randint(len(by_label[c]), (half[c],), generator=g)] for c in (0, 1)])
            cols = torch.randint(k, (B, n), generator=g)
            x = stacked[midx[:, None], rows, cols].reshape(B, -1)
            xv = victim[rows, cols].reshape(B, -1) if kind == "relative" else x
            x = encoder_input(x, xv, kind).to(device)
            y = lab[midx]
            if p.get("negative_classes", "shared") == "per-model":  # negatives need not resemble each other
                y = torch.where(y == 0, 0, 1 + midx)
            y = y.to(device)
            loss = loss_fn(enc(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            advance(1, info=f"loss {loss.item():.3f}")
    enc.eval()
    return enc.cpu()


@torch.no_grad()
def view_similarities(enc: nn.Module, suspect_views: torch.Tensor, victim_views: torch.Tensor, kind: str = "outputs") -> torch.Tensor:
    """Cosine similarity per fingerprint between embeddings of suspect and victim views [m, D] -> [m],
    clamped to [-1, 1]: float32 rounding puts identical embeddings at 1 + 6e-8 on some CPUs."""
    enc.eval()
    s, v = suspect_views.float(), victim_views.float()
    a, b = enc(encoder_input(s, v, kind)), enc(encoder_input(v, v, kind))
    return torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1.0, 1.0)


def label_agreement(outputs: torch.Tensor, victim_outputs: torch.Tensor, half: int = 0) -> float:
    """Share of fingerprint queries ([m, n, 2, C]; ``half`` 0 = clean anchors, 1 = UAP-perturbed) on which
    two models' top-1 answers agree."""
    return float(view_agreements(outputs, victim_outputs, half).mean())


def view_agreements(outputs: torch.Tensor, victim_outputs: torch.Tensor, half: int = 0) -> torch.Tensor:
    """Top-1 agreement per fingerprint [m] (share of its ``n`` anchors on which the two models agree)."""
    return (outputs[:, :, half].argmax(-1) == victim_outputs[:, :, half].argmax(-1)).float().mean(1)


def combine_views(similarities: np.ndarray, agreements: np.ndarray, weight: float, scale: dict[str, float] | None) -> np.ndarray:
    """Per-fingerprint values ``(1 − w)·s + w·ŝ`` with ``ŝ`` the agreement mapped onto the similarity's
    scale (``scale``: the training members' ``sim_mean``/``sim_std``/``agree_mean``/``agree_std``) and
    clipped to [−1, 1]; the similarities unchanged when ``w = 0`` or there is no scale."""
    s = np.asarray(similarities)
    if not weight or not scale:
        return s
    s = s.astype(float)
    mapped = scale["sim_mean"] + scale["sim_std"] * (np.asarray(agreements, float) - scale["agree_mean"]) / scale["agree_std"]
    return (1.0 - weight) * s + weight * np.clip(mapped, -1.0, 1.0)


def agreement_scale(similarity: list[float], agreement: list[float]) -> dict[str, float] | None:
    """The affine map of :func:`combine_views` from per-member mean similarities and agreements (the
    training members' cross-fitted values); None when they cannot define one (fewer than two members or
    all agreements equal)."""
    s, a = np.asarray(similarity, float), np.asarray(agreement, float)
    if len(s) < 2 or not a.std() > 0:
        return None
    return {"sim_mean": float(s.mean()), "sim_std": float(s.std()) or 1.0, "agree_mean": float(a.mean()), "agree_std": float(a.std())}


def guarded_score(similarity: float, agreement: float) -> float:
    """The score of a suspect below the agreement floor: at most ``agreement - 1`` (< -0.5 below any
    floor ≤ 0.5), so it ranks under every functionally plausible suspect, and still orders such suspects."""
    return float(min(similarity, agreement - 1.0))


def calibrate_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    """Threshold between positive and negative model scores: the middle of the gap when they separate,
    else the midpoint maximising TPR − FPR (Youden's J)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(neg):
        return float(pos.min()) if len(pos) else 0.0
    if not len(pos):
        return float(neg.max())
    if pos.min() > neg.max():
        return float((pos.min() + neg.max()) / 2)
    s = np.unique(np.concatenate([pos, neg]))
    cands = np.concatenate([[s[0] - 1e-6], (s[1:] + s[:-1]) / 2, [s[-1] + 1e-6]])
    j = [(pos >= t).mean() - (neg >= t).mean() for t in cands]
    return float(cands[int(np.argmax(j))])


# ---------------------------------------------------------------------------------------------
# caches (pool construction and zoo responses), so that re-fitting on other splits is cheap
# ---------------------------------------------------------------------------------------------
class _LRU(OrderedDict):
    def __init__(self, maxsize: int):
        super().__init__()
        self.maxsize = maxsize

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


_POOL_CACHE = _LRU(8)
_RESPONSE_CACHE = _LRU(4096)


def clear_caches() -> None:
    _POOL_CACHE.clear()
    _RESPONSE_CACHE.clear()


def _module_digest(model: nn.Module) -> str:
    sd = model.state_dict()
    return digest(*(f"{k}:{tuple(sd[k].shape)}" for k in sorted(sd)), *(sd[k] for k in sorted(sd)))


def _member_key(zoo: "Zoo", m: "ZooMember") -> str:
    if m.sha256:
        return m.sha256
    p = Path(zoo.root) / m.path
    f = p / "model.safetensors" if p.is_dir() else p
    st = f.stat() if f.exists() else None
    return digest(str(p.resolve()), str(st.st_mtime_ns if st else 0), str(st.st_size if st else 0))


def _query_probs(module: nn.Module, task: Task, x: torch.Tensor, device: str, name: str) -> tuple[torch.Tensor, int]:
    sus = TorchSuspect(module, task, mode="probs", name=name, device=device, batch_size=512)
    return sus.query(x), sus.queries


def _cached_responses(key: str, cache_dir: str | None, compute) -> tuple[torch.Tensor, int]:
    if key in _RESPONSE_CACHE:
        _RESPONSE_CACHE.move_to_end(key)
        return _RESPONSE_CACHE[key], 0
    f = Path(cache_dir) / f"{key}.safetensors" if cache_dir else None
    if f is not None and f.exists():
        from safetensors.torch import load_file

        try:
            t = load_file(str(f))["probs"]
            _RESPONSE_CACHE.put(key, t)
            return t, 0
        except Exception:  # a torn cache file: recompute
            f.unlink(missing_ok=True)
    t, q = compute()
    _RESPONSE_CACHE.put(key, t)
    if f is not None:
        from safetensors.torch import save_file

        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        save_file({"probs": t.contiguous()}, str(tmp))
        tmp.replace(f)
    return t, q


def _save_pool(cache_dir: str | None, key: str, pool: dict[str, Any]) -> None:
    """Pool tensors to ``cache_dir/pool-<key>.safetensors`` (info as JSON metadata): resumable fits."""
    if not cache_dir:
        return
    from safetensors.torch import save_file

    f = Path(cache_dir) / f"pool-{key}.safetensors"
    f.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in pool.items() if isinstance(v, torch.Tensor)}
    meta = {"info": json.dumps(pool["info"], default=float), "pool_digest": str(pool.get("pool_digest", ""))}
    tmp = f.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(f)


def _load_pool(cache_dir: str | None, key: str) -> dict[str, Any] | None:
    if not cache_dir:
        return None
    f = Path(cache_dir) / f"pool-{key}.safetensors"
    if not f.exists():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(f), "pt") as h:
            out: dict[str, Any] = {k: h.get_tensor(k) for k in h.keys()}
            meta = h.metadata() or {}
        out["info"] = json.loads(meta["info"])
        if meta.get("pool_digest"):
            out["pool_digest"] = meta["pool_digest"]
        return out
    except Exception:  # torn or foreign file: rebuild
        f.unlink(missing_ok=True)
        return None


# ---------------------------------------------------------------------------------------------
# the fingerprint
# ---------------------------------------------------------------------------------------------
_MODE_RANK = {"label": 0, "topk": 1, "probs": 2, "raw": 3}


def reduce_outputs(y: torch.Tensor, have: OutputMode, want: OutputMode) -> torch.Tensor:
    """Canonical outputs of mode ``have`` reduced to mode ``want`` (e.g. probs -> label). Raises a
    :class:`ModelprintError` when ``have`` reveals less than ``want`` needs."""
    if have == want:
        return y
    ok = want.kind == "label" or have.kind in ("probs", "raw") or (have.kind == "topk" and want.kind == "topk" and (have.k or 1) >= (want.k or 1))
    if not ok:
        raise ModelprintError(
            f"the fingerprint was built for output mode {want} but the suspect answers {have}",
            fix=f"build the fingerprint with --param output_mode={have}, or query the suspect with --output-mode {want}",
        )
    if have.kind == "raw":
        y = torch.softmax(y, dim=-1)
    return want.from_probs(y.reshape(-1, y.shape[-1])).reshape(y.shape)


class UAPFingerprint(Fingerprint):
    """Queries (``x_clean``/``x_adv`` [m, n, *shape]), the victim's fingerprints on them, the encoder and
    the null similarities of negative models. Verification needs nothing else."""

    method: ClassVar[str] = "uap"

    def __init__(self, task: Task, params: dict[str, Any], threshold: float, meta: dict[str, Any], alpha: float | None,
                 x_clean: torch.Tensor, x_adv: torch.Tensor, victim_outputs: torch.Tensor, encoder: nn.Sequential,
                 null_similarities: torch.Tensor, extra: dict[str, torch.Tensor] | None = None):
        super().__init__(task, params, threshold, meta, alpha)
        self.x_clean, self.x_adv = x_clean.float(), x_adv.float()
        self.victim_outputs = victim_outputs.float()  # [m, n, 2, C] in the fingerprint's output mode
        self.encoder = encoder.eval()
        self.null_similarities = null_similarities.float()
        self.extra = dict(extra or {})
        self.mode = OutputMode.parse(params["output_mode"])
        self.meta.setdefault("queries_per_suspect", int(x_clean.shape[0] * x_clean.shape[1] * 2))
        self.meta.setdefault("score_range", [-1.0, 1.0])

    @property
    def n_fingerprints(self) -> int:
        return int(self.x_clean.shape[0])

    @property
    def n_anchors(self) -> int:
        return int(self.x_clean.shape[1])

    # -- the fingerprint function (Eq. 6) through the Suspect interface ---------------------------
    def fingerprint_outputs(self, suspect: "Suspect", m: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Query ``suspect`` on the first ``m`` fingerprints: outputs [m, n, 2, C] in the fingerprint's
        output mode, and the [queries, responses] for the evidence digest."""
        m = self.n_fingerprints if m is None else m
        n = self.n_anchors
        shape = self.x_clean.shape[2:]
        q = torch.stack([self.x_clean[:m], self.x_adv[:m]], 2).reshape(m * n * 2, *shape)
        y = suspect.query(q)
        y = reduce_outputs(y, suspect.mode, self.mode)
        return y.reshape(m, n, 2, -1), [q, y]

    def fingerprints_affordable(self, suspect: "Suspect") -> int:
        per = 2 * self.n_anchors
        left = suspect.remaining()
        m = self.n_fingerprints if math.isinf(left) else min(self.n_fingerprints, int(left // per))
        if m < 2:
            from ..errors import BudgetExceeded

            raise BudgetExceeded(
                f"suspect {suspect.name!r}: {int(left)} queries left, the {self.method} fingerprint needs at least {2 * per} (2 fingerprints of {self.n_anchors} anchors × 2)",
                fix=f"raise --budget to {self.queries_per_suspect} (all {self.n_fingerprints} fingerprints) or build with a smaller n_anchors",
            )
        return m

    def embed(self, outputs: torch.Tensor) -> torch.Tensor:
        """Encoder embeddings of the first ``m`` fingerprints given as outputs [m, n, 2, C] -> [m, embed_dim]."""
        m = len(outputs)
        x = encoder_input(outputs.reshape(m, -1).float(), self.victim_outputs[:m].reshape(m, -1), self.params.get("encoder_input", "outputs"))
        with torch.no_grad():
            return self.encoder(x)

    def similarities(self, outputs: torch.Tensor) -> torch.Tensor:
        m = len(outputs)
        return view_similarities(self.encoder, outputs.reshape(m, -1), self.victim_outputs[:m].reshape(m, -1), self.params.get("encoder_input", "outputs"))

    def score_suspect(self, suspect: "Suspect") -> tuple[float, float | None, dict[str, Any], list[torch.Tensor]]:
        m = self.fingerprints_affordable(suspect)
        outs, evidence = self.fingerprint_outputs(suspect, m)
        sims = self.similarities(outs).numpy().astype(float)
        agrees = view_agreements(outs, self.victim_outputs[:m]).numpy().astype(float)
        weight = float(self.params.get("agreement_weight", 0.0) or 0.0)
        values = combine_views(sims, agrees, weight, self.meta.get("agreement_scale"))
        score = float(values.mean())
        null = self.null_similarities.numpy().astype(float)
        p = welch_one_sided(values, null) if len(null) >= 2 else None
        if p is not None and not np.isfinite(p):
            p = None
        agreement = float(agrees.mean())
        floor = self.meta.get("agreement_floor")
        guarded = floor is not None and agreement < floor
        details: dict[str, Any] = {}
        if guarded:
            details["guard"] = {"clean_label_agreement": agreement, "floor": floor, "similarity": float(sims.mean()), "score_before_guard": score, "p_value_similarity": p,
                                "why": "its answers on the clean anchors agree with the victim's less than any functional copy's would"}
            details["note"] = (f"clean-anchor agreement with the victim {agreement:.3f} is below the floor {floor:.3f}: not a functional copy; "
                               f"score {score:.4f} replaced by {guarded_score(score, agreement):.4f}, no t-test")
            score, p = guarded_score(score, agreement), None
        if weight and self.meta.get("agreement_scale"):
            details |= {"similarity": float(sims.mean()), "agreement_weight": weight, "values": [round(float(v), 6) for v in values]}
        details |= {
            "similarities": [round(float(s), 6) for s in sims],
            "similarity_std": float(sims.std()),
            "fingerprints_used": m,
            "null_mean": float(null.mean()) if len(null) else None,
            "null_std": float(null.std()) if len(null) else None,
            "output_mode": str(self.mode),
            "label_agreement_clean": agreement,
            "label_agreement_perturbed": label_agreement(outs, self.victim_outputs[:m], half=1),
        }
        return score, p, details, evidence

    # -- persistence --------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        t = {
            "x_clean": self.x_clean, "x_adv": self.x_adv, "victim_outputs": self.victim_outputs,
            "null_similarities": self.null_similarities,
        }
        t.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        t.update({f"extra.{k}": v for k, v in self.extra.items()})
        return t

    @classmethod
    def from_saved(cls, task: Task, params: dict[str, Any], threshold: float, meta: dict[str, Any], alpha: float | None, tensors: dict[str, torch.Tensor]) -> "UAPFingerprint":
        need = ("x_clean", "x_adv", "victim_outputs", "null_similarities")
        missing = [k for k in need if k not in tensors]
        if missing or "in_dim" not in meta:
            raise ModelprintError(f"{cls.method} fingerprint is incomplete (missing {missing or ['meta.in_dim']})", fix="rebuild it with `modelprint fingerprint build`")
        try:
            enc = build_encoder(int(meta["in_dim"]), int(params["hidden"]), int(params["embed_dim"]), int(params["depth"]), float(params["dropout"]))
            enc.load_state_dict({k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")})
        except (KeyError, RuntimeError) as e:
            raise ModelprintError(f"{cls.method} fingerprint encoder does not match its parameters ({e})", fix="rebuild the fingerprint") from None
        extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
        return cls(task, params, threshold, meta, alpha, tensors["x_clean"], tensors["x_adv"], tensors["victim_outputs"], enc, tensors["null_similarities"], extra)


# ---------------------------------------------------------------------------------------------
# the method
# ---------------------------------------------------------------------------------------------
@register_method("uap")
class UAPMethod(Method):
    """UAP fingerprinting (Peng et al., CVPR 2022). Parameters: see :data:`DEFAULTS`."""

    needs_zoo: ClassVar[bool] = True
    fingerprint_cls: ClassVar[Any] = UAPFingerprint  # what load_fingerprint rebuilds
    built_cls: ClassVar[type[UAPFingerprint]] = UAPFingerprint  # what fit returns
    defaults: ClassVar[dict[str, Any]] = DEFAULTS

    def __init__(self, **params: Any) -> None:
        super().__init__(**_validate(params, self.defaults, self.name))

    # -- hooks for the local-perturbation ablation (methods/deepfool.py) -------------------------
    def perturb(self, victim: nn.Module, task: Task, x: torch.Tensor, uap: torch.Tensor, device: str) -> tuple[torch.Tensor, dict[str, Any]]:
        """The perturbed copy of each pool point: here ``clamp(x + v)`` with the victim's UAP ``v``."""
        return task.clamp(x + uap), {}

    def _pool_extra_key(self) -> dict[str, Any]:
        """Parameters of :meth:`perturb` (part of the cache key of the perturbed pool)."""
        return {}

    def _build_pool(self, victim: nn.Module, task: Task, dataset: "Dataset", device: str, seed: int) -> dict[str, Any]:
        """Anchors, pool and UAP (cached per victim/data/parameters, shared by uap and deepfool), then
        the perturbed pool (cached per method)."""
        p = self.params
        x_all = dataset.x_train
        g = torch.Generator().manual_seed(seed)
        sel = torch.randperm(len(x_all), generator=g)[: p["kmeans_samples"]] if len(x_all) > p["kmeans_samples"] else torch.arange(len(x_all))
        xs = x_all[sel].float()
        keys = ("n_anchors", "n_views", "xi", "norm", "target_fooling", "uap_algorithm", "uap_samples", "kmeans_samples")
        paper_key = digest(repr([p[k] for k in keys]), str(seed), _module_digest(victim), xs)
        base_key = paper_key
        if p["anchor_pool"] != "all":  # (keeps the paper's default key, so existing caches stay valid)
            base_key = digest(paper_key, p["anchor_pool"], dataset.y_train[sel])
        if base_key not in _POOL_CACHE and (stored := _load_pool(p["cache_dir"], base_key)) is not None:
            _POOL_CACHE.put(base_key, stored)
        if base_key not in _POOL_CACHE:
            t0 = time.perf_counter()
            reps = representations(victim, xs, device=device)
            anchor_sel = torch.arange(len(xs))
            used = "all"
            if p["anchor_pool"] in ("misclassified", "auto"):
                dev = pick_device(device)
                with torch.no_grad():
                    pred = victim_labels(victim.to(dev), xs, dev)
                wrong = torch.nonzero(pred != dataset.y_train[sel].long()).squeeze(1)
                if p["anchor_pool"] == "misclassified" and len(wrong) < p["n_anchors"]:
                    raise ModelprintError(
                        f"the victim misclassifies only {len(wrong)} of the {len(xs)} sampled training points, fewer than n_anchors={p['n_anchors']}",
                        fix="use anchor_pool=all (or auto), lower n_anchors or raise kmeans_samples",
                    )
                if p["anchor_pool"] == "misclassified" or len(wrong) >= AUTO_MISCLASSIFIED_PER_ANCHOR * p["n_anchors"]:
                    anchor_sel, used = wrong, "misclassified"
            else:
                wrong = None
            pool_idx, cluster = select_anchors(reps[anchor_sel], p["n_anchors"], p["n_views"], seed)
            pool_idx = anchor_sel[pool_idx]
            t_anchor = time.perf_counter() - t0
            # the UAP, on a sample of the training data; its fooling rate is also measured on test data
            uap_x = xs[torch.randperm(len(xs), generator=g)[: p["uap_samples"]]]
            # the UAP does not depend on the anchors: reuse the paper pool's when it is cached
            shared = (_POOL_CACHE.get(paper_key) or _load_pool(p["cache_dir"], paper_key)) if base_key != paper_key else None
            if shared is not None:
                perturbation, uap_info = shared["uap"], {**shared["info"]["uap"], "reused": True}
            else:
                lo, hi = task.low_tensor(), task.high_tensor()
                res = find_uap(victim, uap_x, xi=p["xi"], norm=p["norm"], target=p["target_fooling"], algorithm=p["uap_algorithm"], low=lo, high=hi, seed=seed, device=device)
                if not res.reached:
                    raise ModelprintError(
                        f"the UAP reached only {res.fooling_rate:.1%} fooling rate (target {p['target_fooling']:.0%}) at xi={res.xi:g}",
                        fix="raise xi (or use xi=auto), lower target_fooling, or try uap_algorithm=sgd",
                    )
                xt = dataset.x_test if len(dataset.x_test) else x_all
                victim.to(pick_device(device))
                test_fr = fooling_rate(victim, xt[:2000], res.perturbation, low=lo, high=hi)
                victim.cpu()
                perturbation, uap_info = res.perturbation, {**res.to_dict(), "fooling_rate_test": test_fr}
            _POOL_CACHE.put(base_key, {
                "pool_x": xs[pool_idx.reshape(-1)], "uap": perturbation, "anchor_index": sel[pool_idx[:, 0]],
                "info": {"uap": uap_info, "anchor_seconds": t_anchor, "anchor_pool": used,
                         "misclassified_points": None if wrong is None else int(len(wrong)), "clustered_points": int(len(anchor_sel)),
                         "clusters": p["n_anchors"], "cluster_sizes": np.bincount(cluster.numpy(), minlength=p["n_anchors"]).tolist()},
            })
            _save_pool(p["cache_dir"], base_key, _POOL_CACHE[base_key])
        base = _POOL_CACHE[base_key]
        key = digest(base_key, self.name, repr(self._pool_extra_key()))
        if key not in _POOL_CACHE:
            stored = _load_pool(p["cache_dir"], key)
            if stored is not None:
                _POOL_CACHE.put(key, stored)
        if key not in _POOL_CACHE:
            t1 = time.perf_counter()
            pool_adv, pinfo = self.perturb(victim, task, base["pool_x"], base["uap"], device)
            victim.cpu()
            pool_adv = pool_adv.detach().float().cpu()
            info = {**base["info"], "perturb_seconds": time.perf_counter() - t1, **pinfo}
            _POOL_CACHE.put(key, {**base, "pool_adv": pool_adv, "info": info, "pool_digest": digest(base["pool_x"], pool_adv)})
            _save_pool(p["cache_dir"], key, _POOL_CACHE[key])
        return _POOL_CACHE[key]

    def fit(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None" = None, *, device: str = "auto", seed: int = 0) -> Fingerprint:
        orig = next((q.device for q in victim.parameters()), torch.device("cpu"))
        was_training = victim.training
        try:
            return self._fit(victim, task, dataset, zoo, device=device, seed=seed)
        finally:
            victim.to(orig)
            victim.train(was_training)

    def _fit(self, victim: nn.Module, task: Task, dataset: "Dataset", zoo: "Zoo | None", *, device: str, seed: int) -> Fingerprint:
        t_start = time.perf_counter()
        p = self.params
        if task.kind != "classification":
            raise ModelprintError(f"method {self.name!r} fingerprints classifiers; this task is {task.kind}", fix="use utaf for regression or generation models")
        if zoo is None:
            raise ModelprintError(f"method {self.name!r} trains its encoder on a zoo of piracy and independent models", fix="pass --zoo DIR (build one with `modelprint zoo build`)")
        pos = [m for m in zoo.members if m.label == "positive" and m.family != "victim"]
        neg = [m for m in zoo.members if m.label == "negative"]
        if not pos or not neg:
            raise ModelprintError(f"the zoo's training members need both piracy (positive) and independent (negative) models; got {len(pos)} positive, {len(neg)} negative", path=str(zoo.root), fix="add members of both labels to the zoo")
        if len(dataset.x_train) < p["n_anchors"]:
            raise ModelprintError(f"dataset {dataset.name!r} has {len(dataset.x_train)} training points, fewer than n_anchors={p['n_anchors']}", fix="lower n_anchors")
        seed_everything(seed)
        dev = pick_device(device)
        victim = victim.eval()
        pool = self._build_pool(victim, task, dataset, device, seed)
        # (pools cached before the pool used was recorded are from an explicit anchor_pool)
        pool_used = pool["info"].get("anchor_pool") or ("misclassified" if p["anchor_pool"] == "misclassified" else "all")
        weight_auto = p["agreement_weight"] == "auto"
        if weight_auto:  # the fingerprint stores the weight used, so verification needs no rule
            p = {**p, "agreement_weight": AUTO_AGREEMENT_WEIGHT[pool_used]}
        n, k, C = p["n_anchors"], p["n_views"], task.num_classes
        mode = OutputMode.parse(p["output_mode"])
        x_q = torch.cat([pool["pool_x"], pool["pool_adv"]])
        t_q = time.perf_counter()
        fit_queries = 0

        def feats_of(probs: torch.Tensor) -> torch.Tensor:  # [2*n*k, C] -> [n, k, 2, C] in the mode
            f = mode.from_probs(probs).reshape(2, n, k, C)
            return f.permute(1, 2, 0, 3).contiguous()

        vic_probs, q = _cached_responses(digest(pool["pool_digest"], _module_digest(victim)), p["cache_dir"], lambda: _query_probs(victim, task, x_q, str(dev), "victim"))
        fit_queries += q
        models = [("victim", 0, feats_of(vic_probs))]
        members = pos + neg
        with progress_bar(len(members), f"{self.name}: querying zoo members") as advance:
            for m in members:
                key = digest(pool["pool_digest"], _member_key(zoo, m))

                def compute(m=m):
                    lm = zoo.load(m)
                    return _query_probs(lm.module, task, x_q, str(dev), m.name)

                probs, q = _cached_responses(key, p["cache_dir"], compute)
                fit_queries += q
                models.append((m.name, 0 if m.label == "positive" else 1, feats_of(probs)))
                advance(1, info=m.name)
        # random-init copies of the victim's architecture: the most independent models there are. They
        # only ever train the encoder (like the victim itself), never enter calibration or the null.
        synthetic = []
        for r in range(p["random_negatives"]):
            net = random_init_copy(victim, seed=seed * 7919 + r)
            probs, q = _cached_responses(digest(pool["pool_digest"], _module_digest(net)), p["cache_dir"], lambda net=net, r=r: _query_probs(net, task, x_q, str(dev), f"random-init-{r}"))
            fit_queries += q
            synthetic.append((f"random-init-{r}", 1, feats_of(probs)))
        t_query = time.perf_counter() - t_q
        victim_feats = models[0][2]
        mcount = p["n_fingerprints"]

        def fingerprints_of(f: torch.Tensor) -> torch.Tensor:  # [n, k, 2, C] -> [m, n, 2, C]: view j = neighbour j of each anchor
            return f[:, :mcount].transpose(0, 1)

        def verify_views(f: torch.Tensor) -> torch.Tensor:
            return fingerprints_of(f).reshape(mcount, -1)

        vic_out = fingerprints_of(victim_feats).contiguous()
        vic_views = vic_out.reshape(mcount, -1)
        # -- functional-plausibility floor from the training positives' clean agreement -------------
        view_agree = {name: view_agreements(fingerprints_of(f), vic_out) for name, _, f in models[1:]}  # per fingerprint
        agree = {name: float(a.mean()) for name, a in view_agree.items()}
        pos_agree = [agree[name] for name, lab, _ in models[1:] if lab == 0]
        pos_agree_pct = float(np.percentile(pos_agree, FLOOR_PERCENTILE)) if pos_agree else None
        if p["agreement_floor"] == "off" or not pos_agree:
            floor = None
        elif p["agreement_floor"] == "auto":
            floor = 0.5 * pos_agree_pct
        else:
            floor = float(p["agreement_floor"])

        # -- calibration by cross-fitting -----------------------------------------------------------
        kind = p["encoder_input"]
        t_e = time.perf_counter()
        oof_sims: dict[str, np.ndarray] = {}  # per-fingerprint similarities, each member by an encoder that did not see it

        def score_member(enc: nn.Module, name: str, lab: int, f: torch.Tensor) -> None:
            oof_sims[name] = view_similarities(enc, verify_views(f), vic_views, kind).numpy()
        others = models[1:]
        labels = np.array([lab for _, lab, _ in others])
        folds = min(p["calibration_folds"], int(np.bincount(labels, minlength=2).min()))
        calibration = "cross-fitted" if folds >= 2 else "in-sample"
        if folds >= 2:
            from sklearn.model_selection import StratifiedKFold

            skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            for fi, (tr, te) in enumerate(skf.split(np.zeros(len(labels)), labels)):
                tr_models = [models[0]] + synthetic + [others[i] for i in tr]
                enc = train_encoder([f for _, _, f in tr_models], [lab for _, lab, _ in tr_models], p, seed + 1 + fi, dev, f"{self.name}: calibration fold {fi + 1}/{folds}", victim_feats)
                for i in te:
                    score_member(enc, *others[i])
        everything = models + synthetic
        encoder = train_encoder([f for _, _, f in everything], [lab for _, lab, _ in everything], p, seed, dev, f"{self.name}: encoder", victim_feats)
        if folds < 2:
            for member in others:
                score_member(encoder, *member)
        t_enc = time.perf_counter() - t_e
        lab_of = {name: lab for name, lab, _ in others}
        # per-fingerprint values (the similarity, or its mix with the clean agreement), scores and the null;
        # guarded members never reach the t-test, so they stay out of the null and out of the agreement scale
        plausible = [nm for nm in oof_sims if floor is None or agree[nm] >= floor]
        scale = agreement_scale([float(oof_sims[nm].mean()) for nm in plausible], [agree[nm] for nm in plausible]) if p["agreement_weight"] > 0 else None
        oof_scores: dict[str, float] = {}
        null: list[float] = []
        for nm, s in oof_sims.items():
            values = combine_views(s, view_agree[nm].numpy().astype(float), p["agreement_weight"], scale)
            if nm in plausible:
                oof_scores[nm] = float(values.mean())
                if lab_of[nm] == 1:
                    null.extend(values.tolist())
            else:
                oof_scores[nm] = guarded_score(float(values.mean()), agree[nm])
        pos_scores = np.array([s for nm, s in oof_scores.items() if lab_of[nm] == 0])
        neg_scores = np.array([s for nm, s in oof_scores.items() if lab_of[nm] == 1])
        threshold = calibrate_threshold(pos_scores, neg_scores)
        self_sim = float(view_similarities(encoder, vic_views, vic_views, kind).mean())
        # -- the fingerprint ------------------------------------------------------------------------
        px = pool["pool_x"].reshape(n, k, *task.input_shape)[:, :mcount].transpose(0, 1).contiguous()
        pa = pool["pool_adv"].reshape(n, k, *task.input_shape)[:, :mcount].transpose(0, 1).contiguous()
        meta = {
            "queries_per_suspect": int(mcount * n * 2),
            "score_range": [-1.0, 1.0],
            "in_dim": int(n * 2 * C * (2 if kind == "relative" else 1)),
            "calibration": {
                "kind": calibration, "folds": folds, "oof_auc": roc_auc(list(pos_scores) + list(neg_scores), [1] * len(pos_scores) + [0] * len(neg_scores)) if len(pos_scores) and len(neg_scores) else None,
                "pos_mean": float(pos_scores.mean()) if len(pos_scores) else None, "neg_mean": float(neg_scores.mean()) if len(neg_scores) else None,
                "neg_max": float(neg_scores.max()) if len(neg_scores) else None, "pos_min": float(pos_scores.min()) if len(pos_scores) else None,
                "member_scores": oof_scores,
                "member_similarity": {nm: float(s.mean()) for nm, s in oof_sims.items()},
                "member_agreement": {nm: agree[nm] for nm in oof_sims},
            },
            "agreement_scale": scale,
            "agreement_weight_auto": weight_auto,
            "victim_self_similarity": self_sim,
            "agreement_floor": floor,
            "train_positive_agreement": {"min": min(pos_agree), f"p{FLOOR_PERCENTILE}": pos_agree_pct, "median": float(np.median(pos_agree))} if pos_agree else None,
            "train_members": {"positive": len(pos), "negative": len(neg), "random_init_negatives": len(synthetic)},
            "fit_queries": int(fit_queries),
            "seconds": {"pool": pool["info"]["anchor_seconds"] + pool["info"]["uap"]["seconds"] + pool["info"]["perturb_seconds"], "zoo_queries": t_query, "encoder": t_enc},
            "construction_seconds": time.perf_counter() - t_start,
            "device": str(dev),
            **{k: v for k, v in pool["info"].items() if k not in ("anchor_seconds", "perturb_seconds")},
            "anchor_pool": pool_used,
        }
        extra = {"uap": pool["uap"], "anchor_index": pool["anchor_index"]}
        return self.built_cls(task, dict(p), threshold, meta, p["alpha"], px, pa, vic_out, encoder, torch.tensor(null, dtype=torch.float32), extra)
