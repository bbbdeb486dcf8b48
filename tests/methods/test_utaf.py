"""UTAF (task-agnostic fingerprinting): tiny classifier, regressor and generator zoos, all on CPU."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modelprint.bench.metrics import auc, r_at_full_uniqueness
from modelprint.bench.runner import score_members
from modelprint.errors import ModelprintError
from modelprint.methods import get_method, load_fingerprint
from modelprint.methods.utaf import UTAFEnsemble, UTAFFingerprint, _prepare, adapt_outputs, features, calibrate_threshold, empirical_p_value, fit_platt, platt_score, pruning_mask, relative, train_outputs, verifier_width
from modelprint.suspects import TorchSuspect
from modelprint.suspects.modes import OutputMode
from modelprint.tasks import Task
from modelprint.zoo import Zoo, ZooMember, split_random

FAST = dict(iterations=200, n_inputs=16, eval_every=50, input_lr=0.02)  # quality is asserted with these
QUICK = dict(iterations=60, n_inputs=8, eval_every=20, input_lr=0.02)  # mechanics only


# ------------------------------------------------------------------------------------------------
# tiny classifier / regressor / generator zoos: positives = fine-tuned or weight-perturbed copies of the victim,
# negatives = independently trained nets (other seeds and widths)
# ------------------------------------------------------------------------------------------------
def _build_small_zoo(root, data):
    """Victim + 4 × (fine-tuned copy, weight-perturbed copy, independently trained net) for any task.

    Classifiers use tiny-cnn (independent ones of two widths), regressors and generators an MLP (two
    widths). A generator is trained by regression from fixed random latents onto the real images (in
    [-1, 1]), a different latent pairing per seed, so independent generators differ as GANs do."""
    from modelprint.io import save_model
    from modelprint.nets import build_net
    from modelprint.train import TrainConfig, train_model

    task = data.task
    cls = task.kind == "classification"
    arch = "tiny-cnn" if cls else "mlp"

    def kwargs(i: int) -> dict:
        if cls:
            return {"channels": 8 if i % 2 == 0 else 12}
        return {"hidden": [32] if i % 2 == 0 else [48]}

    def xy(seed: int):
        if task.kind == "generation":
            return task.sample_uniform(len(data.x_train), torch.Generator().manual_seed(seed)), data.x_train * 2 - 1
        return data.x_train, data.y_train

    def tag(kw: dict) -> str:
        return f"{arch}-{next(iter(kw.values()))}".replace("[", "").replace("]", "")

    torch.manual_seed(0)
    vkw = kwargs(0)
    victim = build_net(arch, task, **vkw)
    x, y = xy(0)
    train_model(victim, x, y, task, TrainConfig(epochs=6, batch_size=64, seed=0))
    save_model(victim, task, root / "members" / "victim", arch, vkw)
    Zoo.append(root, ZooMember("victim", "positive", "victim", "victim", tag(vkw), "members/victim", vkw))
    for i in range(4):
        ft = copy.deepcopy(victim)
        train_model(ft, x[i * 100 : (i + 1) * 100], y[i * 100 : (i + 1) * 100], task, TrainConfig(epochs=2, batch_size=32, lr=1e-3, seed=10 + i))
        nz = copy.deepcopy(victim)
        gen = torch.Generator().manual_seed(20 + i)
        with torch.no_grad():
            for p in nz.parameters():
                p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=gen))
        torch.manual_seed(30 + i)
        ikw = kwargs(i)
        ind = build_net(arch, task, **ikw)
        xi, yi = xy(30 + i)
        train_model(ind, xi, yi, task, TrainConfig(epochs=6, batch_size=64, seed=30 + i, optimizer="sgd" if cls and i % 2 else "adam"))
        for name, net, label, fam, kw in (
            (f"ft-{i}", ft, "positive", "finetune", vkw),
            (f"nz-{i}", nz, "positive", "prune-weight", vkw),
            (f"ind-{i}", ind, "negative", "independent", ikw),
        ):
            save_model(net, task, root / "members" / name, arch, kw)
            Zoo.append(root, ZooMember(name, label, fam, fam, tag(kw), f"members/{name}", kw))
    return Zoo.open(root)


@pytest.fixture(scope="module")
def small_cls_zoo(tmp_path_factory, cls_data):
    return cls_data, _build_small_zoo(tmp_path_factory.mktemp("utaf_cls_zoo"), cls_data)


@pytest.fixture(scope="module")
def reg_zoo(tmp_path_factory):
    from modelprint.data import load_dataset

    data = load_dataset("synthetic-reg", n_train=600, n_test=100)
    return data, _build_small_zoo(tmp_path_factory.mktemp("utaf_reg_zoo"), data)


@pytest.fixture(scope="module")
def gen_zoo(tmp_path_factory):
    from modelprint.data import load_dataset

    data = load_dataset("synthetic-gen", n_train=600, n_test=100)
    return data, _build_small_zoo(tmp_path_factory.mktemp("utaf_gen_zoo"), data)


def _fit_and_score(data, zoo, mode: str, **params):
    train, test = split_random(zoo, 0.5, 0)
    lm = zoo.load("victim")
    fp = get_method("utaf", **{**FAST, **params}).fit(lm.module, lm.task, data, train, device="cpu", seed=0)
    scores = score_members(fp, zoo, test.members, mode)
    s = np.array([m.score for m in scores])
    y = np.array([m.label == "positive" for m in scores], dtype=int)
    return fp, s, y


# ------------------------------------------------------------------------------------------------
# separation on held-out members, for every task kind
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["probs", "label"])
def test_classifier_fingerprint_separates_heldout_members(small_cls_zoo, mode):
    # two training negatives only: weight-noise model augmentation keeps the verifier from memorising them
    data, zoo = small_cls_zoo
    fp, s, y = _fit_and_score(data, zoo, mode, output_mode=mode, weight_noise=1.0)
    assert auc(s, y) == 1.0 and r_at_full_uniqueness(s, y) == 1.0, (mode, s, y)
    assert fp.queries_per_suspect == FAST["n_inputs"] and fp.meta["score_range"] == [0.0, 1.0]
    assert s[y == 1].min() > 0.5  # every held-out thief is flagged at the default threshold


@pytest.mark.parametrize("kind", ["regression", "generation"])
def test_regressor_and_generator_fingerprints_separate_heldout_members(kind, reg_zoo, gen_zoo):
    data, zoo = reg_zoo if kind == "regression" else gen_zoo
    fp, s, y = _fit_and_score(data, zoo, "raw")
    assert fp.mode.kind == "raw" and fp.task.kind == kind
    assert auc(s, y) == 1.0, s
    assert s[y == 1].min() > 0.5 > s[y == 0].max(), s  # decided right at the default threshold


def test_inputs_stay_inside_the_domain(reg_zoo, gen_zoo, tiny_zoo, cls_data):
    # a per-feature box, much narrower than the data: the fingerprint must respect it
    data, zoo = reg_zoo
    lm = zoo.load("victim")
    lo = tuple(-0.5 + 0.1 * i for i in range(8))
    hi = tuple(0.5 + 0.2 * i for i in range(8))
    box = Task("regression", lm.task.input_shape, lm.task.output_shape, lo, hi)
    fp = get_method("utaf", **{**QUICK, "input_lr": 0.2}).fit(lm.module, box, data, Zoo.open(zoo.root), device="cpu")
    x = fp.inputs
    assert (x >= box.low_tensor()).all() and (x <= box.high_tensor()).all()
    assert x.min(0).values.sub(box.low_tensor()).abs().min() < 0.05  # a large input lr pushes inputs to the walls
    for d, z in ((gen_zoo[0], gen_zoo[1]), (cls_data, tiny_zoo)):
        v = z.load("victim")
        fp = get_method("utaf", **{**QUICK, "input_lr": 0.2}).fit(v.module, v.task, d, z, device="cpu")
        assert (fp.inputs >= v.task.low_tensor()).all() and (fp.inputs <= v.task.high_tensor()).all()


def test_victim_dist_is_per_input_distance():
    """victim-dist: one number per fingerprint input; for one-hot labels twice the disagreement."""
    ref = F.one_hot(torch.tensor([0, 1, 2]), 4).float()
    sus = F.one_hot(torch.tensor([[0, 1, 2], [0, 3, 3]]), 4).float()
    d = relative(sus.reshape(2, -1), ref.reshape(-1), "victim-dist", 3)
    assert d.shape == (2, 3) and d.tolist() == [[0.0, 0.0, 0.0], [0.0, 2.0, 2.0]]
    assert relative(sus[1].reshape(-1), ref.reshape(-1), "victim-dist", 3).tolist() == [0.0, 2.0, 2.0]
    assert verifier_width(3, 4, "victim-dist") == 3 and verifier_width(3, 4, "victim-sq") == 12


# ------------------------------------------------------------------------------------------------
# artifact, decisions, output modes
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reference", ["victim-sq", "victim-dist"])
def test_save_load_verify_is_identical(tmp_path, cls_data, tiny_zoo, reference):
    train, test = split_random(tiny_zoo, 0.5, 0)
    lm = tiny_zoo.load("victim")
    fp = get_method("utaf", **QUICK, output_mode="label", reference=reference).fit(lm.module, lm.task, cls_data, train, device="cpu")
    fp.save(tmp_path / "fp")
    doc = json.loads((tmp_path / "fp" / "fingerprint.json").read_text())
    assert doc["method"] == "utaf" and doc["params"]["output_mode"] == "label"
    fp2 = load_fingerprint(tmp_path / "fp")
    assert isinstance(fp2, UTAFFingerprint)
    for k, v in fp.tensors().items():
        assert torch.equal(v, fp2.tensors()[k]), k
    for m in test.members:
        sus = tiny_zoo.load(m)
        v1 = fp.verify(TorchSuspect(sus.module, sus.task, mode="label", name=m.name))
        v2 = fp2.verify(TorchSuspect(sus.module, sus.task, mode="label", name=m.name))
        assert v1.score == v2.score and v1.decision == v2.decision and v1.evidence == v2.evidence and v1.p_value == v2.p_value
        assert v1.queries == QUICK["n_inputs"]


def test_ensemble_averages_independent_fits_and_round_trips(tmp_path, cls_data, tiny_zoo):
    """ensemble=2: the two members are the fits of seeds 0 and 1000, the suspect answers both input sets
    in one batch, the score is the mean p+, and save -> load -> verify is identical."""
    train, test = split_random(tiny_zoo, 0.5, 0)
    lm = tiny_zoo.load("victim")
    ens = get_method("utaf", **QUICK, ensemble=2, target_fpr=0.0).fit(lm.module, lm.task, cls_data, train, device="cpu", seed=0)
    assert isinstance(ens, UTAFEnsemble) and ens.queries_per_suspect == 2 * QUICK["n_inputs"] and len(ens.members) == 2
    one = get_method("utaf", **QUICK).fit(lm.module, lm.task, cls_data, train, device="cpu", seed=1000)
    assert torch.equal(ens.members[1].inputs, one.inputs)  # member k = the plain fit of seed + 1000 k
    assert len(ens.calib_negatives) == len(train.negatives) and ens.threshold > float(ens.calib_negatives.max())
    ens.save(tmp_path / "fp")
    back = load_fingerprint(tmp_path / "fp")
    assert isinstance(back, UTAFEnsemble) and back.params["ensemble"] == 2
    for m in test.members:
        sus = tiny_zoo.load(m)
        v1 = ens.verify(TorchSuspect(sus.module, sus.task, name=m.name))
        v2 = back.verify(TorchSuspect(sus.module, sus.task, name=m.name))
        assert (v1.score, v1.decision, v1.evidence, v1.p_value) == (v2.score, v2.decision, v2.evidence, v2.p_value)
        parts = v1.details["ensemble_p_positive"]
        assert v1.queries == 2 * QUICK["n_inputs"] and v1.score == pytest.approx(sum(parts) / 2, abs=1e-6)
        alone = one.verify(TorchSuspect(sus.module, sus.task, name=m.name)).score
        assert parts[1] == pytest.approx(alone, abs=1e-6)
    with pytest.raises(ModelprintError, match="ensemble"):
        get_method("utaf", ensemble=0)


def test_label_fingerprint_accepts_richer_outputs_and_probs_one_refuses_labels(cls_data, tiny_zoo):
    train, test = split_random(tiny_zoo, 0.5, 0)
    lm = tiny_zoo.load("victim")
    fp = get_method("utaf", **QUICK, output_mode="label").fit(lm.module, lm.task, cls_data, train, device="cpu")
    m = tiny_zoo.load(test.members[0])
    by_label = fp.verify(TorchSuspect(m.module, m.task, mode="label")).score
    by_probs = fp.verify(TorchSuspect(m.module, m.task, mode="probs")).score
    assert by_label == by_probs  # probabilities reveal the label; the fingerprint reduces them itself
    fp_probs = get_method("utaf", **QUICK).fit(lm.module, lm.task, cls_data, train, device="cpu")
    with pytest.raises(ModelprintError, match="output-mode probs"):
        fp_probs.verify(TorchSuspect(m.module, m.task, mode="label"))
    y = torch.softmax(torch.randn(5, 4), 1)
    assert torch.equal(adapt_outputs(y, OutputMode("probs"), OutputMode.parse("topk:2"), lm.task), OutputMode.parse("topk:2").from_probs(y))


def test_label_surrogates_are_exact_forward_and_differentiable():
    task = Task("classification", (3,), (4,), num_classes=4)
    logits = torch.randn(6, 4, requires_grad=True)
    st = train_outputs(logits, task, OutputMode("label"), "straight-through", 1.0)
    assert torch.equal(st.detach(), OutputMode("label").from_logits(logits.detach()))  # forward: the exact one-hot
    (st * torch.randn(6, 4)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0  # backward: softmax gradient
    logits.grad = None
    sm = train_outputs(logits, task, OutputMode("label"), "softmax", 0.1)
    assert torch.allclose(sm.sum(1), torch.ones(6)) and (sm.detach().argmax(1) == logits.argmax(1)).all()
    (sm * torch.randn(6, 4)).sum().backward()
    assert logits.grad.abs().sum() > 0
    hard = OutputMode("label").from_logits(logits)
    assert not hard.requires_grad  # the reason a surrogate is needed


def test_threshold_calibration_and_p_values(cls_data, tiny_zoo):
    neg = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    thr = calibrate_threshold(neg, 0.2)  # one of five negatives may score above
    assert 0.4 < thr <= 0.9 and (neg >= thr).mean() <= 0.2
    assert calibrate_threshold(neg, 0.0) > 0.9
    assert empirical_p_value(0.95, torch.tensor(neg)) == pytest.approx(1 / 6)
    lm = tiny_zoo.load("victim")
    fp = get_method("utaf", **QUICK, output_mode="label", early_stop="random", target_fpr=0.0).fit(lm.module, lm.task, cls_data, tiny_zoo, device="cpu")
    assert fp.meta["calibration"] == "validation negatives" and fp.meta["n_validation"] >= 2
    assert fp.threshold > float(fp.calib_negatives.max())
    assert 1 <= fp.meta["best_iteration"] <= fp.meta["iterations_run"]
    # Platt scaling: monotone, fitted on held-out members, refuses to invert a ranking
    ab = fit_platt(np.array([-3.0, -1.0, 0.5, 2.0, 4.0]), np.array([0, 0, 1, 1, 1]))
    assert ab is not None and ab[0] > 0
    s = platt_score(np.array([-2.0, 0.0, 2.0]), ab)
    assert (np.diff(s) > 0).all() and platt_score(0.0, (1.0, 0.0)) == pytest.approx(0.5)
    assert fit_platt(np.array([3.0, 1.0, -1.0, -2.0]), np.array([0, 0, 1, 1])) is None
    fp = get_method("utaf", **QUICK, output_mode="label", calibrate="platt").fit(lm.module, lm.task, cls_data, tiny_zoo, device="cpu")
    assert fp.meta["validation"].startswith("random") and fp.meta["iterations_run"] == QUICK["iterations"]
    assert fp.meta["score_calibration"].startswith(("platt", "skipped")) and torch.equal(fp.tensors()["platt"], torch.tensor(fp.platt))


def test_early_stopping_on_a_held_out_family_and_batched_variant(cls_data, tiny_zoo):
    lm = tiny_zoo.load("victim")
    before = copy.deepcopy(lm.module.state_dict())
    fp = get_method("utaf", **QUICK, output_mode="label", early_stop="family", val_family="extract-soft", models_per_step=3, weight_noise=0.1, dropout=0.2, weight_decay=1e-3).fit(lm.module, lm.task, cls_data, tiny_zoo, device="cpu")
    assert fp.meta["validation"] == "family:extract-soft"
    assert fp.meta["n_train_positive"] == 4  # the fine-tuned copies only; the extracted ones validate
    assert all("val_aruc" in h for h in fp.meta["history"])
    assert all(torch.equal(before[k], v) for k, v in lm.module.state_dict().items())  # weight noise never touches models


def test_pruning_mask_zeroes_the_smallest_weights():
    w = torch.tensor([[0.5, -0.1, 2.0], [-3.0, 0.2, 0.05]])
    assert torch.equal(pruning_mask(w, 0.5), torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert torch.equal(pruning_mask(w, 0.05), torch.ones_like(w))  # round(0.05 · 6) = 0 weights: nothing pruned
    assert torch.equal(pruning_mask(w, 0.1), torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]))  # round(0.6) = 1
    big = torch.randn(50, 40, generator=torch.Generator().manual_seed(0))
    kept = pruning_mask(big, 0.7)
    assert int(kept.sum()) == 600 and float(big.abs()[kept == 0].max()) <= float(big.abs()[kept == 1].min())


def test_prune_augmentation_matches_pruning_by_hand_and_changes_the_fit(reg_zoo):
    data, zoo = reg_zoo
    lm = zoo.load("victim")
    m = _prepare(copy.deepcopy(lm.module), "victim", 1, "victim", lm.task, torch.device("cpu"), "victim")
    before = {k: v.clone() for k, v in m.module.state_dict().items()}
    x = data.x_test[:32].float()
    plain, pruned = m.forward(x), m.forward(x, prune=0.8)
    by_hand = copy.deepcopy(m.module)
    with torch.no_grad():
        for q in by_hand.parameters():
            if q.dim() >= 2:
                q.mul_(pruning_mask(q, 0.8))
    assert torch.allclose(pruned, by_hand(x), atol=1e-6) and not torch.allclose(plain, pruned)
    assert all(torch.equal(before[k], v) for k, v in m.module.state_dict().items())  # the module itself is untouched
    fp = get_method("utaf", **QUICK, prune_augment=0.5, weight_noise=0.1).fit(lm.module, lm.task, data, zoo, device="cpu", seed=0)
    plain_fp = get_method("utaf", **QUICK, weight_noise=0.1).fit(lm.module, lm.task, data, zoo, device="cpu", seed=0)
    assert fp.params["prune_augment"] == 0.5 and np.isfinite(fp.meta["history"][-1]["loss"])
    assert not torch.equal(fp.inputs, plain_fp.inputs)  # the augmentation reaches the fit


def test_log_probabilities_separate_heldout_members_and_round_trip(tmp_path, small_cls_zoo, reg_zoo):
    # the transform: a thousandfold change in a small probability moves the feature, in probs it does not
    mode = OutputMode.parse("probs")
    a, b = torch.tensor([[1 - 1e-5, 1e-5]]), torch.tensor([[1 - 1e-2, 1e-2]])
    assert (features(b, mode, 0, 1) - features(a, mode, 0, 1)).abs().max() < 0.011
    assert (features(b, mode, 0, 1, "log") - features(a, mode, 0, 1, "log")).abs().max() > 6.9
    assert float(features(torch.tensor([[1.0, 0.0]]), mode, 0, 1, "log")[1]) == pytest.approx(float(np.log(1e-6)))
    data, zoo = small_cls_zoo
    fp, s, y = _fit_and_score(data, zoo, "probs", output_mode="probs", weight_noise=1.0, prob_transform="log")
    assert auc(s, y) == 1.0 and s[y == 1].min() > 0.5, s
    assert fp.out_std != 1.0  # standardised by the victim's log-probability statistics
    fp.save(tmp_path / "fp")
    fp2 = load_fingerprint(tmp_path / "fp")
    assert fp2.params["prob_transform"] == "log"
    for m in zoo.members[:4]:
        sus = zoo.load(m)
        v1, v2 = (f.verify(TorchSuspect(sus.module, sus.task, mode="probs", name=m.name)) for f in (fp, fp2))
        assert v1.score == v2.score and v1.decision == v2.decision
    with pytest.raises(ModelprintError, match="prob_transform"):
        get_method("utaf", prob_transform="sqrt")
    lm = zoo.load("victim")
    with pytest.raises(ModelprintError, match="probability outputs"):
        get_method("utaf", **QUICK, output_mode="label", prob_transform="log").fit(lm.module, lm.task, data, zoo, device="cpu")
    rdata, rzoo = reg_zoo
    rv = rzoo.load("victim")
    with pytest.raises(ModelprintError, match="probability outputs"):
        get_method("utaf", **QUICK, prob_transform="log").fit(rv.module, rv.task, rdata, rzoo, device="cpu")


def test_presets_fill_in_the_measured_settings_and_explicit_parameters_win(tmp_path, reg_zoo):
    from modelprint.methods.utaf import DEFAULTS, PRESETS

    assert get_method("utaf").params == DEFAULTS  # the paper unless asked
    m = get_method("utaf", preset="regression", iterations=40)
    for key, value in PRESETS["regression"].items():
        assert m.params[key] == (40 if key == "iterations" else value), key
    assert m.params["preset"] == "regression" and m.params["shuffle_negatives"] == 0.5
    gen = get_method("utaf", preset="generation")
    assert gen.params["output_scale"] == "std-dim" and gen.params["iterations"] == 300
    data, zoo = reg_zoo
    lm = zoo.load("victim")
    fp = get_method("utaf", **QUICK, preset="regression").fit(lm.module, lm.task, data, zoo, device="cpu", seed=0)
    fp.save(tmp_path / "fp")
    doc = json.loads((tmp_path / "fp" / "fingerprint.json").read_text())
    assert doc["params"]["preset"] == "regression" and doc["params"]["reference"] == "victim-sq" and doc["params"]["iterations"] == QUICK["iterations"]
    for bad in ("warfarin", ["regression"]):
        with pytest.raises(ModelprintError, match="preset"):
            get_method("utaf", preset=bad)
    with pytest.raises(ModelprintError, match="preset=regression"):  # a preset for another task kind
        get_method("utaf", **QUICK, preset="generation").fit(lm.module, lm.task, data, zoo, device="cpu")


def test_bad_inputs_give_clear_errors(cls_data, tiny_zoo, tmp_path):
    lm = tiny_zoo.load("victim")
    with pytest.raises(ModelprintError, match="unknown utaf parameter"):
        get_method("utaf", n_input=10)
    with pytest.raises(ModelprintError, match="surrogate"):
        get_method("utaf", surrogate="gumbel")
    for bad in (1.0, -0.1, True, "half"):
        with pytest.raises(ModelprintError, match="prune_augment"):
            get_method("utaf", prune_augment=bad)
    for key, bad in (("shuffle_negatives", 1.5), ("dropout", 1.0), ("threshold", -0.2), ("threshold", "high")):
        with pytest.raises(ModelprintError, match=key):
            get_method("utaf", **{key: bad})
    with pytest.raises(ModelprintError, match="zoo"):
        get_method("utaf").fit(lm.module, lm.task, cls_data, None)
    only_pos = tiny_zoo.subset(tiny_zoo.positives)
    with pytest.raises(ModelprintError, match="needs both"):
        get_method("utaf", **QUICK).fit(lm.module, lm.task, cls_data, only_pos, device="cpu")
    other = copy.deepcopy(lm.module)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    with pytest.raises(ModelprintError, match="different victim"):
        get_method("utaf", **QUICK).fit(other, lm.task, cls_data, tiny_zoo, device="cpu")
    with pytest.raises(ModelprintError, match="regression"):
        get_method("utaf", output_mode="label").fit(lm.module, Task("regression", (1, 8, 8), (4,)), cls_data, tiny_zoo)


def test_cli_build_and_verify(tmp_path, tiny_zoo):
    from typer.testing import CliRunner

    from modelprint.cli import app

    r = CliRunner().invoke(app, ["fingerprint", "build", "--method", "utaf", "--victim", str(tiny_zoo.root / "members" / "victim"), "--dataset", "synthetic-cls", "--zoo", str(tiny_zoo.root), "--out", str(tmp_path / "fp"), "--param", "iterations=40", "--param", "n_inputs=8", "--param", "output_mode=label", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    _, test = split_random(tiny_zoo, 0.5, 0)
    sus = [str(tiny_zoo.root / m.path) for m in test.members[:2]]
    r = CliRunner().invoke(app, ["verify", "--fingerprint", str(tmp_path / "fp"), "--json", *sus])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and all(row["method"] == "utaf" and row["queries"] == 8 and 0 <= row["score"] <= 1 for row in rows)


def test_misclassified_init(cls_data, tiny_zoo, reg_zoo):
    """init=misclassified starts the fingerprint from training points the victim gets wrong."""
    train, _ = split_random(tiny_zoo, 0.5, 0)
    lm = tiny_zoo.load("victim")
    fp = get_method("utaf", **{**QUICK, "iterations": 1, "lr": 1e-9, "input_lr": 1e-9}, init="misclassified").fit(lm.module, lm.task, cls_data, train, device="cpu")
    x = fp.inputs.reshape(len(fp.inputs), -1).float()
    d = torch.cdist(x, cls_data.x_train.reshape(len(cls_data.x_train), -1).float())
    nearest = d.argmin(1)
    assert d.min(1).values.max() < 1e-2  # each input is a training point (up to the tanh round trip)
    with torch.no_grad():
        pred = lm.module.eval()(cls_data.x_train[nearest].float()).argmax(-1)
    assert (pred != cls_data.y_train[nearest]).float().mean() > 0.5
    data, zoo = reg_zoo
    v = zoo.load("victim")
    with pytest.raises(ModelprintError, match="classifier"):
        get_method("utaf", **QUICK, init="misclassified").fit(v.module, v.task, data, Zoo.open(zoo.root), device="cpu")


def test_output_scale_std_dim(gen_zoo):
    """output_scale=std-dim divides raw outputs by sqrt(outputs per query) as well as by their std."""
    data, zoo = gen_zoo
    v = zoo.load("victim")
    a = get_method("utaf", **{**QUICK, "iterations": 2}).fit(v.module, v.task, data, Zoo.open(zoo.root), device="cpu")
    b = get_method("utaf", **{**QUICK, "iterations": 2}, output_scale="std-dim").fit(v.module, v.task, data, Zoo.open(zoo.root), device="cpu")
    d = int(np.prod(v.task.output_shape))
    assert b.out_std == pytest.approx(a.out_std * d ** 0.5, rel=1e-5)
    with pytest.raises(ModelprintError, match="output_scale"):
        get_method("utaf", output_scale="max")


# ------------------------------------------------------------------------------------------------
# distance guard
# ------------------------------------------------------------------------------------------------
class _Negated(torch.nn.Module):
    """A 'generator' whose images are the victim's negated: far from every thief the verifier saw."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return -self.inner(x)


