"""Zoo transforms for classifiers: piracy (positive) and independent (negative) models of a victim.

Positives — derived from the victim:

* ``extract`` — model extraction through the victim's prediction API (a :class:`~modelprint.suspects.Suspect`
  counting every query). ``output`` is what the API reveals: ``probs`` (soft labels, Knockoff-style;
  family ``extract-soft``), ``topk:K`` (family ``extract-topk``; the K revealed probabilities are
  renormalised to sum to one) or ``label`` (hard labels; family ``extract-label``). The thief queries
  with its own natural data (``query_data``: the part of the training set the victim did *not* see by
  default). ``stop_at_fidelity`` stops training as soon as the copy agrees with the victim on that
  fraction of the evaluation inputs (checked after each epoch): the recovery-rate ablation of the UAP
  paper (§5.5). The check uses the builder's test inputs — a zoo-construction device to hit a chosen
  fidelity, not something the modelled attacker could do.
* ``extract-jbda`` — Jacobian-based dataset augmentation (Papernot et al., AsiaCCS 2017): from a small
  seed set, each substitute epoch adds ``x + λ·sign(∂F_ŷ(x)/∂x)`` for every point, where ``ŷ`` is the
  victim's answer, so the set doubles every round; λ flips sign every ``tau`` rounds (the paper's
  periodic step size). The substitute keeps training across rounds (warm start) instead of restarting.
* ``extract-cloudleak`` — CloudLeak-style extraction (Yu et al., NDSS 2020; the UAP paper's attack):
  natural queries plus adversarial examples crafted against the current substitute (PGD or DeepFool
  from :mod:`modelprint.attacks`), which land near the decision boundary and carry more information
  per query. CloudLeak's FeatureFool attack is replaced by these two attacks (no feature-space target
  set is needed); the query budget is split between natural and adversarial queries.
* ``finetune`` — FTLL / FTAL (fine-tune the last layer / all layers) and RTLL / RTAL (re-initialise
  the last layer, then train it alone / all layers), UTAF's definitions, on the thief's labelled data.
  FT* → family ``finetune``, RT* → ``retrain``.
* ``prune-weight`` — L1 unstructured weight pruning (``torch.nn.utils.prune``) of every Conv2d/Linear
  weight at ``amount`` (per layer or global), optional fine-tuning with the mask held, then made permanent.
* ``prune-filter`` — structured filter pruning with torch-pruning (L1/L2 magnitude importance, the last
  layer kept): the network really shrinks, and is saved as architecture ``pruned`` (base architecture +
  new layer sizes) so it reloads.
* ``quantise`` — post-training INT8 quantisation: architecture ``int8`` (int8 weights + per-channel
  scales in safetensors, static activation quantisation calibrated on thief data); a dequantised float
  copy of the base architecture is saved next to it (``dequantised/``).
* ``distil`` — Hinton distillation (softened teacher logits at ``temperature``) into another
  architecture, by someone holding the white-box victim and training data.
* ``advtrain`` — adversarial training of a stolen copy: each iteration crafts a batch of adversarial
  examples (DeepFool, as the UAP paper §5.4, or PGD) against the current model and trains on the clean
  and adversarial points (labels: the model's own predictions before training, as a thief without
  labels would, or the true labels).
* ``composite`` — a list of steps, each a positive transform applied to the previous step's output
  (e.g. extract → prune-weight → finetune); ``family`` names the family to file it under.

Negatives — independent of the victim:

* ``independent`` — trained from scratch on ground-truth labels, any architecture, optimizer, batch
  size, seed (UAP Table 1).
* ``homologous`` — same, on a training set of the victim's size that overlaps the victim's at rate
  ``overlap`` (UAP appendix C.2).
* ``disjoint`` — trained only on data the victim never saw.
* ``irrelevant`` — trained on another dataset with the same input shape (MNIST for FashionMNIST).
* ``modified-independent`` — an honest model (``base``: independent / homologous / disjoint) that its
  owner then fine-tuned, re-trained, pruned, quantised or adversarially trained (``steps``): negatives
  with the modification artefacts of a modified stolen copy.
* ``extract-independent`` / ``distil-independent`` — an *independent* teacher (trained on data the
  victim did not see), extracted / distilled exactly as the positives are: they must not be flagged.
  Teachers are cached in the build's work directory so several members share one.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
from torch import nn

from ...attacks import deepfool, pgd
from ...device import seed_everything
from ...errors import ModelprintError
from ...nets import build_net
from ...nets.derived import changed_shapes, dequantised, layer_shapes, quantise_int8
from ...suspects.base import TorchSuspect
from ...suspects.modes import OutputMode
from ...train import TrainConfig, last_layer, make_optimizer, predict, train_model
from ..manifest import POSITIVE_FAMILIES
from .base import TRANSFORMS, BuildContext, Built, check_param, register_transform

DATA_SOURCES = ("victim", "disjoint", "all")
FT_MODES = ("FTLL", "FTAL", "RTLL", "RTAL")
N_EVAL_DEFAULT = 2000


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _need_cls(ctx: BuildContext, transform: str) -> None:
    check_param(transform, "task", ctx.task.kind == "classification", "a classification victim/dataset (use the regression or generation transforms otherwise)", ctx.task.kind)


def pool_indices(ctx: BuildContext, source: str) -> torch.Tensor:
    """Training-set indices of a data source: ``victim`` (what the victim saw), ``disjoint`` (the rest), ``all``."""
    n = len(ctx.dataset.x_train)
    vic = ctx.victim_idx.to(torch.int64) if ctx.victim_idx is not None and len(ctx.victim_idx) else torch.arange(n)
    if source == "victim":
        return vic
    if source == "all":
        return torch.arange(n)
    if source == "disjoint":
        mask = torch.ones(n, dtype=torch.bool)
        mask[vic] = False
        comp = mask.nonzero().squeeze(1)
        if len(comp) == 0:
            raise ModelprintError(
                "the victim was trained on the whole training set, so there is no data it did not see",
                fix="train the victim on a fraction of the data (recipe [victim] data_fraction < 1) or use data = \"all\"",
            )
        return comp
    raise ModelprintError(f"unknown data source {source!r}", fix=f"choose one of {DATA_SOURCES}")


def sample_indices(ctx: BuildContext, source: str, n: int | None, seed: int) -> torch.Tensor:
    """``n`` indices drawn without replacement from a source (all of it when ``n`` is None)."""
    pool = pool_indices(ctx, source)
    n = n if n is not None else ctx.default("n_train")
    if n is None or n >= len(pool):
        return pool
    g = torch.Generator().manual_seed(seed)
    return pool[torch.randperm(len(pool), generator=g)[:n]]


def resolve_arch(ctx: BuildContext, arch: str | None, arch_kwargs: dict | None) -> tuple[str, dict]:
    """No ``arch``: the victim's own architecture and sizes. Else the recipe's per-arch defaults
    (``[defaults.arch_kwargs.<arch>]``) updated by the group's ``arch_kwargs``."""
    if arch is None:
        base = ctx.victim_arch_kwargs if ctx.victim_arch not in ("int8",) else {}
        kw = {**base, **(arch_kwargs or {})}
        return ctx.victim_arch, kw
    per_arch = ctx.default("arch_kwargs", {}) or {}
    return arch, {**per_arch.get(arch, {}), **(arch_kwargs or {})}


