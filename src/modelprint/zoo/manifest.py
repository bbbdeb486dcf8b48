"""A zoo on disk: ``DIR/manifest.jsonl`` (one JSON object per finished member) + one modelprint model
directory per member (``DIR/members/<name>/``), plus ``DIR/zoo.json`` (victim, dataset, recipe).

Members are appended to the manifest only once their files are written, so a killed build loses at
most the member in progress. Labels: ``positive`` (derived from the victim: piracy) or ``negative``.
The victim itself is a positive member of family ``victim`` when the builder records it.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from torch import nn

from ..errors import ModelprintError
from ..io import LoadedModel, load_model

POSITIVE_FAMILIES = (
    "victim", "extract-soft", "extract-label", "extract-topk", "extract-jbda", "extract-cloudleak",
    "finetune", "retrain", "prune-weight", "prune-filter", "quantise", "distil", "advtrain", "composite",
)
NEGATIVE_FAMILIES = ("independent", "homologous", "disjoint", "irrelevant", "extract-independent", "distil-independent", "modified-independent")


@dataclass
class ZooMember:
    name: str
    label: str  # "positive" | "negative"
    family: str
    transform: str
    arch: str
    path: str  # relative to the zoo directory
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # test_acc / test_mae ...
    fidelity: float | None = None  # agreement with the victim on test inputs
    train_seconds: float = 0.0
    sha256: str = ""
    onnx: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_positive(self) -> bool:
        return self.label == "positive"

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ZooMember":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


class Zoo:
    """A labelled set of models derived from (or independent of) a victim."""

    def __init__(self, root: str | os.PathLike, members: list[ZooMember], info: dict[str, Any] | None = None):
        self.root = Path(root)
        self.members = members
        self.info = info or {}

    # -- disk -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike) -> "Zoo":
        root = Path(root)
        mf = root / "manifest.jsonl"
        if not mf.exists():
            raise ModelprintError("no manifest.jsonl here", path=str(root), fix="build a zoo with `modelprint zoo build ... --out DIR`")
        members: list[ZooMember] = []
        seen: set[str] = set()
        for i, line in enumerate(mf.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                m = ZooMember.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError) as e:
                # a torn last line (killed mid-write) is dropped; anything else is corruption
                if i == len(mf.read_text().splitlines()):
                    continue
                raise ModelprintError(f"manifest line {i} is malformed ({e})", path=str(mf), fix="remove that line; `zoo build` will rebuild the member") from None
            if m.label not in ("positive", "negative"):
                raise ModelprintError(f"manifest line {i}: label must be positive/negative, got {m.label!r}", path=str(mf))
            if m.name in seen:  # a re-run may append again; keep the latest
                members = [x for x in members if x.name != m.name]
            seen.add(m.name)
            members.append(m)
        info = {}
        if (root / "zoo.json").exists():
            info = json.loads((root / "zoo.json").read_text())
        return cls(root, members, info)

    @staticmethod
    def append(root: str | os.PathLike, member: ZooMember) -> None:
        """Append one finished member to the manifest (single write + fsync)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "manifest.jsonl", "a") as f:
            f.write(member.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())

    def load(self, member: ZooMember | str) -> LoadedModel:
        m = self[member] if isinstance(member, str) else member
        return load_model(self.root / m.path, check=False)

    def module(self, member: ZooMember | str) -> nn.Module:
        return self.load(member).module

    # -- selection --------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> ZooMember:
        for m in self.members:
            if m.name == name:
                return m
        raise ModelprintError(f"zoo has no member {name!r}", path=str(self.root))

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self):
        return iter(self.members)

    def names(self) -> set[str]:
        return {m.name for m in self.members}

    def where(self, **conds: Any) -> list[ZooMember]:
        """Members whose attributes equal the given values (a value may be a tuple/set of allowed values)."""
        out = []
        for m in self.members:
            ok = True
            for k, v in conds.items():
                val = getattr(m, k)
                ok &= (val in v) if isinstance(v, (tuple, set, list, frozenset)) else (val == v)
            if ok:
                out.append(m)
        return out

    def subset(self, members: Iterable[ZooMember]) -> "Zoo":
        return Zoo(self.root, list(members), self.info)

    @property
    def positives(self) -> list[ZooMember]:
        return [m for m in self.members if m.label == "positive" and m.family != "victim"]

    @property
    def negatives(self) -> list[ZooMember]:
        return [m for m in self.members if m.label == "negative"]

    def families(self) -> list[str]:
        return sorted({m.family for m in self.members})

    def archs(self) -> list[str]:
        return sorted({m.arch for m in self.members})
