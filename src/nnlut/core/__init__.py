"""The table engine: functions, tables, scaling, networks and files."""

from ._functions import FunctionSpec, ScalingSpec, Tail, get_function, list_functions, register_function
from ._io import load
from ._network import ReluNetwork
from ._scaling import Scaling
from ._table import Table

__all__ = ["FunctionSpec", "ReluNetwork", "Scaling", "ScalingSpec", "Table", "Tail", "get_function",
           "list_functions", "load", "register_function"]