def new_net(ctx: BuildContext, arch: str, kwargs: dict, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    try:
        return build_net(arch, ctx.task, **kwargs)
    except TypeError as e:
        raise ModelprintError(f"architecture {arch!r} does not take arguments {kwargs} ({e})", fix="fix arch_kwargs in the recipe") from None


def train_cfg(ctx: BuildContext, seed: int, description: str, **over: Any) -> TrainConfig:
    """TrainConfig from the recipe's ``[defaults]`` with per-member overrides (None = default)."""
    kw: dict[str, Any] = {
        "epochs": ctx.default("epochs", 2),
        "batch_size": ctx.default("batch_size", 128),
        "optimizer": ctx.default("optimizer", "adam"),
        "lr": ctx.default("lr"),
    }
    kw.update({k: v for k, v in over.items() if v is not None})
    return TrainConfig(seed=seed, device=str(ctx.device), description=description, progress=False, **kw)


def eval_inputs(ctx: BuildContext) -> torch.Tensor:
    n = ctx.default("n_eval", N_EVAL_DEFAULT)
    return ctx.dataset.x_test[:n]


def agreement(a: nn.Module, b_pred: torch.Tensor, x: torch.Tensor, device: torch.device) -> float:
    return float((predict(a, x, device=device).argmax(1) == b_pred).float().mean())


def _strip(m: dict[str, float]) -> dict[str, float]:
    """Training metrics worth keeping in the manifest."""
    return {k: float(v) for k, v in m.items() if k in ("train_loss", "epochs", "steps") and isinstance(v, (int, float)) and math.isfinite(float(v))}


def targets_from_answers(answers: torch.Tensor, mode: OutputMode) -> torch.Tensor:
    """Training targets from canonical API answers: class ids (label), renormalised probabilities (topk/probs)."""
    if mode.kind == "label":
        return answers.argmax(1)
    s = answers.sum(1, keepdim=True).clamp_min(1e-12)
    return answers / s


def _check_output(transform: str, output: str) -> OutputMode:
    try:
        m = OutputMode.parse(output)
    except ModelprintError:
        m = None
    check_param(transform, "output", m is not None and m.kind in ("probs", "topk", "label"), "probs, topk:K or label", output)
    return m  # type: ignore[return-value]


def extract_family(output: str) -> str:
    m = OutputMode.parse(output)
    return {"probs": "extract-soft", "topk": "extract-topk", "label": "extract-label"}[m.kind]


def _frac(transform: str, key: str, lo: float, hi: float, inclusive_hi: bool = False):
    def chk(params: dict[str, Any]) -> None:
        if key in params and params[key] is not None:
            v = params[key]
            ok = lo < v < hi or (inclusive_hi and v == hi)
            check_param(transform, key, ok, f"a number in ({lo}, {hi}{']' if inclusive_hi else ')'}", v)
    return chk


def _checks(*fns):
    def chk(params: dict[str, Any]) -> None:
        for f in fns:
            f(params)
    return chk


def _choice(transform: str, key: str, choices: tuple[str, ...]):
    def chk(params: dict[str, Any]) -> None:
        if key in params and params[key] is not None:
            check_param(transform, key, params[key] in choices, f"one of {choices}", params[key])
    return chk


def _positive(transform: str, *keys: str):
    def chk(params: dict[str, Any]) -> None:
        for k in keys:
            if k in params and params[k] is not None:
                check_param(transform, k, params[k] > 0, "a positive number", params[k])
    return chk


def _output_chk(transform: str):
    def chk(params: dict[str, Any]) -> None:
        if "output" in params:
            _check_output(transform, params["output"])
    return chk


# ---------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------
def extract_from(
    ctx: BuildContext, teacher: nn.Module, seed: int, transform: str, *, arch: str | None, arch_kwargs: dict | None, output: str,
    n_queries: int | None, query_data: str, epochs: float | None, batch_size: int | None, optimizer: str | None, lr: float | None,
    stop_at_fidelity: float | None, max_epochs: float | None, check_every: float = 0.25,
) -> tuple[nn.Module, str, dict, dict, dict]:
    """Train a fresh student on ``teacher``'s API answers to the thief's natural queries."""
    mode = _check_output(transform, output)
    arch, kw = resolve_arch(ctx, arch, arch_kwargs)
    idx = sample_indices(ctx, query_data, n_queries, seed)
    x = ctx.dataset.x_train[idx]
    api = TorchSuspect(teacher, ctx.task, mode=mode, budget=len(x), name="victim-api", device=ctx.device)
    y = targets_from_answers(api.query(x), mode)
    student = new_net(ctx, arch, kw, seed)
    extra: dict[str, Any] = {"queries": api.queries, "query_data": query_data, "output": str(mode)}
    if stop_at_fidelity is None:
        cfg = train_cfg(ctx, seed, transform, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr)
        tm = train_model(student, x, y, ctx.task, cfg)
        return student, arch, kw, _strip(tm), extra
    epochs = max_epochs if max_epochs is not None else max(20.0, float(epochs or ctx.default("epochs", 2)) * 5)
    cfg = train_cfg(ctx, seed, transform, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr)
    xe = eval_inputs(ctx)
    ref = predict(teacher, xe, device=ctx.device).argmax(1)
    tm, hist = train_until_fidelity(student, x, y, ctx, cfg, stop_at_fidelity, xe, ref, check_every)
    extra.update({"stop_at_fidelity": stop_at_fidelity, "check_every": check_every, "fidelity_history": hist,
                  "reached": bool(hist and hist[-1][1] >= stop_at_fidelity)})
    return student, arch, kw, _strip(tm), extra


def train_until_fidelity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: BuildContext, cfg: TrainConfig, target: float,
                         xe: torch.Tensor, ref: torch.Tensor, check_every: float) -> tuple[dict[str, float], list[tuple[float, float]]]:
    """Train like :func:`modelprint.train.train_model`, checking the agreement with ``ref`` every
    ``check_every`` epochs and stopping at the first check that reaches ``target``. Written here
    because ``train_model`` only calls back at epoch ends, too coarse for a chosen fidelity."""
    from ...device import pick_device
    from ...train import loss_fn, resolve_loss

    dev = pick_device(cfg.device)
    g = seed_everything(cfg.seed)
    model.to(dev).train()
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    kind = resolve_loss(ctx.task, y, cfg.loss)
    n = len(x)
    per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = int(math.ceil(cfg.epochs * per_epoch))
    every = max(1, int(round(check_every * per_epoch)))
    hist: list[tuple[float, float]] = []
    step, last = 0, float("nan")
    while step < total:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(kind, model(x[idx].to(dev)), y[idx].to(dev), cfg.temperature)
            if not torch.isfinite(loss):
                raise ModelprintError(f"training diverged (loss {loss.item()}) at step {step}", fix="lower the learning rate")
            loss.backward()
            opt.step()
            step, last = step + 1, loss.item()
            if step % every == 0 or step == total:
                f = agreement(model, ref, xe, dev)
                model.train()
                hist.append((round(step / per_epoch, 4), f))
                if f >= target or step == total:
                    model.eval().cpu()
                    return {"train_loss": last, "epochs": step / per_epoch, "steps": float(step)}, hist
    model.eval().cpu()
    return {"train_loss": last, "epochs": step / per_epoch, "steps": float(step)}, hist


