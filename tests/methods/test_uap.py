"""Method ``uap`` on tiny synthetic nets: K-means anchors, SupCon encoder, fingerprint/verify in every
output mode, the t-test decision, save -> load -> identical verdicts, budgets and clear errors."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from modelprint.errors import BudgetExceeded, ModelprintError
from modelprint.methods import get_method, load_fingerprint
from modelprint.methods.uap import DEFAULTS, representations, select_anchors, train_encoder, view_similarities
from modelprint.suspects import TorchSuspect
from modelprint.zoo import split_random

# tiny settings (the defaults are exercised on real data, docs/results/uap.md)
SMALL = {"n_anchors": 8, "n_views": 6, "n_fingerprints": 4, "uap_samples": 160, "kmeans_samples": 600, "target_fooling": 0.6,
         "hidden": 64, "embed_dim": 16, "steps": 60, "batch_size": 64, "calibration_folds": 2}


@pytest.fixture(scope="module")
def train_zoo(tiny_zoo):
    return split_random(tiny_zoo, 0.5, 0)[0]


@pytest.fixture(scope="module")
def random_net(cls_data):
    from modelprint.nets import build_net

    torch.manual_seed(1234)
    return build_net("tiny-cnn", cls_data.task)


@pytest.fixture(scope="module")
def fp_probs(tiny_victim, cls_data, train_zoo):
    return get_method("uap", **SMALL).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)


@pytest.fixture(scope="module")
def fp_label(tiny_victim, cls_data, train_zoo):
    return get_method("uap", **SMALL, output_mode="label").fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)


def _verify(fp, module, task, mode=None, budget=None, name="s"):
    sus = TorchSuspect(module, task, mode=mode or fp.params["output_mode"], name=name, budget=budget)
    return fp.verify(sus), sus


def test_kmeans_one_point_per_cluster():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 3, generator=g) * 20
    reps = torch.cat([c + torch.randn(40, 3, generator=g) for c in centres])
    pool, cluster = select_anchors(reps, 5, 7, seed=0)
    anchors = pool[:, 0]
    assert sorted(cluster[anchors].tolist()) == list(range(5))  # exactly one anchor in every cluster
    assert sorted(set(cluster[anchors].tolist())) == sorted(set(cluster.tolist()))
    for c in range(5):
        members = (cluster == c).nonzero().squeeze(1)
        centroid = reps[members].mean(0)
        d = (reps[members] - centroid).norm(dim=1)
        assert anchors[c] == members[d.argmin()]  # the anchor is the point nearest the centroid
        assert (cluster[pool[c]] == c).all()  # its views stay inside its cluster
        dist = (reps[pool[c]] - reps[anchors[c]]).norm(dim=1)
        assert torch.all(dist[1:] >= dist[:-1] - 1e-6)  # nearest neighbours first
        assert len(set(pool[c].tolist())) == 7  # distinct while the cluster is large enough


def test_representations_hook_and_embed(tiny_victim, cls_data):
    x = cls_data.x_test[:10]
    r = representations(tiny_victim, x, device="cpu")  # tiny-cnn has no .embed: forward hook on its last layer
    head = tiny_victim[-1]
    assert r.shape == (10, head.in_features)
    assert torch.allclose(head(r), tiny_victim(x), atol=1e-5)


def test_supcon_separates_synthetic_fingerprints():
    """Piracy fingerprints = victim's outputs with small noise; homologous = unmoved by the UAP. After
    SupCon training, held-out piracy models embed close to the victim and homologous ones far."""
    g = torch.Generator().manual_seed(0)
    n, k, C = 6, 5, 4
    victim = torch.softmax(3 * torch.randn(n, k, 2, C, generator=g), -1)

    def pirate():
        return torch.softmax(torch.log(victim + 1e-6) + 0.3 * torch.randn(n, k, 2, C, generator=g), -1)

    def homologous():
        # agrees with the victim on clean points, but the UAP does not move it (Peng et al. §4.2)
        clean = torch.log(victim[:, :, 0] + 1e-6)
        both = torch.stack([clean, clean], 2) + 0.3 * torch.randn(n, k, 2, C, generator=g)
        return torch.softmax(both, -1)

    feats = [victim] + [pirate() for _ in range(4)] + [homologous() for _ in range(4)]
    labels = [0] * 5 + [1] * 4
    p = {**DEFAULTS, "hidden": 64, "embed_dim": 16, "steps": 150, "batch_size": 64}
    enc = train_encoder(feats, labels, p, seed=0, device=torch.device("cpu"))
    vic_views = victim.permute(1, 0, 2, 3).reshape(k, -1)
    s_pos = [float(view_similarities(enc, pirate().permute(1, 0, 2, 3).reshape(k, -1), vic_views).mean()) for _ in range(3)]
    s_neg = [float(view_similarities(enc, homologous().permute(1, 0, 2, 3).reshape(k, -1), vic_views).mean()) for _ in range(3)]
    assert min(s_pos) > 0.9 and max(s_neg) < 0.5 and min(s_pos) > max(s_neg) + 0.5


def test_view_similarities_stay_in_unit_interval():
    # float32 cosine of a vector with itself exceeds 1 for some vectors (36 of these 200 rows); a similarity,
    # and so a verdict score, must not
    torch.manual_seed(0)
    x = torch.rand(200, 40)
    assert (torch.nn.functional.cosine_similarity(x, x, dim=1) > 1).any()
    s = view_similarities(torch.nn.Identity(), x, x)
    assert s.max() <= 1 and s.min() >= -1 and torch.allclose(s, torch.ones(200))
    assert view_similarities(torch.nn.Identity(), -x, x).min() >= -1


def test_copy_pirated_random_low(fp_probs, tiny_victim, random_net, cls_data):
    fp = fp_probs
    v_copy, sus = _verify(fp, copy.deepcopy(tiny_victim), cls_data.task)
    v_rand, _ = _verify(fp, random_net, cls_data.task)
    assert v_copy.score == pytest.approx(1.0, abs=1e-5)  # identical answers -> identical embeddings
    assert v_copy.decision == "pirated" and v_copy.p_value < fp.alpha
    assert v_rand.score < v_copy.score - 0.3 and v_rand.decision != "pirated"
    assert sus.queries == v_copy.queries == fp.queries_per_suspect == SMALL["n_fingerprints"] * SMALL["n_anchors"] * 2
    assert fp.meta["score_range"] == [-1.0, 1.0]
    assert fp.meta["uap"]["fooling_rate"] >= SMALL["target_fooling"]
    assert fp.meta["calibration"]["kind"] == "cross-fitted" and len(fp.null_similarities) > 0
    assert len(v_copy.details["similarities"]) == SMALL["n_fingerprints"]


def test_save_load_identical_verdicts(fp_probs, tmp_path, tiny_victim, random_net, cls_data):
    fp_probs.save(tmp_path / "fp")
    fp2 = load_fingerprint(tmp_path / "fp")
    assert type(fp2) is type(fp_probs) and fp2.digest() == fp_probs.digest()
    for net in (copy.deepcopy(tiny_victim), random_net):
        a, _ = _verify(fp_probs, net, cls_data.task)
        b, _ = _verify(fp2, net, cls_data.task)
        assert (a.score, a.p_value, a.decision, a.evidence, a.queries) == (b.score, b.p_value, b.decision, b.evidence, b.queries)


def test_label_only_mode(fp_label, tiny_victim, random_net, cls_data):
    v_copy, _ = _verify(fp_label, copy.deepcopy(tiny_victim), cls_data.task, mode="label")
    v_rand, _ = _verify(fp_label, random_net, cls_data.task, mode="label")
    assert v_copy.score == pytest.approx(1.0, abs=1e-5) and v_copy.decision == "pirated"
    assert v_rand.score < v_copy.score
    # a suspect revealing more (probabilities) is reduced to labels: same verdict as label-only
    v_probs, _ = _verify(fp_label, copy.deepcopy(tiny_victim), cls_data.task, mode="probs")
    assert v_probs.score == pytest.approx(v_copy.score) and v_probs.evidence == v_copy.evidence
    assert fp_label.victim_outputs.sum(-1).allclose(torch.ones(1)) and set(fp_label.victim_outputs.unique().tolist()) <= {0.0, 1.0}


def test_probs_fingerprint_rejects_label_suspect(fp_probs, tiny_victim, cls_data):
    with pytest.raises(ModelprintError, match="output_mode=label"):
        _verify(fp_probs, tiny_victim, cls_data.task, mode="label")


def test_topk_mode_runs(tiny_victim, cls_data, train_zoo, random_net):
    fp = get_method("uap", **{**SMALL, "calibration_folds": 0}, output_mode="topk:2").fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    v, _ = _verify(fp, copy.deepcopy(tiny_victim), cls_data.task)
    assert v.score == pytest.approx(1.0, abs=1e-5) and fp.meta["calibration"]["kind"] == "in-sample"
    assert (fp.victim_outputs > 0).sum(-1).max() <= 2


def test_relative_encoder_input(tiny_victim, cls_data, train_zoo, random_net):
    fp = get_method("uap", **{**SMALL, "calibration_folds": 0, "encoder_input": "relative"}).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    assert fp.meta["in_dim"] == 2 * SMALL["n_anchors"] * 2 * cls_data.task.num_classes
    v_copy, _ = _verify(fp, copy.deepcopy(tiny_victim), cls_data.task)
    v_rand, _ = _verify(fp, random_net, cls_data.task)
    assert v_copy.score == pytest.approx(1.0, abs=1e-5) and v_rand.score < v_copy.score - 0.3


def test_per_model_negative_classes(tiny_victim, cls_data, train_zoo, random_net):
    fp = get_method("uap", **{**SMALL, "calibration_folds": 0, "negative_classes": "per-model"}).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    v_copy, _ = _verify(fp, copy.deepcopy(tiny_victim), cls_data.task)
    v_rand, _ = _verify(fp, random_net, cls_data.task)
    assert v_copy.score == pytest.approx(1.0, abs=1e-5) and v_rand.score < v_copy.score - 0.3
    with pytest.raises(ModelprintError, match="negative_classes"):
        get_method("uap", negative_classes="each")


def test_agreement_floor_guards_implausible_suspects(tiny_victim, cls_data, train_zoo):
    class Contrary(torch.nn.Module):  # answers the class after the victim's: never agrees with it
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).roll(1, dims=-1)

    contrary = Contrary(copy.deepcopy(tiny_victim)).eval()
    fp = get_method("uap", **{**SMALL, "calibration_folds": 0}).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    floor = fp.meta["agreement_floor"]
    tpa = fp.meta["train_positive_agreement"]
    assert floor == pytest.approx(0.5 * tpa["p5"]) and 0 < floor <= 0.5 and tpa["min"] <= tpa["p5"] <= tpa["median"]
    v, _ = _verify(fp, contrary, cls_data.task)
    g = v.details["guard"]
    assert g["clean_label_agreement"] < floor and v.score == pytest.approx(min(g["score_before_guard"], g["clean_label_agreement"] - 1))
    assert v.decision == "independent" and v.p_value is None and "below the floor" in v.details["note"]
    v_copy, _ = _verify(fp, copy.deepcopy(tiny_victim), cls_data.task)
    assert "guard" not in v_copy.details and v_copy.score == pytest.approx(1.0, abs=1e-5)
    off = get_method("uap", **{**SMALL, "calibration_folds": 0, "agreement_floor": "off"}).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    assert off.meta["agreement_floor"] is None and "guard" not in _verify(off, contrary, cls_data.task)[0].details
    for bad in ("high", 1.5):
        with pytest.raises(ModelprintError, match="agreement_floor"):
            get_method("uap", agreement_floor=bad)


def test_agreement_weight_mixes_clean_agreement(tmp_path, fp_probs, tiny_victim, random_net, cls_data, train_zoo):
    from modelprint.methods.uap import combine_views, view_agreements

    # w = 0 (the paper): the member scores are the encoder's similarities
    fp0 = get_method("uap", **SMALL, agreement_weight=0).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    cal = fp0.meta["calibration"]
    assert fp0.meta["agreement_scale"] is None and set(cal["member_agreement"]) == set(cal["member_scores"])
    floor = fp0.meta["agreement_floor"]
    assert all(cal["member_scores"][n] == pytest.approx(s) for n, s in cal["member_similarity"].items() if cal["member_agreement"][n] >= floor)
    assert "values" not in _verify(fp0, random_net, cls_data.task)[0].details
    # the default picks the weight by the anchor pool the fit used and stores the number; 0.5 here
    from modelprint.methods.uap import AUTO_AGREEMENT_WEIGHT

    assert DEFAULTS["agreement_weight"] == "auto" and fp_probs.meta["agreement_scale"] is not None
    assert fp_probs.meta["agreement_weight_auto"] and fp_probs.params["agreement_weight"] == AUTO_AGREEMENT_WEIGHT[fp_probs.meta["anchor_pool"]]
    fp = get_method("uap", **SMALL, agreement_weight=0.5).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    assert not fp.meta["agreement_weight_auto"] and fp.params["agreement_weight"] == 0.5
    sc = fp.meta["agreement_scale"]
    assert set(sc) == {"sim_mean", "sim_std", "agree_mean", "agree_std"} and sc["agree_std"] > 0
    # the encoder and the similarities do not depend on the weight: only the mix does
    assert fp.meta["calibration"]["member_similarity"] == cal["member_similarity"]
    for net in (copy.deepcopy(tiny_victim), random_net):
        v, sus = _verify(fp, net, cls_data.task)
        agrees = view_agreements(fp.fingerprint_outputs(TorchSuspect(net, cls_data.task, mode="probs"))[0], fp.victim_outputs).numpy()
        sims = np.array(v.details["similarities"])
        mapped = np.clip(sc["sim_mean"] + sc["sim_std"] * (agrees - sc["agree_mean"]) / sc["agree_std"], -1, 1)
        assert v.details["values"] == pytest.approx(list(0.5 * sims + 0.5 * mapped), abs=1e-5)
        mixed = float(np.mean(combine_views(sims, agrees, 0.5, sc)))
        guarded = "guard" in v.details  # the random net agrees too rarely: scored agreement - 1, below everything
        assert v.score == pytest.approx(min(mixed, agrees.mean() - 1) if guarded else mixed, abs=1e-5)
        assert v.details["similarity"] == pytest.approx(sims.mean(), abs=1e-5) and -1 <= v.score <= 1
    v_copy, _ = _verify(fp, copy.deepcopy(tiny_victim), cls_data.task)
    v_rand, _ = _verify(fp, random_net, cls_data.task)
    assert v_copy.decision == "pirated" and v_rand.score < v_copy.score - 0.3
    fp.save(tmp_path / "fp")
    a, b = _verify(load_fingerprint(tmp_path / "fp"), random_net, cls_data.task)[0], v_rand
    assert (a.score, a.p_value, a.decision) == (b.score, b.p_value, b.decision)
    assert combine_views(np.array([0.2]), np.array([0.9]), 0.0, sc) == pytest.approx([0.2])
    for bad in (-0.1, 1.5, "x"):
        with pytest.raises(ModelprintError, match="agreement_weight"):
            get_method("uap", agreement_weight=bad)


def test_disk_cache_resumes_identically(tmp_path, tiny_victim, cls_data, train_zoo):
    from modelprint.methods.uap import clear_caches

    params = {**SMALL, "calibration_folds": 0, "cache_dir": str(tmp_path / "cache")}
    clear_caches()  # earlier tests may have filled the in-memory cache, which would skip the disk writes
    a = get_method("uap", **params).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert any(f.startswith("pool-") for f in files) and len(files) > len(train_zoo.members)
    clear_caches()  # a new process: only the disk cache is left
    b = get_method("uap", **params).fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    assert b.meta["fit_queries"] == 0 and a.meta["fit_queries"] > 0
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.null_similarities, b.null_similarities)


def test_budget(fp_probs, tiny_victim, cls_data):
    per = 2 * SMALL["n_anchors"]
    v, sus = _verify(fp_probs, tiny_victim, cls_data.task, budget=2 * per + 3)
    assert v.details["fingerprints_used"] == 2 and sus.queries == 2 * per
    with pytest.raises(BudgetExceeded):
        _verify(fp_probs, tiny_victim, cls_data.task, budget=per)


def test_bad_parameters_and_inputs(tiny_victim, cls_data, train_zoo, tiny_zoo):
    with pytest.raises(ModelprintError, match="n_anchor"):
        get_method("uap", n_anchor=3)
    with pytest.raises(ModelprintError, match="n_views"):
        get_method("uap", n_views=5, n_fingerprints=10)
    with pytest.raises(ModelprintError, match="output mode"):
        get_method("uap", output_mode="top3")
    with pytest.raises(ModelprintError, match="zoo"):
        get_method("uap", **SMALL).fit(tiny_victim, cls_data.task, cls_data, None, device="cpu")
    only_pos = tiny_zoo.subset([m for m in train_zoo.members if m.label == "positive"])
    with pytest.raises(ModelprintError, match="negative"):
        get_method("uap", **SMALL).fit(tiny_victim, cls_data.task, cls_data, only_pos, device="cpu")


def test_corrupt_fingerprint_clear_error(fp_probs, tmp_path):
    import json

    d = fp_probs.save(tmp_path / "fp")
    doc = json.loads((d / "fingerprint.json").read_text())
    doc["meta"].pop("in_dim")
    (d / "fingerprint.json").write_text(json.dumps(doc))
    with pytest.raises(ModelprintError, match="incomplete"):
        load_fingerprint(d)


# -- the command line: fingerprint build / verify and the analyze diagnostics -------------------------
def test_cli_build_verify_analyze(tmp_path, tiny_zoo, cls_data):
    import json

    from typer.testing import CliRunner

    from modelprint.cli import app

    runner = CliRunner()
    victim = str(tiny_zoo.root / "members" / "victim")
    params = [x for k, v in SMALL.items() for x in ("--param", f"{k}={v}")]
    r = runner.invoke(app, ["fingerprint", "build", "--method", "uap", "--victim", victim, "--dataset", "synthetic-cls", "--zoo", str(tiny_zoo.root), "--out", str(tmp_path / "fp"), "--device", "cpu", *params])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["verify", "--fingerprint", str(tmp_path / "fp"), "--json", victim])
    assert r.exit_code == 0, r.output
    v = json.loads(r.output.strip().splitlines()[-1])
    assert v["decision"] == "pirated" and v["queries"] == SMALL["n_fingerprints"] * SMALL["n_anchors"] * 2
    member = str(tiny_zoo.root / "members" / "ind-1")
    r = runner.invoke(app, ["analyze", "inconsistency", "--victim", victim, "--suspect", victim, "--suspect", member, "--dataset", "synthetic-cls",
                            "--n-uaps", "3", "--samples", "120", "--target", "0.5", "--json", str(tmp_path / "inc.json"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "inc.json").read_text())
    inc = {s["suspect"]: s["inconsistency"] for s in doc["suspects"]}
    assert inc[victim] < inc[member]  # the victim's own UAPs span its subspace best
    r = runner.invoke(app, ["analyze", "tsne", "--fingerprint", str(tmp_path / "fp"), "--zoo", str(tiny_zoo.root), "--out", str(tmp_path / "t.png"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_inconsistency_formula():
    """Eq. 5: zero for identical UAP sets; larger for UAPs outside the victim's subspace."""
    from modelprint.cli.analyze import inconsistency

    g = torch.Generator().manual_seed(0)
    V = torch.randn(4, 50, generator=g)
    assert inconsistency(V, V)[0] == pytest.approx(0.0, abs=1e-9)
    inside = torch.randn(4, 4, generator=g) @ V  # in the span of V
    outside = torch.randn(4, 50, generator=g)
    assert inconsistency(V, inside)[0] < inconsistency(V, outside)[0]


