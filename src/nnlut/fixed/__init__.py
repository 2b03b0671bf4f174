"""Number formats and quantised tables: fixed point (INT16, INT8 in GQA-LUT's datapath) and
FP16/BF16 parameters, bit-exact, with quantisation-aware fitting and exports."""

from ._export import to_c_header, to_json, to_memh
from ._fitq import fit_in_format, fit_quantized, in_format
from ._format import FixedFormat, FixedSpec, FloatFormat, gqa_format, parse_format
from ._half import HalfTable, to_fp16, to_half
from ._quantize import DEFAULT_INPUT_RANGE, choose_format, quantize_table
from ._table import FixedTable

Fp16Table = HalfTable  # the FP16 case of HalfTable, by its earlier name

__all__ = [
    "DEFAULT_INPUT_RANGE",
    "FixedFormat",
    "FixedSpec",
    "FixedTable",
    "FloatFormat",
    "Fp16Table",
    "HalfTable",
    "choose_format",
    "fit_in_format",
    "fit_quantized",
    "gqa_format",
    "in_format",
    "parse_format",
    "quantize_table",
    "to_c_header",
    "to_fp16",
    "to_half",
    "to_json",
    "to_memh",
]
