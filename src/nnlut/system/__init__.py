"""System-level model: where an encoder's NPU cycles go, I-BERT's kernels against NN-LUT."""

from ._costs import OpCost, kernel_costs
from ._fit import PAPER, fit_npu
from ._npu import DESIGNS, NPUConfig, gemm_compute_cycles, simulate, speedups, sweep
from ._workload import BERT_BASE, EncoderShape, Gemm, encoder_ops, shape_of

__all__ = ["BERT_BASE", "DESIGNS", "PAPER", "EncoderShape", "Gemm", "NPUConfig", "OpCost", "encoder_ops", "fit_npu",
           "gemm_compute_cycles", "kernel_costs", "shape_of", "simulate", "speedups", "sweep"]
