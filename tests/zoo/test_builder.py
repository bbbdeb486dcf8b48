"""Zoo builder: recipes, manifest, resume after a kill, the Ray executor, and the zoo CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from modelprint.errors import ModelprintError

HEADER = """
name = "t"
dataset = "synthetic-cls"
onnx = {onnx}
[defaults]
epochs = 1
batch_size = 64
n_eval = 200
"""


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def victim_dir(tmp_path_factory, cls_data, _one_thread):
    """A tiny-cnn victim trained on half of synthetic-cls, saved with its training indices."""
    from safetensors.torch import save_file

    from modelprint.io import save_model
    from modelprint.nets import build_net
    from modelprint.train import TrainConfig, train_model

    idx = torch.randperm(len(cls_data.x_train), generator=torch.Generator().manual_seed(0))[:600].sort().values
    net = build_net("tiny-cnn", cls_data.task)
    train_model(net, cls_data.x_train[idx], cls_data.y_train[idx], cls_data.task, TrainConfig(epochs=8, batch_size=32, progress=False))
    d = tmp_path_factory.mktemp("victim") / "v"
    save_model(net, cls_data.task, d, "tiny-cnn")
    save_file({"idx": idx}, str(d / "train_idx.safetensors"))
    return d


def _recipe(tmp_path: Path, groups: str, onnx: bool = True) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(HEADER.format(onnx=str(onnx).lower()) + textwrap.dedent(groups))
    return p


QUICK_GROUPS = """
[[groups]]
name = "q"
transform = "quantise"
count = 1
[[groups]]
name = "pw"
transform = "prune-weight"
grid = {amount = [0.3, 0.7]}
[[groups]]
name = "ind"
transform = "independent"
count = 1
params = {n_train = 200}
"""


def _check_manifest(root: Path):
    from modelprint.io import sha256_file
    from modelprint.zoo import Zoo

    zoo = Zoo.open(root)
    for m in zoo.members:
        assert (root / m.path / "model.json").exists()
        assert sha256_file(root / m.path / "model.safetensors") == m.sha256
    return zoo


def test_build_writes_a_valid_zoo_and_rerun_skips(tmp_path, victim_dir):
    from modelprint.io import load_model
    from modelprint.zoo.builder import build_zoo

    out = tmp_path / "zoo"
    zoo = build_zoo(victim_dir, None, _recipe(tmp_path, QUICK_GROUPS), out)
    zoo = _check_manifest(out)
    assert sorted(m.name for m in zoo.members) == ["ind-000", "pw-000", "pw-001", "q-000", "victim"]
    fams = {m.name: (m.label, m.family) for m in zoo.members}
    assert fams["q-000"] == ("positive", "quantise") and fams["ind-000"] == ("negative", "independent") and fams["victim"] == ("positive", "victim")
    for m in zoo.members:
        if m.family != "victim":
            assert 0.0 <= m.fidelity <= 1.0 and "test_acc" in m.metrics and m.train_seconds > 0 and m.seed and m.extra["key"]
            assert m.onnx and (out / m.onnx).exists()
    q = zoo["q-000"]
    assert q.arch == "tiny-cnn" and q.extra["stored_arch"] == "int8" and (out / q.path / "dequantised" / "model.json").exists()
    assert zoo["pw-001"].params == {"amount": 0.7}
    assert load_model(out / q.path).module(torch.zeros(2, 1, 8, 8)).shape == (2, 4)
    info = json.loads((out / "zoo.json").read_text())
    assert info["victim"]["train_points"] == 600 and info["dataset"]["name"] == "synthetic-cls" and info["recipe"]["name"] == "t"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")}
    lines = (out / "manifest.jsonl").read_text()
    build_zoo(victim_dir, None, _recipe(tmp_path, QUICK_GROUPS), out)
    assert (out / "manifest.jsonl").read_text() == lines
    assert {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")} == before


def test_changed_parameters_rebuild_only_that_member(tmp_path, victim_dir):
    from modelprint.zoo import Zoo
    from modelprint.zoo.builder import build_zoo

    out = tmp_path / "zoo"
    groups = 'name = "x"\n[[groups]]\nname = "pw"\ntransform = "prune-weight"\ngrid = {amount = [0.3, 0.5]}\n'
    build_zoo(victim_dir, None, _recipe(tmp_path, groups.replace('name = "x"\n', ""), onnx=False), out)
    t0 = (out / "members/pw-000/model.safetensors").stat().st_mtime_ns
    build_zoo(victim_dir, None, _recipe(tmp_path, groups.replace('name = "x"\n', "").replace("0.5]", "0.6]"), onnx=False), out)
    zoo = Zoo.open(out)
    assert zoo["pw-001"].params == {"amount": 0.6} and abs(zoo["pw-001"].extra["sparsity"] - 0.6) < 0.01
    assert (out / "members/pw-000/model.safetensors").stat().st_mtime_ns == t0


def test_resume_after_kill(tmp_path, victim_dir):
    """Kill the build process mid-way; the re-run keeps every finished member untouched."""
    from modelprint.zoo import Zoo
    from modelprint.zoo.builder import build_zoo

    groups = """
    [[groups]]
    name = "ex"
    transform = "extract"
    count = 8
    params = {n_queries = 400, epochs = 3}
    """
    recipe = _recipe(tmp_path, groups, onnx=False)
    out = tmp_path / "zoo"
    code = f"from modelprint.zoo.builder import build_zoo; build_zoo({str(victim_dir)!r}, None, {str(recipe)!r}, {str(out)!r})"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MODELPRINT_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mf = out / "manifest.jsonl"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if mf.exists() and len(mf.read_text().splitlines()) >= 3:  # victim + 2 members finished
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"build ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed = _check_manifest(out)  # every listed member is complete
    done = {m.name for m in killed.members if m.family != "victim"}
    assert 2 <= len(done) < 8
    stamps = {n: (out / "members" / n / "model.safetensors").stat().st_mtime_ns for n in done}
    build_zoo(victim_dir, None, recipe, out)
    zoo = _check_manifest(out)
    assert sorted(m.name for m in zoo.members if m.family != "victim") == [f"ex-{i:03d}" for i in range(8)]
    names = [json.loads(line)["name"] for line in mf.read_text().splitlines() if line.strip()]
    assert all(names.count(n) == 1 for n in done)  # finished members were not rebuilt
    assert {n: (out / "members" / n / "model.safetensors").stat().st_mtime_ns for n in done} == stamps
    assert not [p for p in (out / "members").iterdir() if p.name.startswith(".")]  # no temp dirs left
    assert Zoo.open(out).positives


@pytest.mark.timeout(420)  # starting Ray's workers takes most of it, and over 120 s on a loaded 2-core machine
def test_ray_executor_builds_a_tiny_zoo(tmp_path, victim_dir):
    ray = pytest.importorskip("ray")
    from modelprint.zoo.builder import build_zoo

    groups = """
    [[groups]]
    name = "pw"
    transform = "prune-weight"
    grid = {amount = [0.4, 0.8]}
    [[groups]]
    name = "ex"
    transform = "extract"
    count = 1
    params = {n_queries = 200}
    """
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        build_zoo(victim_dir, None, _recipe(tmp_path, groups, onnx=False), tmp_path / "zoo", executor="ray", workers=2)
    finally:
        ray.shutdown()
    zoo = _check_manifest(tmp_path / "zoo")
    assert sorted(m.name for m in zoo.members) == ["ex-000", "pw-000", "pw-001", "victim"]
    assert abs(zoo["pw-001"].extra["sparsity"] - 0.8) < 0.01


@pytest.mark.parametrize("text,match", [
    ('name = "x"\nbogus = 1\n[[groups]]\nname="a"\ntransform="quantise"\n', "unknown top-level"),
    ('name = "x"\n[[groups]]\nname="a"\ntransform="nope"\n', "unknown transform"),
    ('name = "x"\n[[groups]]\nname="a"\ntransform="prune-weight"\nparams={amount=2.0}\n', "member a-000.*amount"),
    ('name = "x"\n[[groups]]\nname="a"\ntransform="quantise"\n[[groups]]\nname="a"\ntransform="quantise"\n', "used twice"),
    ('name = "x"\n[defaults]\nepochz = 1\n[[groups]]\nname="a"\ntransform="quantise"\n', "epochz"),
    ('name = "x"\n[victim]\narch = "no-such-net"\n[[groups]]\nname="a"\ntransform="quantise"\n', "no-such-net"),
    ('name = "x"\n[[groups]\n', "not valid TOML"),
    ('name = "x"\n', "at least one"),
])
def test_bad_recipes_fail_before_training(tmp_path, text, match):
    from modelprint.zoo.recipe import load_recipe

    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ModelprintError, match=match) as e:
        load_recipe(p)
    assert e.value.path == str(p)


def test_shipped_recipes_are_valid():
    from modelprint.zoo.recipe import list_recipes, load_recipe

    names = list_recipes()
    assert {"fmnist-quick", "fmnist-paper", "cifar10-paper"} <= set(names)
    quick = load_recipe("fmnist-quick")
    fams = {g.transform for g in quick.groups}
    assert {"extract", "finetune", "prune-weight", "prune-filter", "quantise", "distil", "composite", "independent", "homologous", "irrelevant", "extract-independent"} <= fams
    assert 40 <= len(quick.members()) <= 70
    paper = load_recipe("fmnist-paper")
    assert len(paper.members()) >= 80
    with pytest.raises(ModelprintError, match="unknown recipe"):
        load_recipe("no-such-recipe")


def test_extends_appends_groups_and_keeps_the_base_members(tmp_path):
    from modelprint.zoo.recipe import load_recipe

    base = tmp_path / "base.toml"
    base.write_text('name = "base"\n[defaults]\nepochs = 2\nn_train = 100\n[[groups]]\nname="a"\ntransform="quantise"\n')
    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{base}"\nname = "child"\n[defaults]\nepochs = 3\n[[groups]]\nname="b"\ntransform="prune-weight"\ngrid={{amount=[0.2, 0.5]}}\n')
    r, b = load_recipe(child), load_recipe(base)
    assert r.name == "child" and [g.name for g in r.groups] == ["a", "b"]
    assert r.defaults["epochs"] == 3 and r.defaults["n_train"] == 100  # updated key by key
    assert [m.name for m in r.members()][:1] == [m.name for m in b.members()]
    # the shipped extension keeps every fmnist-quick member byte for byte (so a copied zoo only trains the new ones)
    quick, wide = load_recipe("fmnist-quick").members(), load_recipe("fmnist-wide").members()
    assert [(m.name, m.key()) for m in wide[: len(quick)]] == [(m.name, m.key()) for m in quick] and len(wide) > len(quick)
    wp, wxl = load_recipe("warfarin-paper").members(), load_recipe("warfarin-xl").members()
    assert [(m.name, m.key()) for m in wxl[: len(wp)]] == [(m.name, m.key()) for m in wp] and len(wxl) == len(wp) + 132
    assert len({m.name for m in wxl}) == len(wxl)  # the new groups' member names do not collide with the base's
    loop = tmp_path / "loop.toml"
    loop.write_text(f'extends = "{loop}"\n[[groups]]\nname="a"\ntransform="quantise"\n')
    with pytest.raises(ModelprintError, match="cycle"):
        load_recipe(loop)
    with pytest.raises(ModelprintError, match="recipe file not found|unknown recipe"):
        (tmp_path / "orphan.toml").write_text('extends = "no-such-recipe"\n[[groups]]\nname="a"\ntransform="quantise"\n')
        load_recipe(tmp_path / "orphan.toml")


def test_cli_show_and_split(tmp_path, victim_dir):
    from typer.testing import CliRunner

    from modelprint.cli import app
    from modelprint.zoo.builder import build_zoo

    out = tmp_path / "zoo"
    build_zoo(victim_dir, None, _recipe(tmp_path, QUICK_GROUPS, onnx=False), out)
    r = CliRunner().invoke(app, ["zoo", "show", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["family"]: row for row in json.loads(r.output)["rows"]}
    assert rows["prune-weight"]["n"] == 2 and rows["independent"]["label"] == "negative"
    r = CliRunner().invoke(app, ["zoo", "split", str(out), "--holdout-family", "prune-weight", "--save", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert sorted(s["test"]) == ["pw-000", "pw-001"] and "pw-000" not in s["train"]
    r = CliRunner().invoke(app, ["zoo", "split", str(out), "--holdout-arch", "no-such-arch"])
    assert r.exit_code != 0
