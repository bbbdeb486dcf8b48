"""Classification zoo transforms on tiny-cnn / synthetic-cls: each builds a member of the right kind."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modelprint.errors import ModelprintError

CHANCE = 0.25  # synthetic-cls has 4 balanced classes


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared, oversubscribed CPU two spinning threads run ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def victim_idx(cls_data):
    g = torch.Generator().manual_seed(0)
    return torch.randperm(len(cls_data.x_train), generator=g)[: len(cls_data.x_train) // 2]


@pytest.fixture(scope="module")
def tiny_victim(cls_data, victim_idx, _one_thread):
    """A tiny-cnn trained on half of synthetic-cls (D_v), as the zoo builder's victims are."""
    from modelprint.nets import build_net
    from modelprint.train import TrainConfig, train_model

    net = build_net("tiny-cnn", cls_data.task)
    m = train_model(net, cls_data.x_train[victim_idx], cls_data.y_train[victim_idx], cls_data.task, TrainConfig(epochs=8, batch_size=32, seed=0, progress=False),
                    x_test=cls_data.x_test, y_test=cls_data.y_test)
    assert m["test_acc"] > 0.8
    return net


@pytest.fixture(scope="module")
def cls_ctx_factory(cls_data, tiny_victim, victim_idx, tmp_path_factory):
    from modelprint.zoo.transforms import BuildContext

    work = tmp_path_factory.mktemp("work")
    vidx = victim_idx

    def make(**defaults):
        d = {"epochs": 3, "batch_size": 32, "n_eval": 400, **defaults}
        return BuildContext(tiny_victim, "tiny-cnn", {}, cls_data.task, cls_data, vidx, torch.device("cpu"), work, d)

    return make


@pytest.fixture(scope="module")
def victim_pred(cls_data, tiny_victim):
    from modelprint.train import predict

    return predict(tiny_victim, cls_data.x_test).argmax(1)


def _agree(model, data, ref):
    from modelprint.train import predict

    return float((predict(model, data.x_test).argmax(1) == ref).float().mean())


def _run(name, ctx, seed=1, **params):
    from modelprint.zoo.transforms import TRANSFORMS

    return TRANSFORMS.get(name)(ctx, seed, **params)


@pytest.mark.parametrize("output,family", [("probs", "extract-soft"), ("topk:2", "extract-topk"), ("label", "extract-label")])
def test_extract_agrees_with_victim_above_chance(cls_ctx_factory, cls_data, victim_pred, output, family):
    b = _run("extract", cls_ctx_factory(), output=output, n_queries=600, epochs=12)
    assert (b.label, b.family, b.arch) == ("positive", family, "tiny-cnn")
    assert b.extra["queries"] == 600
    assert _agree(b.module, cls_data, victim_pred) > CHANCE + 0.25


def test_extract_into_other_arch_kwargs_and_early_stop(cls_ctx_factory, cls_data, victim_pred):
    ctx = cls_ctx_factory(arch_kwargs={"tiny-cnn": {"channels": 4}})
    b = _run("extract", ctx, arch="tiny-cnn", n_queries=500, epochs=1, stop_at_fidelity=0.6, max_epochs=10)
    assert b.arch_kwargs == {"channels": 4} and b.module[0].out_channels == 4
    hist = b.extra["fidelity_history"]  # (epochs, fidelity) every quarter epoch
    assert b.extra["reached"] and hist[-1][1] >= 0.6 and all(f < 0.6 for _, f in hist[:-1])  # stopped at the first check reaching it
    assert [e for e, _ in hist[:2]] == [0.25, 0.5]


def test_jbda_doubles_the_set_and_counts_queries(cls_ctx_factory, cls_data, victim_pred):
    b = _run("extract-jbda", cls_ctx_factory(), n_seed=40, rounds=4, epochs_per_round=4)
    assert b.extra["set_sizes"] == [40, 80, 160, 320]
    assert b.extra["queries"] == 320  # each round queries only the new points
    assert b.family == "extract-jbda" and _agree(b.module, cls_data, victim_pred) > CHANCE


