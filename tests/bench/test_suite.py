"""The bench end to end on the tiny zoo: splits, caching/resume, failure isolation, report files."""
from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from modelprint.bench.metrics import compute_metrics
from modelprint.bench.suite import BenchConfig, plan_splits, run_bench
from modelprint.errors import ModelprintError


class _Doc(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.imgs, self.external = [], {}, [], []
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("src", "href"):
            if a.get(k, "").startswith(("http:", "https:", "//")):
                self.external.append(a[k])
        if tag not in ("img", "meta", "br", "hr", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> (open: {self.stack[-3:]})"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(path):
    doc = _Doc()
    doc.feed(path.read_text())
    doc.close()
    assert doc.stack == [], f"unclosed tags {doc.stack}"
    assert not doc.external, f"report is not self-contained: {doc.external}"
    assert doc.tags.get("table", 0) >= 3
    assert doc.imgs, "no embedded plot"
    for src in doc.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    return doc


def _cfg(tmp_path, victim_dir, tiny_zoo, **kw):
    base = dict(victim=str(victim_dir), dataset="synthetic-cls", zoo=str(tiny_zoo.root), methods=["bench-agree"], out=str(tmp_path / "rep"), device="cpu")
    base.update(kw)
    return BenchConfig(**base)


def test_bench_report_end_to_end(tmp_path, victim_dir, tiny_zoo, agree_method):
    cfg = _cfg(tmp_path, victim_dir, tiny_zoo, splits=["random", "lofo", "loao", "family:extract"], ablations=["recovery", "modifications", "sweep:bench-agree.n_queries=8,40"], budgets=[8, 20],
               suspect_zoos=[str(tiny_zoo.root)])
    res = run_bench(cfg)
    out = tmp_path / "rep"
    for f in ("report.md", "report.html", "results.json"):
        assert (out / f).stat().st_size > 500
    saved = json.loads((out / "results.json").read_text())  # strict JSON (no NaN)
    assert saved["summary"]["bench-agree"]["random"]["auc"] == res["summary"]["bench-agree"]["random"]["auc"]

    runs = [r for r in res["runs"] if not r.get("tag")]
    kinds = {r["split_kind"] for r in runs}
    assert kinds == {"random", "family", "arch"}
    # the only negative family cannot be left out (training would have no negatives): no fold for it
    assert {r["split"] for r in runs if r["split_kind"] == "family"} == {"family:extract-soft", "family:finetune", "family:extract"}
    for r in runs:
        # every reported metric is recomputable from the stored member scores
        s = [np.nan if m["score"] is None else m["score"] for m in r["scores"]]
        y = [1 if m["label"] == "positive" else 0 for m in r["scores"]]
        again = compute_metrics(s, y, tuple(r["score_range"]))
        for k in ("auc", "aruc", "tpr@1%fpr", "r@u=100%"):
            assert again[k] == pytest.approx(r["metrics"][k], nan_ok=True)
        assert r["queries_per_suspect"] == 40
        test_names = {m["name"] for m in r["scores"]}
        assert "victim" not in test_names
    # working copies only: the same scores without the positives keeping < 85 % of the victim's accuracy
    from modelprint.bench.metrics import recovery

    rec_of = {m.name: recovery(m.metrics, res["victim"]) for m in tiny_zoo.members}
    left_out = 0
    for r in runs:
        w = r["metrics_working"]
        keep = [m for m in r["scores"] if m["label"] != "positive" or rec_of[m["name"]] is None or rec_of[m["name"]] >= 0.85]
        if not any(m["label"] == "positive" for m in keep):  # e.g. the tiny soft-label extractions: all broken
            assert w is None
            continue
        assert w["n_left_out"] == len(r["scores"]) - len(keep) and w["min_recovery"] == 0.85
        again = compute_metrics([m["score"] for m in keep], [1 if m["label"] == "positive" else 0 for m in keep], tuple(r["score_range"]))
        assert again["auc"] == pytest.approx(w["auc"]) and again["aruc"] == pytest.approx(w["aruc"])
        left_out += w["n_left_out"]
    assert left_out > 0  # the tiny extractions keep 50-75 % of the victim's accuracy
    assert res["summary"]["bench-agree"]["random"]["working"]["n_runs"] == sum(r["split_kind"] == "random" for r in runs)
    # a held-out family never trains the fingerprint
    for r in runs:
        if r["split_kind"] == "family":
            fam = r["split"].split(":", 1)[1]
            assert not any(f == fam or f.startswith(fam + "-") for f in r["train_families"])

    a = runs[0]["analysis"]
    assert set(a["per_family"]) == {"extract-soft", "finetune", "independent"}
    assert a["per_group"]["extraction-soft"]["label"] == "positive"
    t2 = a["table2"]
    assert t2["per_fingerprint"] and t2["reference"] == "negatives"
    assert {row["arch"] for row in t2["rows"]} == {"tiny-cnn", "tiny-cnn-w12", "all"}
    allrow = t2["rows"][-1]
    assert allrow["piracy"]["n"] == sum(1 for m in runs[0]["scores"] if m["label"] == "positive")

    sweep = res["budget_sweep"]["methods"]["bench-agree"]
    assert [r["budget"] for r in sweep] == [8, 20] and [r["queries_per_suspect"] for r in sweep] == [8, 20]
    assert all(r["how"] == "refit" for r in sweep)
    abl = res["ablations"]
    assert [r["value"] for r in abl["sweep:bench-agree.n_queries"]["bench-agree"]["rows"]] == [8, 40]
    rec = abl["recovery"]["methods"]["bench-agree"]
    assert rec["x"] == "recovery" and rec["points"] and all(p["family"].startswith("extract") for p in rec["points"])
    mod = abl["modifications"]["methods"]["bench-agree"]
    assert {p["family"] for p in mod["points"]} == {"finetune"}
    assert {p["setting"] for p in mod["points"]} == {"random", "unseen family", f"extra: {tiny_zoo.root.name}"}
    # extra suspects: every non-victim member scored once per random-split fingerprint, apart from the metrics
    extra = runs[0]["extra"][tiny_zoo.root.name]
    assert len(extra["scores"]) == len(tiny_zoo.members) - 1 and set(extra["per_family"]) == {"extract-soft", "finetune", "independent"}
    assert not any(r.get("extra") for r in runs if r["split_kind"] != "random")

    plots = {p["file"].split("/")[-1] for p in saved["plots"]}
    assert {"roc.png", "robustness_uniqueness.png", "similarity_cdf.png", "family_scores.png", "generalisation_family.png", "generalisation_arch.png",
            "auc_vs_queries.png", "tsne_bench-agree.png", "ablation_sweeps.png", "ablation_recovery.png", "ablation_modifications.png"} <= plots
    doc = check_html(out / "report.html")
    text = " ".join(doc.text)
    for needle in ("Held-out members", "Generalisation", "Working copies only", "Per-family breakdown", "UAP Tables 2", "Additional suspects", "AUC versus queries", "Ablations", "What the papers report"):
        assert needle in text
    md = (out / "report.md").read_text()
    assert "](plots/roc.png)" in md and "modelprint bench --victim" in md


def test_bench_resumes_from_cache(tmp_path, victim_dir, tiny_zoo, agree_method):
    cfg = _cfg(tmp_path, victim_dir, tiny_zoo, splits=["random", "arch:tiny-cnn"], plots=False)
    first = run_bench(cfg)
    assert agree_method.fits == 2
    again = run_bench(cfg)
    assert agree_method.fits == 2, "a finished (method, split) must not be refitted"
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in first["runs"]]
    # a lost result file (killed while scoring): the saved fingerprint is reused, members are re-scored
    cache = sorted((tmp_path / "rep" / "cache").glob("*.json"))
    assert len(cache) == 2
    cache[0].unlink()
    third = run_bench(cfg)
    assert agree_method.fits == 2
    assert [r["metrics"] for r in third["runs"]] == [r["metrics"] for r in first["runs"]]
    # a torn cache file is recomputed, not trusted
    cache[1].write_text('{"hash": "x", "run": ')
    run_bench(cfg)
    # changing a parameter changes the key: only that is recomputed
    cfg2 = _cfg(tmp_path, victim_dir, tiny_zoo, splits=["random", "arch:tiny-cnn"], plots=False, params={"bench-agree": {"n_queries": 12}})
    r2 = run_bench(cfg2)
    assert agree_method.fits == 4
    assert all(r["queries_per_suspect"] == 12 for r in r2["runs"])


def test_failing_method_does_not_sink_the_others(tmp_path, victim_dir, tiny_zoo, agree_method):
    from modelprint.methods import METHODS, register_method

    if "bench-agree-fail" not in METHODS:
        class Failing(agree_method):
            def __init__(self, **kw):
                kw.setdefault("fail", True)
                super().__init__(**kw)

        register_method("bench-agree-fail")(Failing)
    cfg = _cfg(tmp_path, victim_dir, tiny_zoo, methods=["bench-agree-fail", "bench-agree"])
    res = run_bench(cfg)
    assert res["summary"]["bench-agree"]["random"]["auc"] is not None
    errs = res["summary"]["bench-agree-fail"]["errors"]
    assert "deliberate failure" in errs[0]["error"]
    assert "Failures" in (tmp_path / "rep" / "report.md").read_text()
    assert not list((tmp_path / "rep" / "cache").glob("bench-agree-fail*")), "a failed run must not be cached"
    check_html(tmp_path / "rep" / "report.html")


def test_budget_too_small_is_inconclusive_not_wrong(tmp_path, victim_dir, tiny_zoo, agree_method):
    res = run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, budget=10, plots=False), report=False)
    r = res["runs"][0]
    assert all(m["decision"] == "inconclusive" and m["score"] is None for m in r["scores"])
    assert all(m["details"].get("over_budget") for m in r["scores"])
    assert r["metrics"]["n_inconclusive"] == len(r["scores"])


