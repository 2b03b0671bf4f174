"""I-BERT ops on float tensors: quantise the input, run the integer kernel, dequantise.

Input quantisation (symmetric, round to nearest, saturating) follows I-BERT's bit widths:

- i-GELU: 16-bit input with a per-tensor scale (I-BERT feeds it the INT32 accumulator of an
  INT8 matmul, whose resolution this matches); output in I-BERT's scale.
- i-exp Softmax: input on a fixed scale of 2**-12 saturated to INT32, so additive masks
  (-inf, the dtype minimum) saturate and get probability 0; exp requantised to 16 bits;
  probabilities on 8 bits (I-BERT's ``softmax_output_bit``).
- i-sqrt LayerNorm: 22-bit input with a per-tensor scale (I-BERT's ``ln_input_bit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._int import int_gelu_factors, int_layernorm, int_softmax, quantize


@dataclass(frozen=True)
class IBertGELU:
    input_bits: int = 16

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        q, s = quantize(x, self.input_bits)
        q, f, so = int_gelu_factors(q, s)
        # both factors are exact (< 2**53); their float64 product is the exact product rounded once
        return (q.to(torch.float64) * f.to(torch.float64) * so).to(x.dtype)


@dataclass(frozen=True)
class IBertSoftmax:
    input_scale: float = 2.0**-12
    exp_bits: int = 16
    output_bits: int = 8

    def __call__(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        q, s = quantize(x, 32, scale=self.input_scale)
        y, so = int_softmax(q, s, dim, exp_bits=self.exp_bits, output_bits=self.output_bits)
        return (y.to(torch.float64) * so).to(x.dtype)


@dataclass(frozen=True)
class IBertLayerNorm:
    input_bits: int = 22

    def __call__(self, x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None,
                 bias: torch.Tensor | None, eps: float) -> torch.Tensor:
        k = len(normalized_shape)
        shape = x.shape
        flat = x.reshape(*shape[: x.dim() - k], -1)
        w = weight.reshape(-1) if weight is not None else None
        b = bias.reshape(-1) if bias is not None else None
        q, s = quantize(flat, self.input_bits)
        y, so = int_layernorm(q, s, w, b)
        return (y.to(torch.float64) * so).to(x.dtype).reshape(shape)
