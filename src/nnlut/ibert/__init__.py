"""I-BERT (Kim et al., ICML 2021), the baseline NN-LUT is compared to: float polynomial forms,
bit-exact integer kernels, and float-in/float-out ops built on them."""

from ._float import IBERT_FUNCTIONS, i_exp, i_gelu
from ._int import int_exp, int_exp_requant, int_gelu, int_gelu_factors, int_layernorm, int_softmax, isqrt, quantize
from ._ops import IBertGELU, IBertLayerNorm, IBertSoftmax

__all__ = ["IBERT_FUNCTIONS", "IBertGELU", "IBertLayerNorm", "IBertSoftmax", "i_exp", "i_gelu", "int_exp", "int_exp_requant",
           "int_gelu", "int_gelu_factors", "int_layernorm", "int_softmax", "isqrt", "quantize"]
