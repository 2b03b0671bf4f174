"""System-level model: where an encoder's NPU cycles go, I-BERT's kernels against NN-LUT."""

from ._costs import OpCost, kernel_costs
from ._fit import PAPER, fit_npu
from ._hwnpu import HWNPU, explain, fit_hw, simulate_hw
from ._hwunits import UnitTiming, load_units
from ._npu import DESIGNS, NPUConfig, gemm_compute_cycles, simulate, speedups, sweep
from ._workload import BERT_BASE, EncoderShape, Gemm, encoder_ops, shape_of

__all__ = ["BERT_BASE", "DESIGNS", "HWNPU", "PAPER", "EncoderShape", "Gemm", "NPUConfig", "OpCost", "UnitTiming",
           "encoder_ops", "explain", "fit_hw", "fit_npu", "gemm_compute_cycles", "kernel_costs", "load_units", "shape_of",
           "simulate", "simulate_hw", "speedups", "sweep"]
