"""Construction and verification seconds for a CIFAR-10 ResNet-18 victim — the setting of UTAF's Table 2
(202 ± 11 s construction on an RTX 2080 at N = 100 inputs and 1000 iterations, 7.2 s verification) — on
the device at hand. On this project's CPU machines it gives the CPU figures; the same command on a GPU
machine (``--device cuda``) gives the GPU ones.

Timing only, so the weights are untrained: a ResNet-18's forward and backward passes cost the same
whatever its weights. The victim is a fresh CIFAR-10 ResNet-18 (torchvision's, 3×3 stem for 32 px);
the zoo (written to a temporary directory in the real zoo format) holds ``--members`` of them —
positives: the victim with small weight noise, negatives: fresh initialisations.

* ``utaf``: fits of ``--iterations`` steps (default 10); seconds per step from the fit's own clock of its
  optimisation loop (``meta.train_seconds``), set-up = the rest (loading the zoo, scoring the members at
  the end); the 1000-iteration figure is set-up + 1000 steps (``--full`` also runs the 1000 iterations —
  minutes on a GPU, hours on a CPU). Verification: one suspect, N queries.
* ``uap``: verification queries one suspect with m × n × 2 = 4 000 inputs (the encoder on top costs
  milliseconds); ``--uap-fit`` also times a whole fit (K-means over ``--kmeans-samples`` training images,
  the UAP on ``--uap-samples``, the members' answers, the encoder) — long on a CPU.

Every figure is a median over ``--repeats`` runs (wall seconds; CPU seconds of the process beside them).

    python benchmarks/resnet18_timing.py --out docs/results/resnet18_timing.json
    python benchmarks/resnet18_timing.py --device cuda --full --uap-fit --out runs/resnet18_timing_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

os.environ.setdefault("MODELPRINT_PROGRESS", "0")


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float, float]:
    """Run ``fn``; return its result, wall seconds and this process's CPU seconds (synchronising CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - w0, time.process_time() - c0


