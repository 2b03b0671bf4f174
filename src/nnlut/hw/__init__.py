"""Hardware: generated Verilog for the NN-LUT unit and I-BERT's units, verified against the
Python golden models with Icarus Verilog, synthesized with Yosys, timed with OpenSTA."""

from ._flow import IBERT_SET, build_units, paper_tables, run_flow
from ._tools import missing as missing_tools

__all__ = ["IBERT_SET", "build_units", "missing_tools", "paper_tables", "run_flow"]
