"""The bench report: ``report.md`` (plots linked from ``plots/``), a self-contained ``report.html``
(CSS inline, plots embedded as base64 PNG: one file to mail or archive) and ``results.json`` (every
number, every member's score and verdict).

Both documents are rendered from one list of blocks, so they always say the same thing.
"""
from __future__ import annotations

import base64
import html
import json
import math
import shlex
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .suite import _json_safe

#: what the papers report, for the "beside the papers" table (UAP: Peng et al. CVPR 2022 §5.2;
#: UTAF: Pan et al., Fig. 2–3 and Table 2). Quoted, not measured here.
PAPER_FIGURES = [
    ("UAP", "uap", "FMNIST", "AUC", "1.0"),
    ("UAP", "uap", "CIFAR-10", "AUC", "1.0"),
    ("UAP", "ipguard", "FMNIST", "AUC", "0.83"),
    ("UAP", "ipguard", "CIFAR-10", "AUC", "0.75"),
    ("UTAF", "utaf", "Skin (ResNet-18)", "ARUC", "0.86"),
    ("UTAF", "utaf", "Warfarin / FashionMNIST DCGAN", "ARUC", "> 0.98"),
    ("UTAF", "ipguard", "Skin (ResNet-18)", "ARUC", "0.27"),
    ("UTAF", "utaf", "Skin (ResNet-18), RTX 2080", "construction s", "202"),
]

Block = tuple


def fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if v != 0 and (abs(v) < 10 ** (-nd) or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.{nd}f}"
    return str(v)