def test_distance_guard_scores_far_suspects_independent(tmp_path, gen_zoo):
    data, zoo = gen_zoo
    train, test = split_random(zoo, 0.5, 0)
    lm = zoo.load("victim")
    assert get_method("utaf").params["distance_guard"] == 1.0 and get_method("utaf", distance_guard="off").params["distance_guard"] is None
    plain = get_method("utaf", **FAST, distance_guard=None).fit(lm.module, lm.task, data, train, device="cpu", seed=0)
    fp = get_method("utaf", **FAST, distance_guard=1.5).fit(lm.module, lm.task, data, train, device="cpu", seed=0)
    g = fp.meta["distance_guard"]
    assert plain.meta["distance_guard"] is None and plain.victim_features is None
    assert g["factor"] == 1.5 and g["ceiling"] == pytest.approx(1.5 * max(g["max_positive_distance"], g["max_negative_distance"])) and g["max_positive_distance"] > 0
    # within the guard the score is the plain verifier's (same seed, same fit)
    for m in test.members:
        sus = zoo.load(m)
        v, v0 = fp.verify(TorchSuspect(sus.module, sus.task, mode="raw", name=m.name)), plain.verify(TorchSuspect(sus.module, sus.task, mode="raw", name=m.name))
        assert "guard" in v.details and "guard" not in v0.details
        if not v.details["guard"]["guarded"]:
            assert v.score == pytest.approx(v0.score)
    far = TorchSuspect(_Negated(lm.module), lm.task, mode="raw", name="negated")
    v = fp.verify(far)
    assert v.details["guard"]["guarded"] and v.decision == "independent" and v.score <= 1e-3
    assert "further from the victim" in v.details["note"]
    fp.save(tmp_path / "fp")
    fp2 = load_fingerprint(tmp_path / "fp")
    assert torch.equal(fp2.victim_features, fp.victim_features) and fp2.verify(far).score == v.score
    with pytest.raises(ModelprintError, match="distance_guard"):
        get_method("utaf", distance_guard=0)
