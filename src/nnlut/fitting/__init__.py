"""Fitting: NN-LUT training, conventional placements, exact value refits and error metrics."""

from ._compare import Row, compare
from ._fit import METHODS, fit
from ._full import full_domain_errors
from ._metrics import measure

__all__ = ["METHODS", "Row", "compare", "fit", "full_domain_errors", "measure"]
