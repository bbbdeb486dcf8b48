"""Suspect zoos: labelled sets of piracy (positive) and independent (negative) models."""
from __future__ import annotations

from .manifest import NEGATIVE_FAMILIES, POSITIVE_FAMILIES, Zoo, ZooMember
from .split import add_training, leave_one_out, partition_for_folds, split_holdout, split_random

__all__ = ["Zoo", "ZooMember", "POSITIVE_FAMILIES", "NEGATIVE_FAMILIES", "split_random", "split_holdout", "leave_one_out", "partition_for_folds", "add_training"]
