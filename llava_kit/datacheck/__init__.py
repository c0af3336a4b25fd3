"""Checking a recipe's data before (and without) training: one report of every problem."""

from llava_kit.datacheck.check import check_recipe
from llava_kit.datacheck.report import CheckReport, Problem

__all__ = ["CheckReport", "Problem", "check_recipe"]