@pytest.mark.parametrize("attack", ["pgd", "deepfool"])
def test_cloudleak_spends_budget_on_adversarial_queries(cls_ctx_factory, cls_data, victim_pred, attack):
    b = _run("extract-cloudleak", cls_ctx_factory(), n_queries=400, adv_fraction=0.5, rounds=3, attack=attack, attack_steps=3, epochs=4)
    assert b.extra["queries"] == 400 and b.extra["adv_queries"] == 200
    assert _agree(b.module, cls_data, victim_pred) > CHANCE + 0.2


def test_finetune_modes(cls_ctx_factory, tiny_victim):
    from modelprint.train import last_layer

    ctx = cls_ctx_factory()
    ftll = _run("finetune", ctx, mode="FTLL", epochs=1, lr=1e-2)
    body_same = all(torch.equal(a, b) for (n, a), (_, b) in zip(ftll.module.named_parameters(), tiny_victim.named_parameters()) if not n.startswith("6."))
    assert body_same and not torch.equal(last_layer(ftll.module).weight, last_layer(tiny_victim).weight)
    assert ftll.family == "finetune"
    rtal = _run("finetune", ctx, mode="RTAL", epochs=1)
    assert rtal.family == "retrain" and not torch.equal(rtal.module[0].weight, tiny_victim[0].weight)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_weight_pruning_has_stated_sparsity(cls_ctx_factory, scope):
    b = _run("prune-weight", cls_ctx_factory(), amount=0.6, scope=scope)
    names = [n for n in b.module.state_dict()]
    assert not any(n.endswith("_orig") or n.endswith("_mask") for n in names)  # made permanent
    ws = [m.weight for m in b.module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)
    assert abs(zeros - 0.6) < 0.01 and abs(b.extra["sparsity"] - zeros) < 1e-9
    if scope == "layer":
        assert all(abs(float((w == 0).float().mean()) - 0.6) < 0.02 for w in ws)


def test_filter_pruning_shrinks_and_reloads(cls_ctx_factory, cls_data, tmp_path):
    from modelprint.io import load_model, save_model
    from modelprint.train import predict

    b = _run("prune-filter", cls_ctx_factory(), ratio=0.5)
    assert b.arch == "pruned" and b.module[0].out_channels == 4  # 8 filters -> 4
    assert b.extra["params_after"] < 0.6 * b.extra["params_before"]
    save_model(b.module, cls_data.task, tmp_path / "m", b.arch, b.arch_kwargs)
    lm = load_model(tmp_path / "m")
    assert torch.allclose(predict(lm.module, cls_data.x_test), predict(b.module, cls_data.x_test), atol=1e-6)


def test_filter_pruning_works_through_prelu_nets(cls_data, tmp_path):
    """Arc D uses single-parameter PReLUs, which torch-pruning mis-tracks unless held out."""
    from modelprint.data import load_dataset
    from modelprint.nets import build_net
    from modelprint.zoo.transforms import BuildContext

    ds = load_dataset("synthetic-fmnist", n_train=64, n_test=32)
    net = build_net("arc-d", ds.task, width=0.25)
    ctx = BuildContext(net, "arc-d", {"width": 0.25}, ds.task, ds, torch.arange(32), torch.device("cpu"), tmp_path, {"n_eval": 32})
    b = _run("prune-filter", ctx, ratio=0.5)
    assert b.module(ds.x_test[:2]).shape == (2, 10)
    assert any(isinstance(m, nn.PReLU) for m in b.module.modules())