def test_bad_configs_give_clear_errors(tmp_path, victim_dir, tiny_zoo, agree_method):
    with pytest.raises(ModelprintError, match="unknown method"):
        run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, methods=["no-such-method"]))
    with pytest.raises(ModelprintError, match="bad split"):
        run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, splits=["sideways"]))
    with pytest.raises(ModelprintError, match="finetune"):  # names the families there are
        run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, splits=["family:nope"]))
    with pytest.raises(ModelprintError, match="not in --methods"):
        run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, params={"uap": {"n_anchors": 3}}))
    with pytest.raises(ModelprintError, match="manifest"):
        run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, zoo=str(tmp_path)))
    with pytest.raises(ModelprintError, match="output mode"):
        run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, output_mode="top3"))
    with pytest.raises(ModelprintError, match="unknown ablation"):
        run_bench(_cfg(tmp_path, victim_dir, tiny_zoo, ablations=["everything"], plots=False))


def test_split_planning(tiny_zoo):
    sp = plan_splits(tiny_zoo, ["random", "lofo", "family:finetune"], [0, 1])
    names = [(p.name, p.seed) for p in sp]
    assert len(names) == len(set(names)), "a fold asked for twice runs once"
    for p in sp:
        tr, te = {m.name for m in p.train.members}, {m.name for m in p.test.members}
        assert not tr & te
        assert {m.label for m in p.test.members} == {"positive", "negative"}