@register_transform("extract", check=_checks(_output_chk("extract"), _choice("extract", "query_data", DATA_SOURCES), _frac("extract", "stop_at_fidelity", 0.0, 1.0, True), _positive("extract", "n_queries", "epochs", "max_epochs", "check_every")))
def extract(
    ctx: BuildContext, seed: int, arch: str | None = None, arch_kwargs: dict | None = None, output: str = "probs",
    n_queries: int | None = None, query_data: str = "disjoint", epochs: float | None = None, batch_size: int | None = None,
    optimizer: str | None = None, lr: float | None = None, stop_at_fidelity: float | None = None, max_epochs: float | None = None,
    check_every: float = 0.25,
) -> Built:
    """Knockoff-style extraction with soft labels / top-k / hard labels; with ``stop_at_fidelity``,
    training stops at the first check (every ``check_every`` epochs, up to ``max_epochs``) whose
    agreement with the victim reaches it."""
    _need_cls(ctx, "extract")
    s, a, kw, m, extra = extract_from(ctx, ctx.victim, seed, "extract", arch=arch, arch_kwargs=arch_kwargs, output=output, n_queries=n_queries,
                                      query_data=query_data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                                      stop_at_fidelity=stop_at_fidelity, max_epochs=max_epochs, check_every=check_every)
    return Built(s, a, kw, "positive", extract_family(output), m, extra)


