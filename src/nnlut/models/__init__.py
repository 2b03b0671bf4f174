"""Replacing a model's non-linear ops: config, discovery, swap and restore."""

from ._config import METHODS, OPS, ApproxConfig
from ._registry import MethodSpec, OpSpec, register_method, register_op, unregister
from ._swap import ApproxReport, approximate_, approximation_report, fitted_table, restore_

__all__ = ["METHODS", "OPS", "ApproxConfig", "ApproxReport", "MethodSpec", "OpSpec", "approximate_",
           "approximation_report", "fitted_table", "register_method", "register_op", "restore_", "unregister"]