def test_cache_key_includes_the_method_code():
    from modelprint.bench.suite import code_digest

    assert code_digest("akh") == code_digest("akh")  # stable within a version
    assert code_digest("akh") != code_digest("uap")  # different sources, different keys
    assert len(code_digest("sac")) == 16


def test_split_planning_with_folds_from_a_smaller_zoo(tiny_zoo):
    """--folds-from: the test sets are exactly those of a bench on the smaller zoo; the extra members
    train every fold that does not hold out their family or architecture."""
    small = {m.name for m in tiny_zoo.members if not m.name.endswith("-3")}
    extra = {"ft-3", "ex-3", "ind-3"}
    specs = ["random", "lofo", "loao"]
    small_zoo = tiny_zoo.subset([m for m in tiny_zoo.members if m.name in small])
    grown = plan_splits(tiny_zoo, specs, [0, 1], folds_from=small_zoo)
    plain = plan_splits(small_zoo, specs, [0, 1])
    assert [(p.name, p.seed) for p in grown] == [(p.name, p.seed) for p in plain]
    for g, p in zip(grown, plain):
        assert g.test.names() == p.test.names()
        added = g.train.names() - p.train.names()
        assert added <= extra and p.train.names() <= g.train.names()
        group = g.name.partition(":")[2]
        expect = {n for n in extra if not (g.kind == "family" and tiny_zoo[n].family == group) and not (g.kind == "arch" and tiny_zoo[n].arch == group)}
        assert added == expect, g.name
    with pytest.raises(ModelprintError, match="not in this zoo"):
        plan_splits(small_zoo, ["random"], [0], folds_from=tiny_zoo)  # the larger zoo as the fold source


def test_bench_with_folds_from_trains_on_the_larger_zoo(tmp_path, victim_dir, tiny_zoo, agree_method):
    from modelprint.bench.report import command_line
    from modelprint.zoo import Zoo

    small_dir = tmp_path / "small"
    for m in tiny_zoo.members:
        if not m.name.endswith("-3"):
            Zoo.append(small_dir, m)
    cfg = _cfg(tmp_path, victim_dir, tiny_zoo, splits=["random", "family:finetune"], plots=False, folds_from=str(small_dir))
    res = run_bench(cfg)
    plain = {(ps.name, ps.seed): ps for ps in plan_splits(Zoo.open(small_dir), ["random", "family:finetune"], [0])}
    for r in (r for r in res["runs"] if not r.get("tag")):
        ps = plain[(r["split"], r["seed"])]
        assert {m["name"] for m in r["scores"]} == ps.test.names()  # the smaller zoo's test members
        assert r["n_train"] == len(ps.train) + (3 if r["split"] == "random" else 2)  # + ft-3, ex-3, ind-3 (not ft-3 when finetune is held out)
    assert f"--folds-from {small_dir}" in command_line(res["config"])
