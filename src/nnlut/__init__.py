"""nnlut: NN-LUT piecewise-linear tables for Transformer non-linear operations."""

__version__ = "0.1.0"

from ._errors import NNLUTError
from .core import FunctionSpec, ReluNetwork, Scaling, Table, Tail, get_function, list_functions, load, register_function
from .fit import fit, measure

__all__ = ["FunctionSpec", "NNLUTError", "ReluNetwork", "Scaling", "Table", "Tail", "__version__", "fit",
           "get_function", "list_functions", "load", "measure", "register_function"]