def test_misclassified_anchor_pool(tiny_victim, cls_data, train_zoo, random_net):
    """anchor_pool=misclassified takes every anchor (and its views) from training points the victim gets wrong."""
    p = {**SMALL, "n_anchors": 4, "n_views": 3, "n_fingerprints": 2}
    fp = get_method("uap", **p, anchor_pool="misclassified").fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    idx = fp.extra["anchor_index"]
    assert len(idx) == 4
    with torch.no_grad():
        pred = tiny_victim.eval()(cls_data.x_train[idx].float()).argmax(-1)
    assert (pred != cls_data.y_train[idx].long()).all()
    assert fp.params["anchor_pool"] == "misclassified"
    assert _verify(fp, tiny_victim, cls_data.task)[0].score > _verify(fp, random_net, cls_data.task)[0].score
    with pytest.raises(ModelprintError, match="misclassifies only"):
        get_method("uap", **{**p, "n_anchors": 500}, anchor_pool="misclassified").fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    with pytest.raises(ModelprintError, match="anchor_pool"):
        get_method("uap", anchor_pool="hard")


def test_auto_anchor_pool(tiny_victim, cls_data, train_zoo):
    """anchor_pool=auto uses the misclassified points when the victim errs on at least
    AUTO_MISCLASSIFIED_PER_ANCHOR per anchor, and falls back to all points (no error) when it does not."""
    from modelprint.methods.uap import AUTO_MISCLASSIFIED_PER_ANCHOR

    with torch.no_grad():
        wrong = int((tiny_victim.eval()(cls_data.x_train.float()).argmax(-1) != cls_data.y_train.long()).sum())
    few = max(1, wrong // AUTO_MISCLASSIFIED_PER_ANCHOR)  # enough errors for this many anchors
    assert 2 <= few < len(cls_data.x_train) // 4, "the tiny victim must err on some, not most, training points"
    base = {**SMALL, "n_views": 3, "n_fingerprints": 2, "kmeans_samples": len(cls_data.x_train)}
    del base["n_anchors"]
    fp = get_method("uap", **base, n_anchors=few, anchor_pool="auto").fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    assert fp.meta["anchor_pool"] == "misclassified" and fp.meta["misclassified_points"] == wrong
    with torch.no_grad():
        pred = tiny_victim.eval()(cls_data.x_train[fp.extra["anchor_index"]].float()).argmax(-1)
    assert (pred != cls_data.y_train[fp.extra["anchor_index"]].long()).all()
    many = wrong // AUTO_MISCLASSIFIED_PER_ANCHOR + 1  # too few errors per anchor: the paper's pool
    fp = get_method("uap", **base, n_anchors=many, anchor_pool="auto").fit(tiny_victim, cls_data.task, cls_data, train_zoo, device="cpu", seed=0)
    assert fp.meta["anchor_pool"] == "all" and fp.meta["clustered_points"] == len(cls_data.x_train)
