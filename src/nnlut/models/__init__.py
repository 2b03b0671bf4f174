"""Replacing a model's non-linear ops: config, discovery, swap and restore."""

from ._config import ApproxConfig
from ._registry import METHODS, OPS, MethodSpec, OpSpec, register_method, register_op, unregister
from ._scoped import approximated
from ._swap import ApproxReport, approximate_, approximation_report, fitted_table, restore_
from ._trace import Coverage, trace_coverage

__all__ = ["METHODS", "OPS", "ApproxConfig", "ApproxReport", "Coverage", "MethodSpec", "OpSpec", "approximate_",
           "approximated", "approximation_report", "fitted_table", "register_method", "register_op", "restore_", "trace_coverage",
           "unregister"]