def pm(mean: Any, std: Any, n: int) -> str:
    if mean is None:
        return "–"
    return fmt(mean) if n <= 1 or std is None else f"{fmt(mean)} ± {fmt(std)}"


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _secs(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def command_line(cfg: dict[str, Any]) -> str:
    """The ``modelprint bench`` command that reproduces these results."""
    a = ["modelprint", "bench", "--victim", cfg["victim"], "--dataset", cfg["dataset"], "--zoo", cfg["zoo"], "--methods", ",".join(cfg["methods"]), "--out", cfg["out"]]
    if cfg.get("output_mode", "probs") != "probs":
        a += ["--output-mode", cfg["output_mode"]]
    if cfg.get("budget"):
        a += ["--budget", str(cfg["budget"])]
    for s in cfg.get("splits", []):
        if s == "lofo":
            a.append("--lofo")
        elif s == "loao":
            a.append("--loao")
        elif s.startswith("family:"):
            a += ["--holdout-family", s.split(":", 1)[1]]
        elif s.startswith("arch:"):
            a += ["--holdout-arch", s.split(":", 1)[1]]
    if "random" not in cfg.get("splits", ["random"]):
        a.append("--no-random")
    for m, ps in (cfg.get("params") or {}).items():
        for k, v in ps.items():
            a += ["--param", f"{m}.{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    if list(cfg.get("seeds", [0])) != [0]:
        a += ["--seeds", ",".join(map(str, cfg["seeds"]))]
    if cfg.get("test_fraction", 0.5) != 0.5:
        a += ["--test-fraction", str(cfg["test_fraction"])]
    for ab in cfg.get("ablations", []):
        a += ["--ablation", ab]
    if cfg.get("budgets"):
        a += ["--budgets", ",".join(map(str, cfg["budgets"]))]
    for z in cfg.get("suspect_zoos", []):
        a += ["--suspects-zoo", z]
    if cfg.get("folds_from"):
        a += ["--folds-from", cfg["folds_from"]]
    return " ".join(shlex.quote(x) for x in a)


# -- blocks -----------------------------------------------------------------------------------------
def build_blocks(res: dict[str, Any], plots: list[dict[str, str]]) -> list[Block]:
    B: list[Block] = []
    cfg, env, vic, zoo = res["config"], res["environment"], res["victim"], res["zoo"]
    summ = res["summary"]
    methods = list(cfg["methods"])
    seeds = list(cfg.get("seeds", [0]))
    by_section: dict[str, list[dict[str, str]]] = {}
    for p in plots:
        by_section.setdefault(p["section"], []).append(p)

    B.append(("h", 1, res.get("title") or "modelprint benchmark"))
    hw = f"{env['cpu_count']}-core CPU" + (f", GPU {env['cuda']}" if env.get("cuda") else ", no GPU")
    B.append(("p", f"Run {res['date']} on {hw} (device `{env['device']}`, torch {env['torch']}, {env['torch_threads']} threads); bench time {_secs(res.get('seconds'))} s. Every number below was measured in this run; the raw data are in `results.json`."))
    vacc = f", test accuracy {fmt(vic.get('test_acc'))}" if vic.get("test_acc") is not None else (f", test MAE {fmt(vic.get('test_mae'))}" if vic.get("test_mae") is not None else "")
    B.append(("p", f"Victim `{vic['path']}` ({vic.get('arch') or 'unknown arch'}{vacc}). Zoo `{zoo['path']}`: {zoo['members']} members, architectures {', '.join(zoo['archs'])}. Output mode `{cfg['output_mode']}`, query budget {cfg.get('budget') or 'unlimited'}, held-out fraction {cfg['test_fraction']}, seeds {', '.join(map(str, seeds))}."))
    B.append(("pre", command_line(cfg)))

    # headline
    B.append(("h", 2, "Held-out members (random split)"))
    rows = []
    for m in methods:
        e = summ.get(m, {})
        r = e.get("random")
        c = e.get("cost", {})
        if not r:
            rows.append([m] + ["–"] * 11)
            continue
        n = r["n_runs"]
        rows.append([m, pm(r["auc"], r["auc_std"], n), pm(r["aruc"], r["aruc_std"], n), pm(r.get("aruc_ceiling"), r.get("aruc_ceiling_std"), n), pm(r["r@u=100%"], r["r@u=100%_std"], n), pm(r["tpr@1%fpr"], r["tpr@1%fpr_std"], n), pm(r["tpr@5%fpr"], r["tpr@5%fpr_std"], n),
                     _pct(r.get("detection_rate")), _pct(r.get("false_positive_rate")), fmt(c.get("queries_per_suspect"), 0),
                     f"{_secs(c.get('construction_seconds'))} ({_secs(c.get('construction_cpu_seconds'))})", f"{_secs(c.get('verify_seconds'))} ({_secs(c.get('verify_cpu_seconds'))})"])
    B.append(("table", ["method", "AUC", "ARUC", "ARUC ceiling", "R@U=100%", "TPR@1%FPR", "TPR@5%FPR", "detected @thr", "false pos. @thr", "queries / suspect", "construction s (CPU s)", "verify s / suspect (CPU s)"], rows,
              f"Mean ± STD over {len(seeds)} seed(s). ARUC ceiling: the best min(TPR, TNR) over thresholds, the highest ARUC any rescaling of the same ranking could reach (ARUC far below it: a spread-out score scale; a low ceiling: a ranking no calibration fixes). '@thr' = at the fingerprint's own threshold/decision rule. Seconds: wall-clock medians over runs, with the bench process's CPU seconds in brackets (on a shared machine wall time also measures the other jobs; torch threads: {env['torch_threads']}; CPU seconds divided by the threads approximate an idle machine's wall time)."))
    for p in by_section.get("main", []):
        B.append(("img", p))

    # generalisation
    if any(k in summ.get(m, {}) for m in methods for k in ("family", "arch")):
        B.append(("h", 2, "Generalisation: unseen families and architectures"))
        B.append(("p", "Leave-one-family-out / leave-one-architecture-out: the method is fitted without that family (architecture) and scored on its members, together with unseen members of the other label. This gap is the main quality question: a real thief need not resemble the zoo."))
        rows = []
        for m in methods:
            e = summ.get(m, {})
            r = e.get("random") or {}
            row = [m, fmt(r.get("auc")), fmt(r.get("aruc"))]
            for k in ("family", "arch"):
                f = e.get(k)
                row += [f"{fmt(f['auc'])} (min {fmt(f['auc_min'])}, {f['worst_fold']})" if f else "–", fmt(f["aruc"]) if f else "–", fmt(f["tpr@1%fpr"]) if f else "–"]
            rows.append(row)
        B.append(("table", ["method", "AUC random", "ARUC random", "AUC held-out family (mean, worst)", "ARUC family", "TPR@1%FPR family", "AUC held-out arch (mean, worst)", "ARUC arch", "TPR@1%FPR arch"], rows, "Means over folds (and seeds)."))

    # working copies only (the UAP paper's recovery-rate rule)
    kinds = [k for k in ("random", "family", "arch") if any(k in summ.get(m, {}) for m in methods)]
    left = {m: {k: (summ.get(m, {}).get(k) or {}).get("working") for k in kinds} for m in methods}
    if any(w for lm in left.values() for w in lm.values()):
        B.append(("h", 2, "Working copies only"))
        n_out = max((w["n_left_out"] for lm in left.values() for w in lm.values() if w), default=0)
        if n_out == 0:
            B.append(("p", "Every held-out stolen copy keeps at least 85 % of the victim's test performance (the UAP paper's recovery-rate rule for a copy that counts): the tables above are already working-copy figures."))
        else:
            names = {"random": "held-out", "family": "unseen family", "arch": "unseen architecture"}
            rows = []
            for m in methods:
                row = [m]
                for k in kinds:
                    w = left[m][k]
                    row += [fmt(w["auc"]), fmt(w["aruc"]), str(w["n_left_out"])] if w else ["–"] * 3
                rows.append(row)
            head = ["method"] + [h for k in kinds for h in (f"AUC {names[k]}", f"ARUC {names[k]}", f"copies left out ({names[k]})")]
            B.append(("table", head, rows, "The same runs scored without the stolen copies that keep less than 85 % of the victim's test performance (accuracy ratio for classifiers; victim/member error for regressors and generators): a copy broken by pruning or re-training is no working theft. Means over folds (and seeds) that keep a working copy; 'copies left out' counts test members over those runs."))
        for p in by_section.get("generalisation", []):
            B.append(("img", p))

    # per family / group
    rnd_runs = [r for r in res["runs"] if r.get("split_kind") == "random" and not r.get("tag") and not r.get("error")]
    if rnd_runs:
        B.append(("h", 2, "Per-family breakdown"))
        groups = sorted({g for r in rnd_runs for g in r["analysis"]["per_group"]}, key=lambda g: (rnd_runs[0]["analysis"]["per_group"].get(g, {}).get("label") != "positive", g))
        rows = []
        for g in groups:
            row = [g]
            label = None
            for m in methods:
                rr = [r for r in rnd_runs if r["method"] == m and g in r["analysis"]["per_group"]]
                if not rr:
                    row.append("–")
                    continue
                e = [r["analysis"]["per_group"][g] for r in rr]
                label = e[0]["label"]
                flag = sum(x["flagged_rate"] * x["n"] for x in e) / max(1, sum(x["n"] for x in e))
                key = "auc_vs_negatives" if label == "positive" else "auc_vs_positives"
                a = [x.get(key) for x in e if x.get(key) is not None]
                cell = f"{fmt(sum(a) / len(a)) if a else '–'}"
                if label == "positive":
                    t5 = [x["tpr@5%fpr_vs_negatives"] for x in e if x.get("tpr@5%fpr_vs_negatives") is not None]
                    cell += f" / {_pct(sum(t5) / len(t5)) if t5 else '–'}"
                row.append(f"{cell} / {_pct(flag)}")
            rows.insert(len(rows), [row[0] + (" (+)" if label == "positive" else " (−)")] + row[1:])
        B.append(("table", ["group"] + methods, rows, "Cells: AUC of that group against all held-out members of the other label / for positive (+) groups, TPR at 5% FPR against all held-out negatives (QuRD's per-family figure) / share flagged 'pirated' at the fingerprint's threshold (detection rate for positive (+) groups, false-positive rate for negative (−) groups). Random split, mean over seeds."))
        for m in methods:
            rr = [r for r in rnd_runs if r["method"] == m]
            if not rr:
                continue
            r0 = rr[0]
            rows = []
            for fam, e in r0["analysis"]["per_family"].items():
                a = e.get("auc_vs_negatives", e.get("auc_vs_positives"))
                rows.append([fam, e["group"], e["label"], e["n"], fmt(e["mean"]), fmt(e["std"]), fmt(e["min"]), fmt(e["max"]), _pct(e["flagged_rate"]), fmt(a), e["inconclusive"]])
            B.append(("details", f"{m}: every family (seed {r0['seed']})", [("table", ["family", "group", "label", "n", "mean", "STD", "min", "max", "flagged", "AUC vs other label", "inconclusive"], rows, "")]))

        # UAP Tables 2-3
        B.append(("h", 2, "Similarity of piracy vs homologous models (UAP Tables 2–3 layout)"))
        for m in methods:
            rr = [r for r in rnd_runs if r["method"] == m]
            if not rr:
                continue
            t2 = rr[0]["analysis"]["table2"]
            rows = []
            for row in t2["rows"]:
                a = row["arch"] + (f" {row['optimizer']}" if row.get("optimizer") else "")
                pi, ho = row["piracy"], row["homologous"]
                rows.append([a, pi["n"], fmt(pi["mean"], 4), fmt(pi["std"], 4), fmt(pi["p_value"]), fmt(pi["method_p"]), ho["n"], fmt(ho["mean"], 4), fmt(ho["std"], 4), fmt(ho["p_value"]), fmt(ho["method_p"])])
            what = "per-fingerprint similarities" if t2["per_fingerprint"] else "one score per model"
            B.append(("table", ["architecture", "piracy n", "mean", "STD", "p (Welch)", "p (method)", f"{t2['reference']} n", "mean", "STD", "p (Welch)", "p (method)"], rows,
                      f"{m}, seed {rr[0]['seed']}: {what}; one-sided Welch t-test against the held-out {t2['reference']} models (excluding the model tested), median over models; 'p (method)' is the median of the method's own verdict p-values. Lower p for piracy and high p for homologous is the paper's pattern."))

    # extra suspects
    for zname, zi in (res.get("suspect_zoos") or {}).items():
        B.append(("h", 2, f"Additional suspects: {zname}"))
        B.append(("p", f"Every member of `{zi['path']}` ({zi['members']} models of the same victim, never used to fit anything), scored by each method's random-split fingerprint (seed {seeds[0]})."))
        rows = []
        first = {r["method"]: r for r in reversed(rnd_runs) if r.get("extra") and zname in r["extra"]}
        fams = sorted({f for r in first.values() for f in r["extra"][zname]["per_family"]})
        for fam in fams:
            row = [fam]
            for m in methods:
                e = first.get(m, {}).get("extra", {}).get(zname, {}).get("per_family", {}).get(fam)
                row.append("–" if e is None else f"{fmt(e['mean'])} (min {fmt(e['min'])}) / {_pct(e['flagged_rate'])} / {fmt(e.get('auc_vs_heldout'))}")
            rows.append(row)
        B.append(("table", ["family"] + methods, rows, "Cells: mean score (lowest) / share flagged 'pirated' / AUC against the random split's held-out members of the other label."))

    # budget
    bs = res.get("budget_sweep")
    if bs:
        B.append(("h", 2, "AUC versus queries per suspect"))
        budgets = sorted({r["budget"] for rows in bs["methods"].values() for r in rows})
        rows = []
        for m, mr in bs["methods"].items():
            d = {r["budget"]: r for r in mr}
            rows.append([m] + [("err" if d[b].get("error") else f"{fmt(d[b].get('auc'))} ({fmt(d[b].get('queries_per_suspect'), 0)} q, {d[b]['how']})") if b in d else "–" for b in budgets])
        B.append(("table", ["method"] + [f"budget {b}" for b in budgets], rows, f"AUC (actual queries per suspect, how the budget was applied), {bs['split']} split, seed {bs['seed']}."))
        for p in by_section.get("budget", []):
            B.append(("img", p))

    # ablations
    abl = res.get("ablations") or {}
    if abl:
        B.append(("h", 2, "Ablations (UAP paper §5.3–5.4)"))
        for name, val in abl.items():
            if name in ("anchors", "topk") or name.startswith("sweep:"):
                for m, sw in val.items():
                    rows = [[str(r["value"])] + (["error: " + r["error"]] + [""] * 7 if r.get("error") else [fmt(r.get("auc")), fmt(r.get("aruc")), fmt(r.get("tpr@1%fpr")), fmt(r.get("pos_mean")), fmt(r.get("neg_mean")), fmt(r.get("gap")), fmt(r.get("queries_per_suspect"), 0), _secs(r.get("construction_seconds"))]) for r in sw["rows"]]
                    B.append(("table", [sw["param"], "AUC", "ARUC", "TPR@1%FPR", "pos mean", "neg mean", "gap", "queries", "construction s"], rows, f"{name}: {m}, refit per value on the {sw['split']} split (seed {sw['seed']})."))
            elif name == "recovery":
                for m, v in val["methods"].items():
                    rows = [[f"{b['lo']:.2f}–{b['hi']:.2f}", b["n"], fmt(b["mean"]), fmt(b["std"]), _pct(b["detected"])] for b in v["bins"]]
                    B.append(("table", [f"{v['x']} bin", "n", "mean score", "STD", "detected"], rows, f"Recovery rate: {m}, held-out extraction members (victim test accuracy {fmt(val.get('victim_test_acc'))}); negatives' mean score {fmt(v.get('negative_mean'))}."))
            elif name == "local-ap":
                rows = [[m, "error: " + v["error"]] + [""] * 4 if v.get("error") else [m, fmt(v.get("auc")), fmt(v.get("aruc")), fmt(v.get("pos_mean")), fmt(v.get("neg_mean")), fmt(v.get("gap"))] for m, v in val["methods"].items()]
                B.append(("table", ["pipeline", "AUC", "ARUC", "piracy mean", "negative mean", "gap"], rows, f"UAP vs local adversarial perturbations on the {val['split']} split (seed {val['seed']})."))
            elif name == "modifications":
                for m, v in val["methods"].items():
                    rows = [[s["family"], s["setting"], s["n"], fmt(s["mean"]), fmt(s["min"]), _pct(s["detected"])] for s in v["summary"]]
                    B.append(("table", ["modification", "fingerprint fitted on", "n", "mean score", "min score", "detected"], rows, f"{m}: modified stolen copies; the highest negative score is {fmt(v.get('negative_max'))}."))
        for p in by_section.get("ablations", []):
            B.append(("img", p))

    for p in by_section.get("embeddings", []):
        B.append(("img", p))

    # every run
    B.append(("h", 2, "Every run"))
    rows = []
    for r in res["runs"]:
        if r.get("error"):
            rows.append([r["method"], r["split"], r["seed"], r.get("tag") or "", "error", r["error"][:120], "", "", "", ""])
            continue
        mt = r["metrics"]
        rows.append([r["method"], r["split"], r["seed"], r.get("tag") or "", f"{r['n_train']}/{r['n_test']}", fmt(mt["auc"]), fmt(mt["aruc"]), fmt(mt["tpr@1%fpr"]), fmt(mt["r@u=100%"]), fmt(r["queries_per_suspect"], 0)])
    B.append(("details", f"{len(res['runs'])} runs (method × split × seed)", [("table", ["method", "split", "seed", "tag", "train/test", "AUC", "ARUC", "TPR@1%FPR", "R@U=100%", "queries"], rows, "")]))
    errs = {m: e["errors"] for m, e in summ.items() if e.get("errors")}
    if errs:
        B.append(("h", 2, "Failures"))
        for m, es in errs.items():
            for e in es:
                B.append(("p", f"**{m}** on {e['split']} (seed {e['seed']}) failed: `{e['error']}` (traceback in results.json)."))

    # papers
    B.append(("h", 2, "What the papers report"))
    B.append(("table", ["paper", "method", "setting", "metric", "reported"], [list(r) for r in PAPER_FIGURES], "Quoted from the papers for comparison (different zoos, hardware and protocols); not measured here."))
    return B


# -- renderers --------------------------------------------------------------------------------------
def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_md(blocks: list[Block], out: Path) -> str:
    lines: list[str] = []

    def emit(b: Block) -> None:
        kind = b[0]
        if kind == "h":
            lines.append(f"{'#' * b[1]} {b[2]}\n")
        elif kind == "p":
            lines.append(b[1] + "\n")
        elif kind == "pre":
            lines.append("```\n" + b[1] + "\n```\n")
        elif kind == "table":
            _, headers, rows, caption = b
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            lines.append("|" + "---|" * len(headers))
            for r in rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            lines.append("")
            if caption:
                lines.append(f"*{caption}*\n")
        elif kind == "img":
            p = b[1]
            rel = Path(p["file"]).relative_to(out) if Path(p["file"]).is_relative_to(out) else Path(p["file"])
            lines.append(f"![{p['title']}]({rel.as_posix()})\n")
            lines.append(f"*{p['title']}.* {p['caption']}\n")
        elif kind == "details":
            lines.append(f"**{b[1]}**\n")
            for sub in b[2]:
                emit(sub)

    for b in blocks:
        emit(b)
    return "\n".join(lines)


CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;padding:0 1.5em;color:#1d2330;line-height:1.45}
h1{border-bottom:3px solid #3b6ea8;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #ccd;padding-bottom:.2em;color:#24476f}
table{border-collapse:collapse;margin:.8em 0;font-size:.86em}th,td{border:1px solid #ccd;padding:.3em .6em;text-align:right}
th{background:#eef2f8}td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#f8f9fc}
caption{caption-side:bottom;text-align:left;font-style:italic;color:#555;padding-top:.3em;font-size:.95em}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #dde}figcaption{color:#555;font-size:.9em}
pre{background:#f3f4f7;padding:.7em;white-space:pre-wrap;word-break:break-all;font-size:.85em}code{background:#f3f4f7;padding:0 .2em}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600;color:#24476f}
"""


def _inline(text: str) -> str:
    """Escape, then the two inline markdown forms the blocks use: `code` and **bold**."""
    import re

    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)


def render_html(blocks: list[Block], title: str) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>"]

    def emit(b: Block) -> None:
        kind = b[0]
        if kind == "h":
            parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif kind == "p":
            parts.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "table":
            _, headers, rows, caption = b
            parts.append("<table>")
            if caption:
                parts.append(f"<caption>{_inline(caption)}</caption>")
            parts.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr></thead><tbody>")
            for r in rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</tbody></table>")
        elif kind == "img":
            p = b[1]
            data = base64.b64encode(Path(p["file"]).read_bytes()).decode()
            parts.append(f"<figure><img alt='{html.escape(p['title'])}' src='data:image/png;base64,{data}'><figcaption><strong>{html.escape(p['title'])}.</strong> {html.escape(p['caption'])}</figcaption></figure>")
        elif kind == "details":
            parts.append(f"<details><summary>{html.escape(b[1])}</summary>")
            for sub in b[2]:
                emit(sub)
            parts.append("</details>")

    for b in blocks:
        emit(b)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results: dict[str, Any], out: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``plots/*.png``, ``report.md`` and ``report.html`` into ``out``."""
    from .plots import make_all

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = make_all(results, out / "plots") if plots else []
    results = dict(results)
    results["plots"] = [{**p, "file": str(Path(p["file"]).relative_to(out))} for p in figs]
    atomic_write_text(out / "results.json", json.dumps(_json_safe(results), indent=1, allow_nan=False))
    blocks = build_blocks(results, figs)
    atomic_write_text(out / "report.md", render_md(blocks, out))
    atomic_write_text(out / "report.html", render_html(blocks, results.get("title") or "modelprint benchmark"))
    return {"results": out / "results.json", "markdown": out / "report.md", "html": out / "report.html", "plots": out / "plots"}
