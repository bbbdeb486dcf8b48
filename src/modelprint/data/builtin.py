"""Built-in datasets: fashion-mnist, mnist, digits, user .npz and the tiny synthetic-* sets for tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelprintError
from ..tasks import Task
from .base import Dataset, as_float_images, find_file, register_dataset
from .idx import read_idx

FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def image_task(shape: tuple[int, int, int], num_classes: int, description: str) -> Task:
    return Task("classification", shape, (num_classes,), 0.0, 1.0, num_classes=num_classes, description=description)


def _load_idx_dataset(name: str, subdirs: list[str], fix: str, root: Any = None, classes: list[str] | None = None) -> Dataset:
    arrays = []
    for stem in IDX_FILES:
        cands = [f"{d}/{stem}{ext}" for d in subdirs for ext in (".gz", "")]
        arrays.append(read_idx(find_file(cands, name, fix, root)))
    xtr, ytr, xte, yte = arrays
    task = image_task((1, 28, 28), 10, f"{name}: 28x28 grey images, pixels in [0,1], 10 classes")
    return Dataset(
        name,
        task,
        as_float_images(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        as_float_images(xte),
        torch.from_numpy(yte.astype(np.int64)),
        classes or [str(i) for i in range(10)],
    )


@register_dataset("fashion-mnist")
def fashion_mnist(root: Any = None) -> Dataset:
    return _load_idx_dataset(
        "fashion-mnist",
        ["fashion-mnist", "FashionMNIST/raw", "fashion_mnist", "."],
        "sudo apt-get install -y dataset-fashion-mnist (files land in /usr/share/datasets/fashion-mnist/), "
        "or set MODELPRINT_DATA_DIR to a folder holding fashion-mnist/*-ubyte.gz",
        root,
        FMNIST_CLASSES,
    )


@register_dataset("mnist")
def mnist(root: Any = None) -> Dataset:
    return _load_idx_dataset(
        "mnist",
        ["mnist", "MNIST/raw", "."],
        "set MODELPRINT_DATA_DIR to a folder holding mnist/*-ubyte.gz (IDX files, gzipped or not)",
        root,
    )


@register_dataset("digits")
def digits(root: Any = None) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images), pixels scaled to [0,1]; fixed 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    cut = int(0.8 * len(x))
    tr, te = perm[:cut], perm[cut:]
    task = image_task((1, 8, 8), 10, "digits: 8x8 grey images, pixels in [0,1], 10 classes")
    return Dataset("digits", task, x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)])


@register_dataset("digits-28")
def digits_28(root: Any = None) -> Dataset:
    """scikit-learn's digits resized to MNIST's layout: each 8x8 image bilinearly scaled to 20x20 and
    centred in a 28x28 frame (MNIST's 20x20 box in 28x28). Always available offline (it ships with
    scikit-learn), so it stands in for MNIST as the 'irrelevant' task when MNIST's files are absent."""
    import torch.nn.functional as F

    d = digits(root)

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.pad(F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1), (4, 4, 4, 4))

    task = image_task((1, 28, 28), 10, "digits-28: scikit-learn digits resized into 28x28 frames, pixels in [0,1], 10 classes")
    return Dataset("digits-28", task, up(d.x_train), d.y_train, up(d.x_test), d.y_test, d.classes)


