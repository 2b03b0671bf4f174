"""nnlut: NN-LUT piecewise-linear tables for Transformer non-linear operations.

``import nnlut`` loads only the table engine (numpy); the fitter (scipy) and the model layer
(torch) load on first use of their names.
"""

from typing import Any

__version__ = "0.1.0"

from . import _plugins
from ._errors import NNLUTError
from .core import FunctionSpec, ReluNetwork, Scaling, Table, Tail, get_function, list_functions, load, register_function

# the packages that fill the core's extension points when first needed (see nnlut._plugins)
_plugins.provide("torch table op", "nnlut.kernels")  # torch.ops.nnlut.pwl
_plugins.provide("table kind", "nnlut.fixed")  # fixed-point and half-precision tables

_LAZY = {
    "fit": "nnlut.fixed._fitq",  # the float fit, or a number format's with format=...
    "measure": "nnlut.fitting",
    "full_domain_errors": "nnlut.fitting",
    "ApproxConfig": "nnlut.models",
    "approximate_": "nnlut.models",
    "approximated": "nnlut.models",
    "restore_": "nnlut.models",
    "track_errors": "nnlut.ops",
    "calibrate": "nnlut.calibration",
    "save_calibration": "nnlut.calibration",
    "load_calibration": "nnlut.calibration",
    "export_onnx": "nnlut.export",
    "export_program": "nnlut.export",
    "load_program": "nnlut.export",
}

__all__ = [
    "ApproxConfig",
    "FunctionSpec",
    "calibrate",
    "export_onnx",
    "export_program",
    "load_program",
    "load_calibration",
    "save_calibration",
    "NNLUTError",
    "ReluNetwork",
    "Scaling",
    "Table",
    "Tail",
    "__version__",
    "approximate_",
    "approximated",
    "fit",
    "full_domain_errors",
    "get_function",
    "list_functions",
    "load",
    "measure",
    "register_function",
    "restore_",
    "track_errors",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nnlut' has no attribute {name!r}")
