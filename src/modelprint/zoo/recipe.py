"""Zoo recipes: TOML files that say which members to build from a victim.

A recipe (``recipes/<name>.toml``)::

    name = "fmnist-quick"
    description = "..."
    dataset = "fashion-mnist"          # default for `zoo build --dataset`
    onnx = true                        # also export every member to ONNX (default true)

    [victim]                           # how to train the victim when none is given (optional)
    arch = "arc-a"
    arch_kwargs = {}
    data_fraction = 0.5                # the victim's training set D_v: this fraction of the training set
    epochs = 3
    batch_size = 128
    optimizer = "adam"                 # lr = ... optional
    seed = 0

    [defaults]                         # training defaults every transform starts from
    epochs = 2
    batch_size = 128
    n_train = 6000                     # training points per member (when the transform takes n_train)
    n_eval = 2000                      # test inputs for accuracy/fidelity
    [defaults.arch_kwargs]             # per-architecture constructor arguments for new networks
    arc-d = {width = 0.5}

    [[groups]]                         # one group = ``count`` members of one transform
    name = "extract-soft"              # member names: extract-soft-000, extract-soft-001, ...
    transform = "extract"
    count = 4                          # default: the number of grid combinations
    seed = 1000                        # member i gets seed + i (default: derived from the name)
    params = {output = "probs", n_queries = 6000}
    [groups.grid]                      # member i takes combination i mod (number of combinations)
    arch = ["arc-a", "arc-c"]          # of the cartesian product of these lists, over params
    [groups.vary]                      # and, independently, element i mod len of each of these lists
    optimizer = ["sgd", "adam", "rmsprop"]
    overlap = [0.0, 0.1, 0.2]

``count`` defaults to the larger of the number of grid combinations and the longest ``vary`` list.

``extends = "fmnist-quick"`` (a name or path) starts from another recipe: its groups come first and
keep their names, seeds and keys, so building into a copy of the base's zoo trains only the new
groups; ``[victim]`` and ``[defaults]`` are updated key by key and other top-level keys overridden
(``recipes/fmnist-wide.toml``).

Every member's parameters are validated against its transform when the recipe is loaded, so a typo
fails before any training starts. ``load_recipe`` takes a name (looked up in ``recipes/`` of the
current directory, ``$MODELPRINT_RECIPES`` and the project checkout) or a path to a ``.toml`` file.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelprintError

TOP_KEYS = {"name", "description", "dataset", "victim", "defaults", "groups", "onnx", "dataset_kwargs"}
VICTIM_KEYS = {"arch", "arch_kwargs", "data_fraction", "epochs", "batch_size", "optimizer", "lr", "seed"}
GROUP_KEYS = {"name", "transform", "count", "seed", "params", "grid", "vary"}
DEFAULT_KEYS = {"epochs", "batch_size", "optimizer", "lr", "n_train", "n_eval", "arch_kwargs"}


@dataclass
class VictimSpec:
    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    data_fraction: float = 0.5
    epochs: float = 5
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | None = None
    seed: int = 0


@dataclass
class MemberSpec:
    name: str
    group: str
    transform: str
    params: dict[str, Any]
    seed: int

    defaults: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """Identity of what gets built (transform, parameters, seed and the recipe's training
        defaults): a finished member is rebuilt only when this changes."""
        return json.dumps({"transform": self.transform, "params": self.params, "seed": self.seed, "defaults": self.defaults}, sort_keys=True, default=str)


@dataclass
class Group:
    name: str
    transform: str
    count: int
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    vary: dict[str, list[Any]] = field(default_factory=dict)

    def combos(self) -> list[dict[str, Any]]:
        if not self.grid:
            return [{}]
        keys = list(self.grid)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.grid[k] for k in keys))]

    def members(self) -> list[MemberSpec]:
        combos = self.combos()
        out = []
        for i in range(self.count):
            params = {**self.params, **combos[i % len(combos)], **{k: v[i % len(v)] for k, v in self.vary.items()}}
            out.append(MemberSpec(f"{self.name}-{i:03d}", self.name, self.transform, params, self.seed + i))
        return out


@dataclass
class Recipe:
    name: str
    groups: list[Group]
    description: str = ""
    dataset: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    victim: VictimSpec | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    onnx: bool = True
    source: str = ""

    def members(self) -> list[MemberSpec]:
        out = [m for g in self.groups for m in g.members()]
        for m in out:
            m.defaults = self.defaults
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source", None)
        return d


def _err(src: str, msg: str, fix: str | None = None) -> ModelprintError:
    return ModelprintError(msg, path=src, fix=fix)


def _name_seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:6], 16)


def parse_recipe(doc: dict[str, Any], src: str = "<recipe>", validate: bool = True) -> Recipe:
    """Build and validate a :class:`Recipe` from a parsed TOML document."""
    from .transforms import TRANSFORMS

    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise _err(src, f"unknown top-level key(s) {sorted(unknown)}", f"allowed: {sorted(TOP_KEYS)}")
    name = doc.get("name") or Path(src).stem
    victim = None
    if "victim" in doc:
        v = doc["victim"]
        if not isinstance(v, dict) or "arch" not in v:
            raise _err(src, "[victim] needs at least arch = \"...\"", "e.g. [victim] arch = \"arc-a\" data_fraction = 0.5 epochs = 3")
        bad = set(v) - VICTIM_KEYS
        if bad:
            raise _err(src, f"[victim] has unknown key(s) {sorted(bad)}", f"allowed: {sorted(VICTIM_KEYS)}")
        victim = VictimSpec(**v)
        if not 0 < victim.data_fraction <= 1:
            raise _err(src, f"[victim] data_fraction = {victim.data_fraction} is not in (0, 1]")
        from ..nets import NETS

        if victim.arch not in NETS:
            raise _err(src, f"[victim] arch {victim.arch!r} is not a registered architecture", f"choose one of {NETS.names()}")
    defaults = dict(doc.get("defaults") or {})
    bad = set(defaults) - DEFAULT_KEYS
    if bad:
        raise _err(src, f"[defaults] has unknown key(s) {sorted(bad)}", f"allowed: {sorted(DEFAULT_KEYS)}")
    if "arch_kwargs" in defaults and not all(isinstance(v, dict) for v in defaults["arch_kwargs"].values()):
        raise _err(src, "[defaults.arch_kwargs] must map architecture names to tables", "e.g. arc-d = {width = 0.5}")
    groups_doc = doc.get("groups")
    if not isinstance(groups_doc, list) or not groups_doc:
        raise _err(src, "a recipe needs at least one [[groups]] table", "add [[groups]] name = ... transform = ... count = ...")
    groups: list[Group] = []
    seen: set[str] = set()
    for i, g in enumerate(groups_doc):
        where = f"[[groups]] #{i + 1}"
        if not isinstance(g, dict):
            raise _err(src, f"{where} is not a table")
        bad = set(g) - GROUP_KEYS
        if bad:
            raise _err(src, f"{where} has unknown key(s) {sorted(bad)}", f"allowed: {sorted(GROUP_KEYS)}")
        for k in ("name", "transform"):
            if not isinstance(g.get(k), str) or not g[k]:
                raise _err(src, f"{where} needs {k} = \"...\"")
        gname = g["name"]
        if gname in seen or gname == "victim":
            raise _err(src, f"{where}: group name {gname!r} is used twice (or reserved)", "give every group a unique name")
        if not all(c.isalnum() or c in "-_." for c in gname):
            raise _err(src, f"{where}: group name {gname!r} may only hold letters, digits, - _ .")
        seen.add(gname)
        if g["transform"] not in TRANSFORMS:
            raise _err(src, f"{where}: unknown transform {g['transform']!r}", f"choose one of: {', '.join(TRANSFORMS.names())}")
        grid = g.get("grid") or {}
        vary = g.get("vary") or {}
        for key, table in (("grid", grid), ("vary", vary)):
            if not isinstance(table, dict) or not all(isinstance(v, list) and v for v in table.values()):
                raise _err(src, f"{where}: {key} must map parameter names to non-empty lists")
        both = set(grid) & set(vary)
        if both:
            raise _err(src, f"{where}: parameter(s) {sorted(both)} appear in both grid and vary")
        params = g.get("params") or {}
        if not isinstance(params, dict):
            raise _err(src, f"{where}: params must be a table")
        n_combos = 1
        for v in grid.values():
            n_combos *= len(v)
        count = g.get("count", max([n_combos] + [len(v) for v in vary.values()]))
        if not isinstance(count, int) or count < 0:
            raise _err(src, f"{where}: count must be a non-negative integer, got {count!r}")
        seed = g.get("seed", _name_seed(gname))
        if not isinstance(seed, int):
            raise _err(src, f"{where}: seed must be an integer")
        groups.append(Group(gname, g["transform"], count, seed, params, grid, vary))
    r = Recipe(name, groups, doc.get("description", ""), doc.get("dataset"), dict(doc.get("dataset_kwargs") or {}), victim, defaults, bool(doc.get("onnx", True)), src)
    if validate:
        for m in r.members():
            try:
                TRANSFORMS.get(m.transform).validate(m.params)  # type: ignore[attr-defined]
            except ModelprintError as e:
                raise _err(src, f"group {m.group!r}, member {m.name}: {e.message}", e.fix) from None
    return r


def recipe_dirs() -> list[Path]:
    dirs = [Path.cwd() / "recipes"]
    env = os.environ.get("MODELPRINT_RECIPES")
    if env:
        dirs = [Path(p) for p in env.split(os.pathsep) if p] + dirs
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "recipes").is_dir() and (parent / "pyproject.toml").exists():
            dirs.append(parent / "recipes")
            break
    return dirs


def list_recipes() -> list[str]:
    names: set[str] = set()
    for d in recipe_dirs():
        if d.is_dir():
            names |= {p.stem for p in d.glob("*.toml")}
    return sorted(names)


def find_recipe(spec: str) -> Path:
    p = Path(spec)
    if p.suffix == ".toml" or os.sep in spec:
        if not p.exists():
            raise ModelprintError("recipe file not found", path=spec, fix="give a .toml path or a recipe name: " + ", ".join(list_recipes()))
        return p
    for d in recipe_dirs():
        cand = d / f"{spec}.toml"
        if cand.exists():
            return cand
    raise ModelprintError(f"unknown recipe {spec!r}", fix="choose one of: " + (", ".join(list_recipes()) or "(none found)") + ", or give a .toml path")


def load_recipe(spec: str | os.PathLike, validate: bool = True) -> Recipe:
    """A recipe by name (``fmnist-quick``) or path (``my.toml``), parsed and validated."""
    path = find_recipe(str(spec))
    return parse_recipe(_read_doc(path, ()), str(path), validate)


def _read_doc(path: Path, chain: tuple[str, ...]) -> dict[str, Any]:
    """The recipe's TOML document with any ``extends = "base"`` resolved: the base's groups come first,
    its [victim] and [defaults] tables are updated key by key, and its other top-level keys are overridden."""
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ModelprintError(f"recipe is not valid TOML ({e})", path=str(path), fix="fix the syntax (see recipes/fmnist-quick.toml)") from None
    base_spec = doc.pop("extends", None)
    if base_spec is None:
        return doc
    if not isinstance(base_spec, str):
        raise _err(str(path), f"extends must be a recipe name or path, got {base_spec!r}", 'e.g. extends = "fmnist-quick"')
    base_path, chain = find_recipe(base_spec), chain + (str(path.resolve()),)
    if str(base_path.resolve()) in chain:
        raise _err(str(path), f"extends {base_spec!r} makes a cycle", "remove the extends line from one of the recipes")
    base = _read_doc(base_path, chain)
    merged = {**base, **{k: v for k, v in doc.items() if k not in ("victim", "defaults", "groups")}}
    for table in ("victim", "defaults"):
        b, d = base.get(table, {}), doc.get(table, {})
        if table in doc or table in base:
            merged[table] = {**b, **d}
        if table == "defaults" and "arch_kwargs" in b and "arch_kwargs" in d:  # per-architecture tables merge too
            merged[table]["arch_kwargs"] = {**b["arch_kwargs"], **d["arch_kwargs"]}
    merged["groups"] = list(base.get("groups", [])) + list(doc.get("groups", []))
    return merged