def load_npz(path: str, task: str | None = None, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A user's data: ``x`` [N, ...] and ``y`` [N] (class ids) or [N, D] (regression targets);
    optional ``x_test``/``y_test``; else a seeded split. The domain is the box of the data's min/max
    (images already in [0,1] keep [0,1])."""
    p = Path(path)
    if not p.exists():
        raise ModelprintError("file not found", path=str(p), fix="give the path of an .npz with arrays x and y")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError for object arrays, ...
        raise ModelprintError(f"cannot read .npz ({e})", path=str(p), fix="save it with numpy.savez(path, x=..., y=...)") from None
    if "x" not in arrays or "y" not in arrays:
        raise ModelprintError(f"missing array(s): has {sorted(arrays)}, needs 'x' and 'y'", path=str(p), fix="numpy.savez(path, x=inputs, y=labels)")
    x = torch.from_numpy(np.asarray(arrays["x"], dtype=np.float32))
    y_raw = np.asarray(arrays["y"])
    if not np.isfinite(x.numpy()).all():
        raise ModelprintError("array 'x' holds NaN or inf", path=str(p), fix="clean or impute the data first")
    kind = task or ("classification" if np.issubdtype(y_raw.dtype, np.integer) and y_raw.ndim == 1 else "regression")
    y = torch.from_numpy(y_raw.astype(np.int64 if kind == "classification" else np.float32))
    if "x_test" in arrays:
        xte = torch.from_numpy(np.asarray(arrays["x_test"], dtype=np.float32))
        yte = torch.from_numpy(np.asarray(arrays["y_test"]).astype(np.int64 if kind == "classification" else np.float32))
        xtr, ytr = x, y
    else:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(x), generator=g)
        cut = int(round((1 - test_fraction) * len(x)))
        xtr, ytr, xte, yte = x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    if kind == "classification":
        n = int(y.max()) + 1
        t = Task("classification", tuple(x.shape[1:]), (n,), lo, hi, num_classes=n, description=f"user data {p.name}")
    else:
        out = tuple(y.shape[1:]) or (1,)
        if y.ndim == 1:
            ytr, yte = ytr.unsqueeze(1), yte.unsqueeze(1)
        t = Task("regression", tuple(x.shape[1:]), out, lo, hi, description=f"user data {p.name}")
    return Dataset(p.stem, t, xtr, ytr, xte, yte)


# ---------------------------------------------------------------------------------------------
# Tiny synthetic sets for tests: learnable in seconds on CPU, fully determined by the seed.
# ---------------------------------------------------------------------------------------------
def _synthetic_images(shape: tuple[int, int, int], n_classes: int, n_train: int, n_test: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand((n_classes, *shape), generator=g)
    # smooth the prototypes a little so that conv nets see spatial structure
    protos = torch.nn.functional.avg_pool2d(protos, 3, 1, 1)
    protos = (protos - protos.amin(dim=(1, 2, 3), keepdim=True)) / (protos.amax(dim=(1, 2, 3), keepdim=True) - protos.amin(dim=(1, 2, 3), keepdim=True))

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, n_classes, (n,), generator=g)
        x = protos[y] * 0.7 + 0.45 * torch.rand((n, *shape), generator=g)
        return x.clamp(0, 1), y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    task = image_task(shape, n_classes, f"synthetic images {shape}, {n_classes} classes")
    return Dataset(f"synthetic-{shape[-1]}", task, xtr, ytr, xte, yte, [str(i) for i in range(n_classes)])


@register_dataset("synthetic-cls")
def synthetic_cls(n_train: int = 1200, n_test: int = 400, seed: int = 0, root: Any = None) -> Dataset:
    d = _synthetic_images((1, 8, 8), 4, n_train, n_test, seed)
    d.name = "synthetic-cls"
    return d


@register_dataset("synthetic-fmnist")
def synthetic_fmnist(n_train: int = 1200, n_test: int = 400, seed: int = 0, root: Any = None) -> Dataset:
    """FashionMNIST-shaped (1x28x28, 10 classes) synthetic images, for testing the real nets quickly."""
    d = _synthetic_images((1, 28, 28), 10, n_train, n_test, seed)
    d.name = "synthetic-fmnist"
    return d


@register_dataset("synthetic-reg")
def synthetic_reg(n_train: int = 1200, n_test: int = 400, seed: int = 0, dim: int = 8, root: Any = None) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(dim, 16, generator=g) / dim**0.5
    w2 = torch.randn(16, 1, generator=g) / 4

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand((n, dim), generator=g) * 4 - 2
        y = torch.tanh(x @ w1) @ w2 * 3 + 0.05 * torch.randn((n, 1), generator=g)
        return x, y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    task = Task("regression", (dim,), (1,), -2.0, 2.0, description=f"synthetic regression, {dim} features in [-2,2]")
    return Dataset("synthetic-reg", task, xtr, ytr, xte, yte)


@register_dataset("synthetic-gen")
def synthetic_gen(n_train: int = 1200, n_test: int = 200, seed: int = 0, latent_dim: int = 8, root: Any = None) -> Dataset:
    """Generation: latents in [-1,1]^latent_dim -> 1x8x8 images; x holds real 8x8 samples to imitate."""
    base = _synthetic_images((1, 8, 8), 4, n_train, n_test, seed)
    task = Task("generation", (latent_dim,), (1, 8, 8), -1.0, 1.0, description="synthetic generation: latent -> 1x8x8 image")
    empty = torch.zeros(0)
    return Dataset("synthetic-gen", task, base.x_train, empty, base.x_test, empty)