def _jacobian_sign(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    """sign(∂ softmax(model(x))[label] / ∂x), batched."""
    model.eval().to(device)
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(device).requires_grad_(True)
        p = torch.softmax(model(xb), 1).gather(1, labels[i : i + batch].to(device)[:, None]).sum()
        g, = torch.autograd.grad(p, xb)
        out.append(g.sign().cpu())
    model.cpu()
    return torch.cat(out)


@register_transform("extract-jbda", check=_checks(_output_chk("extract-jbda"), _choice("extract-jbda", "query_data", DATA_SOURCES), _positive("extract-jbda", "n_seed", "rounds", "step", "tau", "epochs_per_round")))
def extract_jbda(
    ctx: BuildContext, seed: int, arch: str | None = None, arch_kwargs: dict | None = None, output: str = "label",
    n_seed: int = 150, rounds: int = 6, step: float = 0.1, tau: int = 3, epochs_per_round: float = 4.0,
    query_data: str = "disjoint", batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
) -> Built:
    """Papernot et al.'s substitute training with Jacobian-based dataset augmentation."""
    _need_cls(ctx, "extract-jbda")
    mode = _check_output("extract-jbda", output)
    arch, kw = resolve_arch(ctx, arch, arch_kwargs)
    idx = sample_indices(ctx, query_data, n_seed, seed)
    api = TorchSuspect(ctx.victim, ctx.task, mode=mode, name="victim-api", device=ctx.device)
    xs = ctx.dataset.x_train[idx]
    ans = api.query(xs)
    student = new_net(ctx, arch, kw, seed)
    tm: dict[str, float] = {}
    sizes = []
    for r in range(rounds):
        y = targets_from_answers(ans, mode)
        cfg = train_cfg(ctx, seed + r, "extract-jbda", epochs=epochs_per_round, batch_size=batch_size, optimizer=optimizer, lr=lr)
        tm = train_model(student, xs, y, ctx.task, cfg)
        sizes.append(len(xs))
        if r == rounds - 1:
            break
        lam = step * (-1.0) ** (r // tau)
        new = ctx.task.clamp(xs + lam * _jacobian_sign(student, xs, ans.argmax(1), ctx.device))
        xs = torch.cat([xs, new])
        ans = torch.cat([ans, api.query(new)])
    return Built(student, arch, kw, "positive", "extract-jbda", _strip(tm), {"queries": api.queries, "set_sizes": sizes, "output": str(mode), "step": step})


@register_transform("extract-cloudleak", check=_checks(
    _output_chk("extract-cloudleak"), _choice("extract-cloudleak", "attack", ("pgd", "deepfool")), _choice("extract-cloudleak", "query_data", DATA_SOURCES),
    _frac("extract-cloudleak", "adv_fraction", 0.0, 1.0), _positive("extract-cloudleak", "n_queries", "rounds", "eps", "epochs")))
def extract_cloudleak(
    ctx: BuildContext, seed: int, arch: str | None = None, arch_kwargs: dict | None = None, output: str = "probs",
    n_queries: int = 4000, adv_fraction: float = 0.5, rounds: int = 3, attack: str = "pgd", eps: float = 0.1, attack_steps: int = 5,
    epochs: float | None = None, query_data: str = "disjoint", batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
) -> Built:
    """Natural queries first, then adversarial examples of the current substitute as extra queries."""
    _need_cls(ctx, "extract-cloudleak")
    check_param("extract-cloudleak", "rounds", rounds >= 2, "at least 2 (one natural round, then adversarial rounds)", rounds)
    mode = _check_output("extract-cloudleak", output)
    arch, kw = resolve_arch(ctx, arch, arch_kwargs)
    n_nat = max(1, int(round(n_queries * (1 - adv_fraction))))
    n_adv_round = max(1, (n_queries - n_nat) // (rounds - 1))
    idx = sample_indices(ctx, query_data, n_nat, seed)
    xs = ctx.dataset.x_train[idx]
    api = TorchSuspect(ctx.victim, ctx.task, mode=mode, budget=n_nat + n_adv_round * (rounds - 1), name="victim-api", device=ctx.device)
    ans = api.query(xs)
    student = new_net(ctx, arch, kw, seed)
    g = torch.Generator().manual_seed(seed)
    lo, hi = ctx.task.low_tensor(), ctx.task.high_tensor()
    tm: dict[str, float] = {}
    for r in range(rounds):
        cfg = train_cfg(ctx, seed + r, "extract-cloudleak", epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr)
        tm = train_model(student, xs, targets_from_answers(ans, mode), ctx.task, cfg)
        if r == rounds - 1:
            break
        pick = torch.randint(0, n_nat, (n_adv_round,), generator=g)
        student.to(ctx.device)
        if attack == "pgd":
            adv = pgd(student, xs[pick], eps=eps, steps=attack_steps, low=lo.to(ctx.device), high=hi.to(ctx.device), generator=g).cpu()
        else:
            adv = deepfool(student, xs[pick], candidates=min(10, ctx.task.num_classes or 10), overshoot=0.02, max_iter=attack_steps * 4,
                           low=lo.to(ctx.device), high=hi.to(ctx.device)).x_adv.cpu()
        student.cpu()
        xs = torch.cat([xs, adv])
        ans = torch.cat([ans, api.query(adv)])
    return Built(student, arch, kw, "positive", "extract-cloudleak", _strip(tm), {"queries": api.queries, "adv_queries": api.queries - n_nat, "attack": attack, "output": str(mode)})


# ---------------------------------------------------------------------------------------------
# modifications of a (leaked or stolen) copy
# ---------------------------------------------------------------------------------------------
def _copy_source(ctx: BuildContext, transform: str) -> nn.Module:
    if ctx.victim_arch == "int8":
        raise ModelprintError(f"zoo transform {transform!r} cannot modify an int8 model", fix="put quantise last in a composite")
    return copy.deepcopy(ctx.victim).cpu()


def _finetune_model(ctx: BuildContext, model: nn.Module, seed: int, transform: str, mode: str, n_train: int | None, data: str,
                    epochs: float | None, lr: float | None, optimizer: str | None, batch_size: int | None) -> dict[str, float]:
    if mode.startswith("RT"):
        torch.manual_seed(seed)
        last_layer(model).reset_parameters()
    idx = sample_indices(ctx, data, n_train, seed)
    default_lr = 1e-4 if mode.startswith("FT") else 1e-3
    opt = optimizer or "adam"
    cfg = train_cfg(ctx, seed, transform, epochs=epochs, lr=lr if lr is not None else (default_lr if opt == "adam" else None),
                    optimizer=opt, batch_size=batch_size, params="last" if mode.endswith("LL") else "all")
    return train_model(model, ctx.dataset.x_train[idx], ctx.dataset.y_train[idx], ctx.task, cfg)


@register_transform("finetune", check=_checks(_choice("finetune", "mode", FT_MODES), _choice("finetune", "data", DATA_SOURCES), _positive("finetune", "n_train", "epochs", "lr")))
def finetune(
    ctx: BuildContext, seed: int, mode: str = "FTAL", n_train: int | None = None, data: str = "disjoint", epochs: float | None = None,
    lr: float | None = None, optimizer: str | None = None, batch_size: int | None = None,
) -> Built:
    """FTLL / FTAL / RTLL / RTAL on the thief's labelled data (Adam at 1e-4 for FT, 1e-3 for RT by default)."""
    _need_cls(ctx, "finetune")
    model = _copy_source(ctx, "finetune")
    tm = _finetune_model(ctx, model, seed, "finetune", mode, n_train, data, epochs, lr, optimizer, batch_size)
    return Built(model, ctx.victim_arch, dict(ctx.victim_arch_kwargs), "positive", "finetune" if mode.startswith("FT") else "retrain", _strip(tm), {"mode": mode, "data": data})


def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def weight_sparsity(model: nn.Module) -> float:
    ws = [m.weight for m, _ in _prunable(model)]
    return float(sum(int((w == 0).sum()) for w in ws) / max(1, sum(w.numel() for w in ws)))


@register_transform("prune-weight", check=_checks(_frac("prune-weight", "amount", 0.0, 1.0), _choice("prune-weight", "scope", ("layer", "global")),
                                                  _choice("prune-weight", "data", DATA_SOURCES)))
def prune_weight(
    ctx: BuildContext, seed: int, amount: float, scope: str = "layer", finetune_epochs: float = 0.0, n_train: int | None = None,
    data: str = "disjoint", lr: float = 1e-4,
) -> Built:
    """L1 unstructured pruning of every Conv2d/Linear weight (``torch.nn.utils.prune``), made permanent."""
    _need_cls(ctx, "prune-weight")
    model = _copy_source(ctx, "prune-weight")
    params = _prunable(model)
    if scope == "global":
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for m, name in params:
            prune.l1_unstructured(m, name, amount=amount)
    tm: dict[str, float] = {}
    if finetune_epochs > 0:
        idx = sample_indices(ctx, data, n_train, seed)
        tm = train_model(model, ctx.dataset.x_train[idx], ctx.dataset.y_train[idx], ctx.task, train_cfg(ctx, seed, "prune-weight", epochs=finetune_epochs, lr=lr, optimizer="adam"))
    for m, name in params:
        prune.remove(m, name)
    return Built(model, ctx.victim_arch, dict(ctx.victim_arch_kwargs), "positive", "prune-weight", _strip(tm),
                 {"amount": amount, "scope": scope, "sparsity": weight_sparsity(model), "finetune_epochs": finetune_epochs})


class _PReLUStandIn(nn.Module):
    """Holds a single-parameter PReLU out of torch-pruning's dependency graph (it is channel-agnostic,
    but torch-pruning 1.6 mis-tracks flatten→linear through it)."""

    def __init__(self, inner: nn.PReLU):
        super().__init__()
        self.inner = [inner]  # not a registered submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _swap_prelus(model: nn.Module, restore: bool) -> None:
    for name, m in list(model.named_modules()):
        target = None
        if not restore and isinstance(m, nn.PReLU) and m.num_parameters == 1:
            target = _PReLUStandIn(m)
        elif restore and isinstance(m, _PReLUStandIn):
            target = m.inner[0]
        if target is not None:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, target)


@register_transform("prune-filter", check=_checks(_frac("prune-filter", "ratio", 0.0, 1.0), _choice("prune-filter", "importance", ("l1", "l2", "random")),
                                                  _choice("prune-filter", "data", DATA_SOURCES)))
def prune_filter(
    ctx: BuildContext, seed: int, ratio: float, importance: str = "l1", finetune_epochs: float = 0.0, n_train: int | None = None,
    data: str = "disjoint", lr: float = 1e-4,
) -> Built:
    """Remove ``ratio`` of the channels of every prunable layer (torch-pruning; the classifier is kept)."""
    import torch_pruning as tp

    _need_cls(ctx, "prune-filter")
    model = _copy_source(ctx, "prune-filter").eval()
    if ctx.victim_arch == "pruned":
        base, base_kwargs = ctx.victim_arch_kwargs["base"], dict(ctx.victim_arch_kwargs.get("base_kwargs") or {})
    else:
        base, base_kwargs = ctx.victim_arch, dict(ctx.victim_arch_kwargs)
    n_before = sum(p.numel() for p in model.parameters())
    torch.manual_seed(seed)
    imp = tp.importance.RandomImportance() if importance == "random" else tp.importance.MagnitudeImportance(p=1 if importance == "l1" else 2)
    example = torch.zeros((1, *ctx.task.input_shape))
    _swap_prelus(model, restore=False)
    try:
        pruner = tp.pruner.MagnitudePruner(model, example, importance=imp, pruning_ratio=ratio, ignored_layers=[last_layer(model)])
        pruner.step()
    finally:
        _swap_prelus(model, restore=True)
    with torch.no_grad():
        out = model(example)
    if tuple(out.shape[1:]) != tuple(ctx.task.output_shape):
        raise ModelprintError(f"filter pruning broke architecture {ctx.victim_arch!r} (output {tuple(out.shape)})", fix="use prune-weight for this architecture")
    tm: dict[str, float] = {}
    if finetune_epochs > 0:
        idx = sample_indices(ctx, data, n_train, seed)
        tm = train_model(model, ctx.dataset.x_train[idx], ctx.dataset.y_train[idx], ctx.task, train_cfg(ctx, seed, "prune-filter", epochs=finetune_epochs, lr=lr, optimizer="adam"))
    shapes = changed_shapes(layer_shapes(build_net(base, ctx.task, **base_kwargs)), layer_shapes(model))
    n_after = sum(p.numel() for p in model.parameters())
    return Built(model, "pruned", {"base": base, "base_kwargs": base_kwargs, "shapes": shapes}, "positive", "prune-filter", _strip(tm),
                 {"ratio": ratio, "importance": importance, "params_before": n_before, "params_after": n_after, "finetune_epochs": finetune_epochs})


@register_transform("quantise", check=_checks(_choice("quantise", "data", DATA_SOURCES), _positive("quantise", "n_calib"), _frac("quantise", "percentile", 0.0, 100.0, True)))
def quantise(ctx: BuildContext, seed: int, activations: bool = True, n_calib: int = 512, percentile: float = 99.99, data: str = "disjoint") -> Built:
    """Post-training INT8 (per-channel symmetric weights; static activations calibrated on thief data)."""
    _need_cls(ctx, "quantise")
    model = _copy_source(ctx, "quantise").eval()
    calib = ctx.dataset.x_train[sample_indices(ctx, data, n_calib, seed)] if activations else None
    q = quantise_int8(model, calib, percentile)
    deq = dequantised(q, model)
    xe = eval_inputs(ctx)
    same = agreement(deq, predict(q, xe, device=ctx.device).argmax(1), xe, ctx.device)
    kw = {"base": ctx.victim_arch, "base_kwargs": dict(ctx.victim_arch_kwargs)}
    return Built(q, "int8", kw, "positive", "quantise", {}, {
        "activations": activations, "n_calib": n_calib if activations else 0, "percentile": percentile, "dequantised_agreement": same,
        "companions": {"dequantised": Built(deq, ctx.victim_arch, dict(ctx.victim_arch_kwargs), "positive", "quantise")},
    })


def distil_from(ctx: BuildContext, teacher: nn.Module, seed: int, transform: str, *, arch: str | None, arch_kwargs: dict | None, temperature: float,
                data: str, n_train: int | None, epochs: float | None, batch_size: int | None, optimizer: str | None, lr: float | None) -> tuple[nn.Module, str, dict, dict]:
    arch, kw = resolve_arch(ctx, arch, arch_kwargs)
    idx = sample_indices(ctx, data, n_train, seed)
    x = ctx.dataset.x_train[idx]
    soft = torch.softmax(predict(teacher, x, device=ctx.device) / temperature, 1)
    student = new_net(ctx, arch, kw, seed)
    cfg = train_cfg(ctx, seed, transform, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, loss="soft", temperature=temperature)
    tm = train_model(student, x, soft, ctx.task, cfg)
    return student, arch, kw, _strip(tm)


@register_transform("distil", check=_checks(_choice("distil", "data", DATA_SOURCES), _positive("distil", "temperature", "n_train", "epochs")))
def distil(
    ctx: BuildContext, seed: int, arch: str | None = None, arch_kwargs: dict | None = None, temperature: float = 4.0, data: str = "victim",
    n_train: int | None = None, epochs: float | None = None, batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
) -> Built:
    """Hinton et al. knowledge distillation: cross-entropy to softmax(teacher logits / T), scaled by T²."""
    _need_cls(ctx, "distil")
    s, a, kw, m = distil_from(ctx, ctx.victim, seed, "distil", arch=arch, arch_kwargs=arch_kwargs, temperature=temperature, data=data,
                              n_train=n_train, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr)
    return Built(s, a, kw, "positive", "distil", m, {"temperature": temperature, "data": data})


@register_transform("advtrain", check=_checks(_choice("advtrain", "attack", ("deepfool", "pgd")), _choice("advtrain", "labels", ("self", "true")),
                                              _choice("advtrain", "data", DATA_SOURCES), _positive("advtrain", "iterations", "batch_size", "eps", "lr")))
def advtrain(
    ctx: BuildContext, seed: int, attack: str = "deepfool", iterations: int = 100, batch_size: int = 128, eps: float = 0.1, steps: int = 5,
    overshoot: float = 0.02, lr: float = 1e-4, labels: str = "self", data: str = "disjoint", n_train: int | None = None,
) -> Built:
    """Each iteration: ``batch_size`` adversarial examples (DeepFool or PGD) of the current model join the
    clean batch for one optimiser step (the UAP paper §5.4: 128 DeepFool examples per iteration)."""
    _need_cls(ctx, "advtrain")
    model = _copy_source(ctx, "advtrain")
    idx = sample_indices(ctx, data, n_train, seed)
    x = ctx.dataset.x_train[idx]
    y = predict(model, x, device=ctx.device).argmax(1) if labels == "self" else ctx.dataset.y_train[idx]
    g = seed_everything(seed)
    dev = ctx.device
    model.to(dev)
    opt = make_optimizer(model.parameters(), TrainConfig(optimizer="adam", lr=lr))
    lo, hi = ctx.task.low_tensor(dev), ctx.task.high_tensor(dev)
    last, fooled = float("nan"), []
    for it in range(iterations):
        b = torch.randint(0, len(x), (batch_size,), generator=g)
        xb, yb = x[b].to(dev), y[b].to(dev)
        if attack == "deepfool":
            r = deepfool(model, xb, candidates=min(10, ctx.task.num_classes or 10), overshoot=overshoot, max_iter=max(steps, 10), low=lo, high=hi)
            xa = r.x_adv
            fooled.append(float(r.fooled.float().mean()))
        else:
            xa = pgd(model, xb, yb, eps=eps, steps=steps, low=lo, high=hi, generator=g)
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(torch.cat([xb, xa])), torch.cat([yb, yb]))
        if not torch.isfinite(loss):
            raise ModelprintError(f"adversarial training diverged at iteration {it}", fix="lower lr")
        loss.backward()
        opt.step()
        last = loss.item()
    model.eval().cpu()
    extra = {"attack": attack, "iterations": iterations, "batch_size": batch_size, "labels": labels}
    if fooled:
        extra["deepfool_success_first_last"] = [fooled[0], fooled[-1]]
    return Built(model, ctx.victim_arch, dict(ctx.victim_arch_kwargs), "positive", "advtrain", {"train_loss": last}, extra)


def _check_steps(transform: str, steps: Any, allowed: set[str]) -> None:
    check_param(transform, "steps", isinstance(steps, list) and len(steps) >= 1, "a non-empty list of {transform = ..., params = {...}}", steps)
    for i, st in enumerate(steps):
        check_param(transform, f"steps[{i}]", isinstance(st, dict) and isinstance(st.get("transform"), str) and set(st) <= {"transform", "params"},
                    "a table {transform = \"name\", params = {...}}", st)
        name = st["transform"]
        check_param(transform, f"steps[{i}].transform", name in TRANSFORMS and name in allowed, f"one of {sorted(set(TRANSFORMS.names()) & allowed)}", name)
        if name == "quantise":
            check_param(transform, f"steps[{i}]", i == len(steps) - 1, "quantise only as the last step (an int8 model is not trained further)", name)
        TRANSFORMS.get(name).validate(dict(st.get("params") or {}))  # type: ignore[attr-defined]


def _apply_steps(ctx: BuildContext, built: Built | None, seed: int, steps: list, first: int = 0) -> tuple[Built, list[dict], dict[str, float]]:
    """Apply each step to the previous one's model (``built``; the first step sees ``ctx.victim`` when it is None)."""
    history: list[dict] = []
    metrics: dict[str, float] = {}
    for i, st in enumerate(steps, start=first):
        cur = ctx if built is None else dataclasses.replace(ctx, victim=built.module, victim_arch=built.arch, victim_arch_kwargs=built.arch_kwargs)
        built = TRANSFORMS.get(st["transform"])(cur, seed + 1000 * i, **dict(st.get("params") or {}))
        history.append({"transform": st["transform"], "family": built.family, **{k: v for k, v in built.extra.items() if k != "companions"}})
        metrics.update({f"step{i}_{k}": v for k, v in built.metrics.items()})
    assert built is not None
    return built, history, metrics


def _composite_check(params: dict[str, Any]) -> None:
    _check_steps("composite", params.get("steps"), POSITIVE_TRANSFORMS)
    fam = params.get("family", "composite")
    check_param("composite", "family", fam in POSITIVE_FAMILIES and fam != "victim", f"one of {[f for f in POSITIVE_FAMILIES if f != 'victim']}", fam)


@register_transform("composite", check=_composite_check)
def composite(ctx: BuildContext, seed: int, steps: list, family: str = "composite") -> Built:
    """Apply each step to the previous step's output (the first step sees the victim)."""
    _need_cls(ctx, "composite")
    built, history, metrics = _apply_steps(ctx, None, seed, steps)
    extra: dict[str, Any] = {"steps": history}
    if "companions" in built.extra:
        extra["companions"] = built.extra["companions"]
    return Built(built.module, built.arch, built.arch_kwargs, "positive", family, metrics, extra)


#: what an honest owner does to their own model before deploying it
MODIFICATION_TRANSFORMS = {"finetune", "prune-weight", "prune-filter", "quantise", "advtrain"}
HONEST_BASES = ("independent", "homologous", "disjoint")


def _modified_check(params: dict[str, Any]) -> None:
    base = params.get("base")
    check_param("modified-independent", "base", isinstance(base, dict) and base.get("transform") in HONEST_BASES and set(base) <= {"transform", "params"},
                f"a table {{transform = one of {list(HONEST_BASES)}, params = {{...}}}}", base)
    TRANSFORMS.get(base["transform"]).validate(dict(base.get("params") or {}))  # type: ignore[attr-defined]
    _check_steps("modified-independent", params.get("steps"), MODIFICATION_TRANSFORMS)


@register_transform("modified-independent", check=_modified_check)
def modified_independent(ctx: BuildContext, seed: int, base: dict, steps: list) -> Built:
    """An honest model (``base``: independent / homologous / disjoint) that its owner then fine-tuned,
    re-trained, pruned, quantised or adversarially trained (``steps``, applied in order): a negative that
    carries the same modification artefacts as a modified stolen copy, so that a verifier cannot take
    "was modified" for "was copied"."""
    _need_cls(ctx, "modified-independent")
    honest = TRANSFORMS.get(base["transform"])(ctx, seed, **dict(base.get("params") or {}))
    built, history, metrics = _apply_steps(ctx, honest, seed, steps, first=1)
    base_rec = {"transform": base["transform"], "family": honest.family, **honest.extra}
    metrics.update({f"base_{k}": v for k, v in honest.metrics.items()})
    return Built(built.module, built.arch, built.arch_kwargs, "negative", "modified-independent", metrics, {"base": base_rec, "steps": history})


# ---------------------------------------------------------------------------------------------
# negatives
# ---------------------------------------------------------------------------------------------
def train_fresh(ctx: BuildContext, seed: int, transform: str, arch: str | None, arch_kwargs: dict | None, x: torch.Tensor, y: torch.Tensor,
                epochs: float | None, batch_size: int | None, optimizer: str | None, lr: float | None) -> tuple[nn.Module, str, dict, dict]:
    arch, kw = resolve_arch(ctx, arch, arch_kwargs)
    model = new_net(ctx, arch, kw, seed)
    tm = train_model(model, x, y, ctx.task, train_cfg(ctx, seed, transform, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr))
    return model, arch, kw, _strip(tm)


_TRAIN_CHECKS = ("n_train", "epochs", "batch_size", "lr")


@register_transform("independent", check=_checks(_choice("independent", "data", DATA_SOURCES), _choice("independent", "optimizer", ("sgd", "adam", "rmsprop")), _positive("independent", *_TRAIN_CHECKS)))
def independent(
    ctx: BuildContext, seed: int, arch: str | None = None, arch_kwargs: dict | None = None, data: str = "all", n_train: int | None = None,
    epochs: float | None = None, batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
) -> Built:
    """Trained from scratch on ground-truth labels (UAP Table 1: any arch, optimizer, batch size, seed)."""
    _need_cls(ctx, "independent")
    idx = sample_indices(ctx, data, n_train, seed)
    m, a, kw, tm = train_fresh(ctx, seed, "independent", arch, arch_kwargs, ctx.dataset.x_train[idx], ctx.dataset.y_train[idx], epochs, batch_size, optimizer, lr)
    return Built(m, a, kw, "negative", "independent", tm, {"data": data, "n_train": len(idx), "optimizer": optimizer or ctx.default("optimizer", "adam"), "batch_size": batch_size or ctx.default("batch_size", 128)})


def overlap_indices(ctx: BuildContext, overlap: float, n: int, seed: int) -> torch.Tensor:
    vic, comp = pool_indices(ctx, "victim"), pool_indices(ctx, "disjoint")
    k_in = int(round(overlap * n))
    if k_in > len(vic) or n - k_in > len(comp):
        raise ModelprintError(
            f"cannot draw {n} training points overlapping the victim's at {overlap}: the victim saw {len(vic)}, the rest is {len(comp)}",
            fix="lower n_train or the overlap",
        )
    g = torch.Generator().manual_seed(seed)
    return torch.cat([vic[torch.randperm(len(vic), generator=g)[:k_in]], comp[torch.randperm(len(comp), generator=g)[: n - k_in]]])


@register_transform("homologous", check=_checks(_frac("homologous", "overlap", -1e-12, 1.0, True), _choice("homologous", "optimizer", ("sgd", "adam", "rmsprop")), _positive("homologous", *_TRAIN_CHECKS)))
def homologous(
    ctx: BuildContext, seed: int, overlap: float = 0.5, arch: str | None = None, arch_kwargs: dict | None = None, n_train: int | None = None,
    epochs: float | None = None, batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
) -> Built:
    """Trained on a set of the victim's size (or ``n_train``) sharing ``overlap`` of its points with D_v."""
    _need_cls(ctx, "homologous")
    n = n_train if n_train is not None else (ctx.default("n_train") or len(pool_indices(ctx, "victim")))
    idx = overlap_indices(ctx, overlap, n, seed)
    m, a, kw, tm = train_fresh(ctx, seed, "homologous", arch, arch_kwargs, ctx.dataset.x_train[idx], ctx.dataset.y_train[idx], epochs, batch_size, optimizer, lr)
    return Built(m, a, kw, "negative", "homologous", tm, {"overlap": overlap, "n_train": len(idx)})


@register_transform("disjoint", check=_checks(_choice("disjoint", "optimizer", ("sgd", "adam", "rmsprop")), _positive("disjoint", *_TRAIN_CHECKS)))
def disjoint(
    ctx: BuildContext, seed: int, arch: str | None = None, arch_kwargs: dict | None = None, n_train: int | None = None,
    epochs: float | None = None, batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
) -> Built:
    """Trained only on data the victim never saw."""
    _need_cls(ctx, "disjoint")
    idx = sample_indices(ctx, "disjoint", n_train, seed)
    m, a, kw, tm = train_fresh(ctx, seed, "disjoint", arch, arch_kwargs, ctx.dataset.x_train[idx], ctx.dataset.y_train[idx], epochs, batch_size, optimizer, lr)
    return Built(m, a, kw, "negative", "disjoint", tm, {"n_train": len(idx)})


_OTHER_DATA: dict[str, Any] = {}


@register_transform("irrelevant", check=_positive("irrelevant", *_TRAIN_CHECKS))
def irrelevant(
    ctx: BuildContext, seed: int, dataset: str = "mnist", arch: str | None = None, arch_kwargs: dict | None = None, n_train: int | None = None,
    epochs: float | None = None, batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
    fallback: str | None = "digits-28",
) -> Built:
    """Trained on another dataset with the same input shape and number of classes (a different task).
    When ``dataset``'s files are missing, ``fallback`` (default: scikit-learn's digits in 28x28 frames,
    always available) is used instead and the member records which one it was trained on."""
    from ...data import load_dataset
    from ...train import evaluate

    _need_cls(ctx, "irrelevant")
    used = dataset
    if dataset not in _OTHER_DATA:
        try:
            _OTHER_DATA[dataset] = load_dataset(dataset)
        except ModelprintError:
            from ...data import DATASETS

            if not fallback or fallback == dataset or dataset not in DATASETS:  # a typo is an error, not a fallback
                raise
            if fallback not in _OTHER_DATA:
                _OTHER_DATA[fallback] = load_dataset(fallback)
            _OTHER_DATA[dataset] = _OTHER_DATA[fallback]
    other = _OTHER_DATA[dataset]
    used = other.name
    check_param("irrelevant", "dataset", other.task.input_shape == ctx.task.input_shape and other.task.num_classes == ctx.task.num_classes,
                f"a dataset with inputs {ctx.task.input_shape} and {ctx.task.num_classes} classes", dataset)
    n = n_train if n_train is not None else ctx.default("n_train")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(other.x_train), generator=g)[: n or len(other.x_train)]
    m, a, kw, tm = train_fresh(ctx, seed, "irrelevant", arch, arch_kwargs, other.x_train[idx], other.y_train[idx], epochs, batch_size, optimizer, lr)
    own = evaluate(m, other.x_test[: ctx.default("n_eval", N_EVAL_DEFAULT)], other.y_test[: ctx.default("n_eval", N_EVAL_DEFAULT)], other.task, device=ctx.device)["test_acc"]
    extra = {"dataset": used, "own_test_acc": own, "n_train": len(idx)}
    if used != dataset:
        extra["wanted_dataset"] = dataset  # its files were missing: trained on the fallback instead
    return Built(m, a, kw, "negative", "irrelevant", tm, extra)


