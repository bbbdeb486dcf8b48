"""Folds drawn from a smaller zoo's members while a larger zoo's extra members only train."""
from __future__ import annotations

import pytest

from modelprint.errors import ModelprintError
from modelprint.zoo import add_training, leave_one_out, partition_for_folds, split_random


def _base_names(zoo):
    # the "smaller zoo": every member but the last of each family (ft-3, ex-3, ind-3 are the extension)
    return {m.name for m in zoo.members if not m.name.endswith("-3")}


def test_partition_keeps_the_fold_members_and_returns_the_rest(tiny_zoo):
    base, extra = partition_for_folds(tiny_zoo, _base_names(tiny_zoo))
    assert base.names() == _base_names(tiny_zoo)
    assert {m.name for m in extra} == {"ft-3", "ex-3", "ind-3"}
    # folds of the base are those of a zoo that has only these members
    tr, te = split_random(base, 0.5, 0)
    assert not ({m.name for m in tr.members} | {m.name for m in te.members}) & {"ft-3", "ex-3", "ind-3"}


def test_partition_rejects_a_zoo_that_does_not_extend_the_fold_zoo(tiny_zoo):
    with pytest.raises(ModelprintError, match="not in this zoo") as e:
        partition_for_folds(tiny_zoo, _base_names(tiny_zoo) | {"someone-else"})
    assert "extend" in (e.value.fix or "")


def test_add_training_leaves_out_the_held_out_group(tiny_zoo):
    base, extra = partition_for_folds(tiny_zoo, _base_names(tiny_zoo))
    tr, _ = split_random(base, 0.5, 0)
    grown = add_training(tr, extra, "random", None)
    assert grown.names() == tr.names() | {"ft-3", "ex-3", "ind-3"}
    for fam, tr_f, _ in leave_one_out(base, "family"):
        names = add_training(tr_f, extra, "family", fam).names()
        assert not any(tiny_zoo[n].family == fam for n in names), f"held-out family {fam} leaked into training"
        assert {m.name for m in extra if m.family != fam} <= names
    arch = tiny_zoo["ft-3"].arch
    names = add_training(tr, extra, "arch", arch).names()
    assert not {m.name for m in extra if m.arch == arch} & names
