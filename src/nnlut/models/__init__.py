"""Replacing a model's non-linear ops: config, discovery, swap and restore."""

from ._config import METHODS, OPS, ApproxConfig
from ._swap import ApproxReport, approximate_, approximation_report, fitted_table, restore_

__all__ = ["METHODS", "OPS", "ApproxConfig", "ApproxReport", "approximate_", "approximation_report", "fitted_table",
           "restore_"]