def test_quantise_stores_int8_and_exports(cls_ctx_factory, cls_data, victim_pred, tmp_path):
    from safetensors.torch import load_file

    from modelprint.io import load_model, save_model
    from modelprint.train import predict

    b = _run("quantise", cls_ctx_factory(), n_calib=256)
    assert b.arch == "int8" and b.family == "quantise"
    save_model(b.module, cls_data.task, tmp_path / "q", b.arch, b.arch_kwargs)
    raw = load_file(str(tmp_path / "q" / "model.safetensors"))
    int8 = [k for k, v in raw.items() if v.dtype == torch.int8]
    assert len(int8) == 3 and not any(k.endswith(".weight") for k in raw)  # every layer's weight is int8 only
    lm = load_model(tmp_path / "q")
    assert torch.equal(predict(lm.module, cls_data.x_test), predict(b.module, cls_data.x_test))
    assert _agree(b.module, cls_data, victim_pred) > 0.9
    deq = b.extra["companions"]["dequantised"]
    assert deq.arch == "tiny-cnn" and b.extra["dequantised_agreement"] > 0.9
    import onnxruntime as ort

    torch.onnx.export(deq.module, (cls_data.x_test[:2],), str(tmp_path / "d.onnx"), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    o = ort.InferenceSession(str(tmp_path / "d.onnx")).run(None, {"x": cls_data.x_test[:50].numpy()})[0]
    assert np.allclose(o, predict(deq.module, cls_data.x_test[:50]).numpy(), atol=1e-4)


def test_distil_into_another_architecture(cls_ctx_factory, cls_data, victim_pred):
    b = _run("distil", cls_ctx_factory(), arch="mlp", arch_kwargs={"hidden": [32]}, temperature=3.0, epochs=8)
    assert b.arch == "mlp" and b.family == "distil"
    assert _agree(b.module, cls_data, victim_pred) > CHANCE + 0.3


@pytest.mark.parametrize("attack", ["deepfool", "pgd"])
def test_advtrain_changes_weights(cls_ctx_factory, tiny_victim, attack):
    b = _run("advtrain", cls_ctx_factory(), attack=attack, iterations=5, batch_size=16, lr=1e-3, steps=3)
    assert b.family == "advtrain" and not torch.equal(b.module[0].weight, tiny_victim[0].weight)


def test_composite_chains_steps(cls_ctx_factory, cls_data, victim_pred):
    steps = [
        {"transform": "extract", "params": {"n_queries": 400, "epochs": 5}},
        {"transform": "prune-filter", "params": {"ratio": 0.25}},
        {"transform": "quantise"},
    ]
    b = _run("composite", cls_ctx_factory(), steps=steps)
    assert b.arch == "int8" and b.arch_kwargs["base"] == "pruned" and b.family == "composite"
    assert [s["transform"] for s in b.extra["steps"]] == ["extract", "prune-filter", "quantise"]
    assert _agree(b.module, cls_data, victim_pred) > CHANCE + 0.2


def test_modified_independent_is_a_modified_honest_model(cls_ctx_factory, cls_data, victim_pred):
    steps = [{"transform": "finetune", "params": {"mode": "RTAL", "epochs": 2}}, {"transform": "prune-weight", "params": {"amount": 0.5}}]
    b = _run("modified-independent", cls_ctx_factory(), base={"transform": "disjoint", "params": {"arch": "mlp", "arch_kwargs": {"hidden": [24]}}}, steps=steps)
    assert b.label == "negative" and b.family == "modified-independent" and b.arch == "mlp"
    assert b.extra["base"]["transform"] == "disjoint" and [s["transform"] for s in b.extra["steps"]] == ["finetune", "prune-weight"]
    assert b.extra["steps"][1]["sparsity"] >= 0.45  # the honest model itself was pruned, not the victim
    assert any(k.startswith("base_") for k in b.metrics) and any(k.startswith("step1_") for k in b.metrics)


def test_negatives(cls_ctx_factory, cls_data, tmp_path):
    from modelprint.zoo.transforms.classification import overlap_indices, pool_indices

    ctx = cls_ctx_factory()
    vic = set(pool_indices(ctx, "victim").tolist())
    idx = overlap_indices(ctx, 0.3, 400, seed=0)
    assert sum(int(i) in vic for i in idx) == 120 and len(set(idx.tolist())) == 400
    assert not vic & set(pool_indices(ctx, "disjoint").tolist())
    for name, params in (("independent", {"optimizer": "sgd", "batch_size": 64}), ("homologous", {"overlap": 0.5}), ("disjoint", {})):
        b = _run(name, ctx, **params, epochs=2)
        assert (b.label, b.family) == ("negative", name)
    # irrelevant: another dataset of the same input shape and class count (a user .npz)
    g = torch.Generator().manual_seed(3)
    np.savez(tmp_path / "other.npz", x=torch.rand(200, 1, 8, 8, generator=g).numpy(), y=torch.randint(0, 4, (200,), generator=g).numpy())
    b = _run("irrelevant", ctx, dataset=str(tmp_path / "other.npz"), epochs=1)
    assert b.family == "irrelevant" and "own_test_acc" in b.extra
    with pytest.raises(ModelprintError, match="dataset"):
        _run("irrelevant", ctx, dataset="digits", epochs=1)  # 10 classes, not 4


def test_irrelevant_falls_back_when_the_dataset_files_are_missing(cls_ctx_factory, tmp_path, monkeypatch):
    import modelprint.data as data
    from modelprint.zoo.transforms import classification

    ctx = cls_ctx_factory()
    g = torch.Generator().manual_seed(4)
    np.savez(tmp_path / "other.npz", x=torch.rand(200, 1, 8, 8, generator=g).numpy(), y=torch.randint(0, 4, (200,), generator=g).numpy())
    real = data.load_dataset

    def fake(name, *a, **k):
        if name == "mnist":
            raise ModelprintError("dataset 'mnist' not found")
        return real(name, *a, **k)

    monkeypatch.setattr(data, "load_dataset", fake)
    monkeypatch.setattr(classification, "_OTHER_DATA", {})
    b = _run("irrelevant", ctx, dataset="mnist", fallback=str(tmp_path / "other.npz"), epochs=1)
    assert b.extra["wanted_dataset"] == "mnist" and b.extra["dataset"] != "mnist" and b.family == "irrelevant"
    with pytest.raises(ModelprintError, match="not found"):  # no fallback: the missing data is an error
        classification._OTHER_DATA.clear()
        _run("irrelevant", ctx, dataset="mnist", fallback=None, epochs=1)
    with pytest.raises(ModelprintError):  # an unknown name is a typo, never silently replaced
        _run("irrelevant", ctx, dataset="no-such-dataset", fallback=str(tmp_path / "other.npz"), epochs=1)


def test_extract_independent_shares_a_cached_teacher(cls_ctx_factory):
    ctx = cls_ctx_factory()
    teacher = {"n_train": 300, "epochs": 2}
    a = _run("extract-independent", ctx, seed=1, teacher=teacher, n_queries=200, epochs=1)
    b = _run("distil-independent", ctx, seed=2, teacher=teacher, n_train=200, epochs=1)
    assert (a.label, a.family, b.family) == ("negative", "extract-independent", "distil-independent")
    assert a.extra["teacher"] == b.extra["teacher"]
    assert len(list((ctx.workdir / "teachers").iterdir())) == 1


@pytest.mark.parametrize("name,params,match", [
    ("extract", {"output": "raw"}, "output"),
    ("extract", {"n_querys": 5}, "no parameter 'n_querys'"),
    ("extract", {"n_queries": "many"}, "wrong type"),
    ("prune-weight", {"amount": 1.0}, "amount"),
    ("prune-weight", {}, "needs parameter"),
    ("finetune", {"mode": "FTXX"}, "mode"),
    ("homologous", {"overlap": 1.5}, "overlap"),
    ("composite", {"steps": [{"transform": "independent"}]}, "steps"),
    ("composite", {"steps": [{"transform": "quantise"}, {"transform": "finetune"}]}, "quantise only as the last"),
    ("composite", {"steps": [{"transform": "extract", "params": {"bogus": 1}}]}, "bogus"),
    ("modified-independent", {"base": {"transform": "extract"}, "steps": [{"transform": "finetune"}]}, "base"),
    ("modified-independent", {"base": {"transform": "independent"}, "steps": [{"transform": "extract"}]}, "steps"),
    ("modified-independent", {"base": {"transform": "homologous", "params": {"overlap": 2.0}}, "steps": [{"transform": "quantise"}]}, "overlap"),
])
def test_bad_parameters_are_rejected_before_training(name, params, match):
    from modelprint.zoo.transforms import TRANSFORMS

    with pytest.raises(ModelprintError, match=match):
        TRANSFORMS.get(name).validate(params)