_TEACHER_KEYS = {"arch", "arch_kwargs", "data", "n_train", "epochs", "batch_size", "optimizer", "lr", "seed"}


def independent_teacher(ctx: BuildContext, teacher: dict | None) -> tuple[nn.Module, dict]:
    """An independently trained classifier (default: the victim's architecture on data it did not see),
    cached under ``ctx.workdir/teachers/<hash>`` so that members sharing a teacher train it once."""
    from ...io import load_model, save_model

    spec = {"data": "disjoint", "seed": 7919, **(teacher or {})}
    unknown = set(spec) - _TEACHER_KEYS
    check_param("extract-independent", "teacher", not unknown, f"a table with keys from {sorted(_TEACHER_KEYS)}", sorted(unknown))
    arch, kw = resolve_arch(ctx, spec.get("arch"), spec.get("arch_kwargs"))
    full = {**spec, "arch": arch, "arch_kwargs": kw, "dataset": ctx.dataset.name, "n_data": len(ctx.dataset.x_train), "defaults": {k: ctx.train_defaults.get(k) for k in ("epochs", "batch_size", "optimizer", "lr", "n_train")}}
    key = hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()[:16]
    d = Path(ctx.workdir) / "teachers" / key
    if (d / "model.json").exists():
        try:
            return load_model(d, check=False).module, full
        except ModelprintError:
            shutil.rmtree(d, ignore_errors=True)
    idx = sample_indices(ctx, spec["data"], spec.get("n_train"), spec["seed"])
    m, a, akw, _ = train_fresh(ctx, spec["seed"], "independent-teacher", arch, kw, ctx.dataset.x_train[idx], ctx.dataset.y_train[idx],
                               spec.get("epochs"), spec.get("batch_size"), spec.get("optimizer"), spec.get("lr"))
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=d.parent, prefix=f".{key}."))
    save_model(m, ctx.task, tmp, a, akw, {"role": "independent teacher", "spec": full})
    try:
        os.replace(tmp, d)
    except OSError:  # another worker finished the same teacher first
        shutil.rmtree(tmp, ignore_errors=True)
    return m, full