def build_zoo(root: Path, victim: torch.nn.Module, task: Any, n_members: int, seed: int) -> Any:
    """A zoo of untrained ResNet-18s in the real format: half noisy copies of the victim, half fresh."""
    from modelprint.io import save_model, sha256_file
    from modelprint.nets import build_net
    from modelprint.zoo import Zoo, ZooMember

    save_model(victim, task, root / "members" / "victim", "resnet18")
    Zoo.append(root, ZooMember("victim", "positive", "victim", "victim", "resnet18", "members/victim"))
    g = torch.Generator().manual_seed(seed)
    for i in range(n_members):
        positive = i % 2 == 0
        if positive:
            net = build_net("resnet18", task)
            net.load_state_dict(victim.state_dict())
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(0.01 * p.std().nan_to_num(0.0) * torch.randn(p.shape, generator=g))
        else:
            torch.manual_seed(seed + 1 + i)
            net = build_net("resnet18", task)
        name, label, family = (f"copy-{i}", "positive", "finetune") if positive else (f"fresh-{i}", "negative", "independent")
        d = save_model(net, task, root / "members" / name, "resnet18")
        Zoo.append(root, ZooMember(name, label, family, family, "resnet18", f"members/{name}", sha256=sha256_file(d / "model.safetensors")))
    return Zoo.open(root)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--members", type=int, default=4, help="zoo members (half positives)")
    ap.add_argument("--n-inputs", type=int, default=100, help="utaf N")
    ap.add_argument("--iterations", type=int, default=10, help="utaf iterations per timed fit (the 1000-iteration figure is extrapolated)")
    ap.add_argument("--full", action="store_true", help="utaf: also run the paper's 1000 iterations")
    ap.add_argument("--uap-fit", action="store_true", help="uap: also time a whole fit")
    ap.add_argument("--kmeans-samples", type=int, default=20000)
    ap.add_argument("--uap-samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    from modelprint.data import load_dataset
    from modelprint.device import pick_device
    from modelprint.methods import get_method
    from modelprint.nets import build_net
    from modelprint.suspects.base import TorchSuspect

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    ds = load_dataset("cifar10")
    task = ds.task
    torch.manual_seed(args.seed)
    victim = build_net("resnet18", task).eval()
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "device": str(dev), "cuda": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "victim": "resnet18 (CIFAR-10 stem), untrained weights", "params": sum(p.numel() for p in victim.parameters()), "members": args.members, "repeats": args.repeats,
    }
    print(f"device {dev}, torch threads {torch.get_num_threads()}, ResNet-18 with {res['params']:,} parameters")

    with tempfile.TemporaryDirectory(prefix="resnet18-zoo-") as tmp:
        zoo = build_zoo(Path(tmp), victim, task, args.members, args.seed)
        # -- utaf: seconds per optimisation step from the fit's own clock ------------------------------
        steps, setups, cpus = [], [], []
        fp = None
        for r in range(args.repeats):
            method = get_method("utaf", n_inputs=args.n_inputs, iterations=args.iterations)
            fp, w, c = timed(lambda: method.fit(victim, task, ds, zoo, device=str(dev), seed=args.seed + r), dev)
            train = float(fp.meta["train_seconds"])
            steps.append(train / args.iterations)
            setups.append(w - train)
            cpus.append(c)
            print(f"utaf {args.iterations} iterations: {w:.1f} s wall ({train:.1f} s in the steps), {c:.1f} CPU s")
        per_it, setup = statistics.median(steps), statistics.median(setups)
        utaf: dict[str, Any] = {"n_inputs": args.n_inputs, "iterations": args.iterations, "seconds_per_iteration": per_it, "setup_seconds": setup,
                                "fit_cpu_seconds": statistics.median(cpus), "extrapolated_1000_iterations": setup + 1000 * per_it}
        print(f"utaf: {per_it:.2f} s per iteration, set-up {setup:.1f} s -> 1000 iterations ~ {utaf['extrapolated_1000_iterations']:.0f} s")
        if args.full:
            method = get_method("utaf", n_inputs=args.n_inputs, iterations=1000)
            fp, w, c = timed(lambda: method.fit(victim, task, ds, zoo, device=str(dev), seed=args.seed), dev)
            utaf["measured_1000_iterations"] = {"wall": w, "cpu": c}
            print(f"utaf 1000 iterations measured: {w:.0f} s wall, {c:.0f} CPU s")
        suspect_net = zoo.module("copy-0")

        def copy_suspect() -> TorchSuspect:  # a fresh black box per timed run (its own query count)
            return TorchSuspect(suspect_net, task, "probs", name="copy-0", device=dev)

        walls = []
        for _ in range(args.repeats):
            s = copy_suspect()
            _, w, _ = timed(lambda: fp.verify(s), dev)
            walls.append(w)
        utaf["verify_seconds"] = statistics.median(walls)
        print(f"utaf verification: {utaf['verify_seconds']:.3f} s per suspect ({args.n_inputs} queries)")
        res["utaf"] = utaf

        # -- uap: verification queries (and optionally a whole fit) -----------------------------------
        defaults = get_method("uap").params
        n_q = int(defaults["n_fingerprints"]) * int(defaults["n_anchors"]) * 2
        x = ds.x_train[:n_q].clone()
        walls = []
        for _ in range(args.repeats):
            s = copy_suspect()
            _, w, _ = timed(lambda: s.query(x), dev)
            walls.append(w)
        uap: dict[str, Any] = {"queries": n_q, "verify_query_seconds": statistics.median(walls)}
        print(f"uap verification: {uap['verify_query_seconds']:.2f} s for {n_q} queries")
        if args.uap_fit:
            method = get_method("uap", kmeans_samples=args.kmeans_samples, uap_samples=args.uap_samples)
            ufp, w, c = timed(lambda: method.fit(victim, task, ds, zoo, device=str(dev), seed=args.seed), dev)
            uap["fit"] = {"wall": w, "cpu": c, "kmeans_samples": args.kmeans_samples, "uap_samples": args.uap_samples,
                          "seconds": ufp.meta.get("seconds"), "uap": ufp.meta.get("uap")}
            s = copy_suspect()
            _, w, _ = timed(lambda: ufp.verify(s), dev)
            uap["verify_seconds"] = w
            print(f"uap fit: {uap['fit']['wall']:.0f} s wall; verification {w:.2f} s per suspect")
        res["uap"] = uap
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
