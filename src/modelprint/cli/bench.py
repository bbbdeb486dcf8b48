"""``modelprint bench``: every method on the same zoo split, same budget and output mode; writes the report."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ..errors import ModelprintError
from . import app, err, out


def parse_method_params(items: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """``method.key=value`` (value parsed as JSON when it is JSON, else kept as a string)."""
    params: dict[str, dict[str, Any]] = {}
    for it in items:
        if "=" not in it or "." not in it.split("=", 1)[0]:
            raise ModelprintError(f"bad --param {it!r}", fix="write --param METHOD.NAME=VALUE, e.g. --param uap.n_anchors=50")
        k, v = it.split("=", 1)
        m, name = k.split(".", 1)
        if m not in methods:
            raise ModelprintError(f"--param {it!r} names method {m!r}, which is not in --methods", fix=f"methods: {', '.join(methods)}")
        try:
            val = json.loads(v)
        except json.JSONDecodeError:
            val = v
        params.setdefault(m, {})[name] = val
    return params


def parse_int_list(text: str | None, what: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ModelprintError(f"bad {what} {text!r}", fix=f"write comma-separated integers, e.g. {what} 0,1,2") from None


def summary_table(results: dict[str, Any], title: str = "held-out members") -> Table:
    """A rich table of the headline numbers (every value from ``results``); generalisation columns only
    when leave-one-family/architecture-out folds were run."""
    from ..bench.report import _pct, _secs, fmt

    summ = results["summary"]
    has_f = any("family" in e for e in summ.values())
    has_a = any("arch" in e for e in summ.values())
    cols = ["method", "AUC", "ARUC", "ARUC ceil.", "R@U=100%", "TPR@1%FPR", "detected", "false pos."]
    cols += (["AUC unseen family"] if has_f else []) + (["AUC unseen arch"] if has_a else []) + ["queries", "fit s", "verify s"]
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c == "method" else "right", no_wrap=c != "method")
    for m, e in summ.items():
        r, c = e.get("random", {}), e.get("cost", {})
        if e.get("errors") and not r:
            t.add_row(m, f"[red]failed: {e['errors'][0]['error'][:60]}[/]", *[""] * (len(cols) - 2))
            continue
        row = [m, fmt(r.get("auc")), fmt(r.get("aruc")), fmt(r.get("aruc_ceiling")), fmt(r.get("r@u=100%")), fmt(r.get("tpr@1%fpr")), _pct(r.get("detection_rate")), _pct(r.get("false_positive_rate"))]
        if has_f:
            row.append(fmt(e["family"]["auc"]) if e.get("family") else "–")
        if has_a:
            row.append(fmt(e["arch"]["auc"]) if e.get("arch") else "–")
        row += [fmt(c.get("queries_per_suspect"), 0), _secs(c.get("construction_seconds")), _secs(c.get("verify_seconds"))]
        t.add_row(*row)
    return t


WIDE = 160


def print_wide(renderable: Any) -> None:
    """Print a table without squeezing its numbers into ellipses when stdout is a log file or a pipe
    (rich assumes 80 columns there)."""
    if out.is_terminal or out.width >= WIDE:
        out.print(renderable)
    else:
        from rich.console import Console

        Console(width=WIDE, highlight=False).print(renderable)


@app.command("bench")
def bench(
    victim: Path = typer.Option(..., "--victim", "-v", help="victim model file or modelprint model directory"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="registered dataset name or .npz"),
    zoo: Path = typer.Option(..., "--zoo", help="zoo directory (manifest.jsonl)"),
    methods: str = typer.Option(..., "--methods", "-m", help="comma-separated: uap,utaf,ipguard,modeldiff,deepfool,conferae,sac,akh"),
    out_dir: Path = typer.Option(Path("report"), "--out", "-o", help="report directory (cache inside: re-run to resume)"),
    output_mode: str = typer.Option("probs", "--output-mode", help="what suspects reveal: probs | topk:K | label | raw"),
    budget: Optional[int] = typer.Option(None, "--budget", help="maximum queries per suspect (same for every method)"),
    holdout_family: list[str] = typer.Option([], "--holdout-family", help="also fit without family F (and F-*) and score it (repeatable)"),
    holdout_arch: list[str] = typer.Option([], "--holdout-arch", help="also fit without architecture A and score it (repeatable)"),
    lofo: bool = typer.Option(False, "--lofo", help="leave-one-family-out folds"),
    loao: bool = typer.Option(False, "--loao", help="leave-one-architecture-out folds"),
    random_split: bool = typer.Option(True, "--random/--no-random", help="the random held-out split (stratified by family)"),
    param: list[str] = typer.Option([], "--param", "-p", help="METHOD.NAME=VALUE method parameter (repeatable)"),
    seeds: str = typer.Option("0", "--seeds", help="comma-separated seeds of the random split"),
    test_fraction: float = typer.Option(0.5, "--test-fraction", help="fraction of each family held out"),
    ablation: list[str] = typer.Option([], "--ablation", help="anchors[=n,..] | topk[=k,..] | recovery | local-ap | modifications | sweep:M.P=v,.. (repeatable)"),
    budgets: Optional[str] = typer.Option(None, "--budgets", help="budget sweep for AUC-vs-queries, e.g. 20,50,100,200"),
    suspects_zoo: list[Path] = typer.Option([], "--suspects-zoo", help="extra suspects: a zoo of the same victim, scored by every random-split fingerprint, never trained on (repeatable)"),
    folds_from: Optional[Path] = typer.Option(None, "--folds-from", help="a zoo this --zoo extends: folds (test sets) come from its members only, exactly as a bench on it; the other members only join the training sets"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    plots: bool = typer.Option(True, "--plots/--no-plots"),
    title: str = typer.Option("modelprint benchmark", "--title"),
) -> None:
    """Fit every method on the zoo's training members, verify every held-out member, write the report."""
    from ..bench.suite import BenchConfig, run_bench

    ms = [m.strip() for m in methods.split(",") if m.strip()]
    splits = (["random"] if random_split else []) + [f"family:{f}" for f in holdout_family] + [f"arch:{a}" for a in holdout_arch]
    splits += (["lofo"] if lofo else []) + (["loao"] if loao else [])
    if not splits:
        raise ModelprintError("no split to run", fix="keep the random split or add --holdout-family/--holdout-arch/--lofo/--loao")
    cfg = BenchConfig(
        victim=str(victim), dataset=dataset, zoo=str(zoo), methods=ms, out=str(out_dir), output_mode=output_mode, budget=budget,
        splits=splits, params=parse_method_params(param, ms), seeds=parse_int_list(seeds, "--seeds") or [0], test_fraction=test_fraction,
        device=device, ablations=list(ablation), budgets=parse_int_list(budgets, "--budgets"), suspect_zoos=[str(z) for z in suspects_zoo], plots=plots, title=title,
        folds_from=str(folds_from) if folds_from else None,
    )
    results = run_bench(cfg, log=lambda msg: err.print(msg, highlight=False))
    print_wide(summary_table(results))
    rep = results["report"]
    out.print(f"[green]report[/] {rep['html']}  ({rep['markdown']}, {rep['results']})")
