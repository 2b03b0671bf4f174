"""I-BERT's polynomial approximations (Kim et al., ICML 2021), the baseline NN-LUT is compared to."""

from ._float import IBERT_FUNCTIONS, i_exp, i_gelu

__all__ = ["IBERT_FUNCTIONS", "i_exp", "i_gelu"]
