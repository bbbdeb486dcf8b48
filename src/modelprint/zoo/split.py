"""Train/test splits of a zoo: random (stratified by family), leave-one-family-out, leave-one-arch-out."""
from __future__ import annotations

import random
from collections import defaultdict

from ..errors import ModelprintError
from .manifest import Zoo, ZooMember


def split_random(zoo: Zoo, test_fraction: float = 0.5, seed: int = 0) -> tuple[Zoo, Zoo]:
    """Hold out ``test_fraction`` of each family (at least one member of every family with >= 2)."""
    rng = random.Random(seed)
    by_fam: dict[str, list[ZooMember]] = defaultdict(list)
    for m in zoo.members:
        if m.family != "victim":
            by_fam[m.family].append(m)
    train, test = [], []
    for fam in sorted(by_fam):
        ms = sorted(by_fam[fam], key=lambda m: m.name)
        rng.shuffle(ms)
        k = int(round(test_fraction * len(ms)))
        if len(ms) >= 2:
            k = min(max(k, 1), len(ms) - 1)
        test += ms[:k]
        train += ms[k:]
    return zoo.subset(train), zoo.subset(test)


def held_out(m: ZooMember, kind: str, group: str | None) -> bool:
    """Whether a fold of ``kind`` that holds out ``group`` holds out member ``m``: a ``family`` fold every
    member of family ``group`` or ``group-*`` (``extract`` holds out every ``extract-*``), an ``arch`` fold
    every member of that architecture, a ``random`` fold no group."""
    if kind == "family":
        return m.family == group or m.family.startswith(f"{group}-")
    if kind == "arch":
        return m.arch == group
    return False


def split_holdout(zoo: Zoo, *, family: str | None = None, arch: str | None = None) -> tuple[Zoo, Zoo]:
    """Everything of ``family`` (or ``arch``) is held out for testing; the rest trains.

    Held-out families are matched by prefix too (``extract`` holds out every ``extract-*``). When a
    whole family of one label is held out, the test set also gets the other label's members that the
    train set does not need (for leave-one-family-out we hold out the family and score it against the
    held-out negatives of the random split, see :func:`leave_one_out`).
    """
    if (family is None) == (arch is None):
        raise ModelprintError("split_holdout needs exactly one of family= or arch=")
    kind, group = ("family", family) if family is not None else ("arch", arch)
    test = [m for m in zoo.members if held_out(m, kind, group) and m.family != "victim"]
    train = [m for m in zoo.members if not held_out(m, kind, group) and m.family != "victim"]
    if not test:
        raise ModelprintError(f"no zoo member matches family={family!r} arch={arch!r}", fix=f"families: {zoo.families()}; archs: {zoo.archs()}")
    return zoo.subset(train), zoo.subset(test)


def leave_one_out(zoo: Zoo, by: str = "family", test_fraction: float = 0.5, seed: int = 0) -> list[tuple[str, Zoo, Zoo]]:
    """Leave-one-family-out (``by='family'``) or leave-one-architecture-out (``by='arch'``) folds.

    Each fold: the held-out group is removed from training entirely; the test set is that group plus the
    random-split test members of the opposite label (so AUC is defined and the negatives were unseen too).
    """
    base_train, base_test = split_random(zoo, test_fraction, seed)
    groups = zoo.families() if by == "family" else zoo.archs()
    folds = []
    for g in groups:
        if g == "victim":
            continue
        key = "family" if by == "family" else "arch"
        held = [m for m in zoo.members if getattr(m, key) == g and m.family != "victim"]
        if not held:
            continue
        held_names = {m.name for m in held}
        labels = {m.label for m in held}
        train = [m for m in base_train.members if m.name not in held_names]
        others = [m for m in base_test.members if m.name not in held_names and m.label not in labels] if len(labels) == 1 else []
        test = held + others
        if {m.label for m in test} != {"positive", "negative"} or {m.label for m in train} != {"positive", "negative"}:
            continue
        folds.append((g, zoo.subset(train), zoo.subset(test)))
    return folds


def partition_for_folds(zoo: Zoo, fold_names: set[str], source: str = "the fold zoo") -> tuple[Zoo, list[ZooMember]]:
    """Split ``zoo`` into the members folds are drawn from (those named in ``fold_names``) and the rest,
    which only ever train (:func:`add_training`).

    This is how a larger zoo is measured on the *same* test members as a smaller one it extends: folds
    are computed on the smaller zoo's members exactly as a run on it would, and the new members join the
    training sets. Every name in ``fold_names`` must be a member of ``zoo``.
    """
    missing = sorted(fold_names - zoo.names())
    if missing:
        raise ModelprintError(
            f"{len(missing)} member(s) of {source} are not in this zoo (e.g. {missing[0]!r})",
            path=str(zoo.root),
            fix="the zoo must extend the one the folds come from (build its recipe into a copy of that zoo)",
        )
    base = [m for m in zoo.members if m.name in fold_names]
    extra = [m for m in zoo.members if m.name not in fold_names and m.family != "victim"]
    return zoo.subset(base), extra


def add_training(train: Zoo, extra: list[ZooMember], kind: str, group: str | None) -> Zoo:
    """``train`` plus the training-only ``extra`` members of :func:`partition_for_folds` (never in a fold's
    training set already), minus those the fold holds out (:func:`held_out`)."""
    return train.subset(list(train.members) + [m for m in extra if not held_out(m, kind, group)])
