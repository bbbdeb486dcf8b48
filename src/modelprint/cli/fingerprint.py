"""``modelprint fingerprint build`` and ``modelprint verify``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from . import app, err, out

fp_app = typer.Typer(help="Build fingerprints of a victim model.", no_args_is_help=True)
app.add_typer(fp_app, name="fingerprint")


def _parse_params(params: list[str]) -> dict:
    d = {}
    for p in params:
        if "=" not in p:
            from ..errors import ModelprintError

            raise ModelprintError(f"bad --param {p!r}", fix="write --param name=value, e.g. --param n_anchors=50")
        k, v = p.split("=", 1)
        try:
            d[k] = json.loads(v)
        except json.JSONDecodeError:
            d[k] = v
    return d


@fp_app.command("build")
def build(
    method: str = typer.Option(..., "--method", "-m", help="uap, utaf, ipguard, modeldiff, deepfool, conferae, sac, akh"),
    victim: Path = typer.Option(..., "--victim", "-v", help="victim model file or modelprint model directory"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="registered dataset name or .npz"),
    zoo: Optional[Path] = typer.Option(None, "--zoo", help="zoo directory (learned methods train on its members)"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="where the fingerprint directory is written"),
    param: list[str] = typer.Option([], "--param", "-p", help="method parameter name=value (repeatable)"),
    holdout: float = typer.Option(0.5, help="fraction of each zoo family kept out of fitting (for honest evaluation)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
) -> None:
    """Fingerprint a victim (white-box) with one method and save it."""
    from ..data import load_dataset
    from ..io import load_model
    from ..methods import get_method
    from ..zoo import Zoo, split_random

    lm = load_model(victim)
    ds = load_dataset(dataset)
    m = get_method(method, **_parse_params(param))
    z = None
    if zoo is not None:
        z = Zoo.open(zoo)
        if holdout > 0:
            z, _ = split_random(z, holdout, seed)
    t0 = time.perf_counter()
    fp = m.fit(lm.module, lm.task, ds, z, device=device, seed=seed)
    secs = time.perf_counter() - t0
    fp.meta.setdefault("construction_seconds", secs)
    fp.save(out_dir)
    out.print(f"[green]fingerprint[/] {method} of {victim} -> {out_dir}  ({secs:.1f} s, {fp.queries_per_suspect} queries per suspect)")


@app.command("verify")
def verify(
    suspects: list[str] = typer.Argument(..., help="model files/directories or http(s):// prediction API URLs"),
    fingerprint: Path = typer.Option(..., "--fingerprint", "-f", help="fingerprint directory"),
    output_mode: Optional[str] = typer.Option(None, "--output-mode", help="probs | topk:K | label | raw (default: the fingerprint's)"),
    token_env: Optional[str] = typer.Option(None, "--token-env", help="environment variable holding the API bearer token"),
    budget: Optional[int] = typer.Option(None, "--budget", help="maximum queries per suspect"),
    evidence_dir: Optional[Path] = typer.Option(None, "--evidence", help="write each suspect's query/response log here (JSONL)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per suspect per line"),
) -> None:
    """Check suspects against a fingerprint by black-box queries; print verdicts."""
    from ..errors import ModelprintError
    from ..methods import load_fingerprint
    from ..suspects.factory import open_suspect
    from ..verdict import Verdict

    fp = load_fingerprint(fingerprint)
    mode = output_mode or fp.params.get("output_mode", "probs" if fp.task.kind == "classification" else "raw")
    verdicts = []
    for s in suspects:
        kw = {}
        if evidence_dir is not None:
            kw["evidence_path"] = Path(evidence_dir) / (Path(s).name.replace(":", "_").replace("/", "_") + ".jsonl")
        try:
            sus = open_suspect(s, task=fp.task, mode=mode, budget=budget, token_env=token_env, **kw)
        except ModelprintError as e:
            # one unreadable file or unreachable API must not abort the other suspects
            v = Verdict(s, fp.method, float("nan"), fp.threshold, None, "inconclusive", 0, 0.0, "", {"error": str(e)})
        else:
            v = fp.verify(sus)
            v.suspect = s
            if sus.evidence is not None:
                v.details["evidence_log"] = str(kw["evidence_path"])
                v.details["evidence_head"] = sus.evidence.head
        verdicts.append(v)
        if as_json:
            print(v.to_json(), flush=True)
    if not as_json:
        t = Table(title=f"{fp.method} verdicts")
        for c in ("suspect", "score", "threshold", "p-value", "decision", "queries", "seconds"):
            t.add_column(c)
        colour = {"pirated": "red", "independent": "green", "inconclusive": "yellow"}
        for v in verdicts:
            p = "-" if v.p_value is None else f"{v.p_value:.2e}"
            if "error" in v.details:
                err.print(f"[yellow]{v.suspect}[/]: {v.details['error']}", highlight=False)
            if "note" in v.details:
                err.print(f"{v.suspect}: {v.details['note']}", highlight=False)
            t.add_row(v.suspect, f"{v.score:.4f}", f"{v.threshold:.4f}", p, f"[{colour[v.decision]}]{v.decision}[/]", str(v.queries), f"{v.seconds:.2f}")
        out.print(t)