@register_transform("extract-independent", check=_checks(_output_chk("extract-independent"), _choice("extract-independent", "query_data", DATA_SOURCES), _positive("extract-independent", "n_queries", "epochs")))
def extract_independent(
    ctx: BuildContext, seed: int, teacher: dict | None = None, arch: str | None = None, arch_kwargs: dict | None = None, output: str = "probs",
    n_queries: int | None = None, query_data: str = "disjoint", epochs: float | None = None, batch_size: int | None = None,
    optimizer: str | None = None, lr: float | None = None,
) -> Built:
    """An extracted copy of an *independent* model: a negative for the victim."""
    _need_cls(ctx, "extract-independent")
    t, spec = independent_teacher(ctx, teacher)
    s, a, kw, m, extra = extract_from(ctx, t, seed, "extract-independent", arch=arch, arch_kwargs=arch_kwargs, output=output, n_queries=n_queries,
                                      query_data=query_data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, stop_at_fidelity=None, max_epochs=None)
    xe = eval_inputs(ctx)
    extra.update({"teacher": spec, "teacher_fidelity": agreement(s, predict(t, xe, device=ctx.device).argmax(1), xe, ctx.device)})
    return Built(s, a, kw, "negative", "extract-independent", m, extra)


@register_transform("distil-independent", check=_checks(_choice("distil-independent", "data", DATA_SOURCES), _positive("distil-independent", "temperature", "n_train", "epochs")))
def distil_independent(
    ctx: BuildContext, seed: int, teacher: dict | None = None, arch: str | None = None, arch_kwargs: dict | None = None, temperature: float = 4.0,
    data: str = "disjoint", n_train: int | None = None, epochs: float | None = None, batch_size: int | None = None, optimizer: str | None = None,
    lr: float | None = None,
) -> Built:
    """A student distilled from an *independent* teacher: a negative for the victim."""
    _need_cls(ctx, "distil-independent")
    t, spec = independent_teacher(ctx, teacher)
    s, a, kw, m = distil_from(ctx, t, seed, "distil-independent", arch=arch, arch_kwargs=arch_kwargs, temperature=temperature, data=data,
                              n_train=n_train, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr)
    xe = eval_inputs(ctx)
    return Built(s, a, kw, "negative", "distil-independent", m, {"teacher": spec, "temperature": temperature,
                                                                  "teacher_fidelity": agreement(s, predict(t, xe, device=ctx.device).argmax(1), xe, ctx.device)})


POSITIVE_TRANSFORMS = {"extract", "extract-jbda", "extract-cloudleak", "finetune", "prune-weight", "prune-filter", "quantise", "distil", "advtrain"}
NEGATIVE_TRANSFORMS = {"independent", "homologous", "disjoint", "irrelevant", "extract-independent", "distil-independent", "modified-independent"}
