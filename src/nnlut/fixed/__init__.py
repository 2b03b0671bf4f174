"""Fixed-point (INT16 input / INT32 accumulate) and FP16-parameter tables, bit-exact."""

from ._export import to_c_header, to_json, to_memh
from ._quantize import DEFAULT_INPUT_RANGE, Fp16Table, choose_format, quantize_table, to_fp16
from ._table import FixedFormat, FixedTable

__all__ = [
    "DEFAULT_INPUT_RANGE",
    "FixedFormat",
    "FixedTable",
    "Fp16Table",
    "choose_format",
    "quantize_table",
    "to_c_header",
    "to_fp16",
    "to_json",
    "to_memh",
]
