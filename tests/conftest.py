"""Shared fixtures: tiny synthetic data, a tiny victim and a tiny zoo, built in seconds on CPU."""
from __future__ import annotations

import copy
import os

import pytest
import torch

os.environ.setdefault("MODELPRINT_PROGRESS", "0")
torch.set_num_threads(1)  # tiny nets: one thread is as fast and does not oversubscribe the CI cores


@pytest.fixture(scope="session")
def cls_data():
    from modelprint.data import load_dataset

    return load_dataset("synthetic-cls")


@pytest.fixture(scope="session")
def tiny_victim(cls_data):
    """A tiny-cnn trained on synthetic-cls (accuracy well above chance)."""
    from modelprint.nets import build_net
    from modelprint.train import TrainConfig, train_model

    torch.manual_seed(0)  # initial weights independent of which tests ran before
    net = build_net("tiny-cnn", cls_data.task)
    m = train_model(net, cls_data.x_train, cls_data.y_train, cls_data.task, TrainConfig(epochs=4, batch_size=64, seed=0), x_test=cls_data.x_test, y_test=cls_data.y_test)
    assert m["test_acc"] > 0.6
    return net


def _build_tiny_zoo(root, data, victim, n_each: int = 4):
    """Positives: fine-tuned and soft-label-extracted copies of the victim. Negatives: independent nets
    (different seeds/architecture widths). Written in the real zoo format."""
    from modelprint.io import save_model, sha256_file
    from modelprint.nets import build_net
    from modelprint.train import TrainConfig, predict, train_model
    from modelprint.zoo import Zoo, ZooMember

    task = data.task
    save_model(victim, task, root / "members" / "victim", "tiny-cnn")
    Zoo.append(root, ZooMember("victim", "positive", "victim", "victim", "tiny-cnn", "members/victim"))
    soft = torch.softmax(predict(victim, data.x_train), 1)
    for i in range(n_each):
        # fine-tune all layers on a small slice of labelled data
        ft = copy.deepcopy(victim)
        train_model(ft, data.x_train[:200], data.y_train[:200], task, TrainConfig(epochs=1, batch_size=32, lr=1e-3, seed=100 + i))
        # extraction: fresh net trained on the victim's probabilities
        ex = build_net("tiny-cnn", task, channels=8 + 4 * (i % 2))
        train_model(ex, data.x_train, soft, task, TrainConfig(epochs=4, batch_size=64, seed=200 + i))
        # independent: trained on the true labels from scratch
        ind = build_net("tiny-cnn", task, channels=8 + 4 * (i % 2))
        train_model(ind, data.x_train, data.y_train, task, TrainConfig(epochs=4, batch_size=64, seed=300 + i, optimizer="sgd" if i % 2 else "adam"))
        for name, net, label, fam, kw in (
            (f"ft-{i}", ft, "positive", "finetune", {}),
            (f"ex-{i}", ex, "positive", "extract-soft", {"channels": 8 + 4 * (i % 2)}),
            (f"ind-{i}", ind, "negative", "independent", {"channels": 8 + 4 * (i % 2)}),
        ):
            d = save_model(net, task, root / "members" / name, "tiny-cnn", kw)
            pred = predict(net, data.x_test).argmax(1)
            fid = float((pred == predict(victim, data.x_test).argmax(1)).float().mean())
            acc = {"test_acc": float((pred == data.y_test).float().mean())}
            Zoo.append(root, ZooMember(name, label, fam, fam, "tiny-cnn" if i % 2 == 0 else "tiny-cnn-w12", f"members/{name}", kw, metrics=acc, fidelity=fid, sha256=sha256_file(d / "model.safetensors")))
    return Zoo.open(root)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory, cls_data, tiny_victim):
    root = tmp_path_factory.mktemp("tiny_zoo")
    return _build_tiny_zoo(root, cls_data, tiny_victim)
