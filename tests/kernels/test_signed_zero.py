"""Range-reduced tables at signed zeros: inf with the zero's sign, as IEEE's 1/x and rsqrt(x).

``torch.reciprocal(-0.0)`` and ``torch.rsqrt(-0.0)`` are -inf; a reciprocal or rsqrt table
gives the same at both zeros in every evaluator: numpy, the torch reference, the op (CPU
kernels: AVX-512 blocks and the scalar path of a wide table), fixed-point and FP16 tables and
the aten decomposition.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nnlut
from nnlut.core._eval import evaluate_reference
from nnlut.core._scaling import Scaling
from nnlut.fixed import in_format
from nnlut.kernels import fixed, half, is_fixed_table, is_half_table, pwl
from nnlut.kernels._args import table_args
from nnlut.kernels._decomp import exact_fn
from nnlut.models import fitted_table

EXACT = {"reciprocal": torch.reciprocal, "rsqrt": torch.rsqrt}


def _wide_reciprocal() -> nnlut.Table:
    """A 100-entry reciprocal table on [1, 2): wider than the register search (the scalar path)."""
    nodes = np.linspace(1.0, 2.0, 101)
    v = 1.0 / nodes
    s = np.diff(v) / np.diff(nodes)
    return nnlut.Table(nodes[1:-1], s, v[:-1] - s * nodes[:-1], domain=(1.0, 2.0), tails=("clamp", "clamp"),
                       scaling=Scaling("full", -1.0, 2, "odd"), function="reciprocal")


def _tables():
    out = []
    for name in EXACT:
        for scaling in ("full", "paper"):
            t = fitted_table(name, "nnlut", 16, scaling)
            out += [(f"{name}-{scaling}", name, t)]
            out += [(f"{name}-{scaling}-{fmt}", name, in_format(t, fmt)) for fmt in ("int16", "fp16")]
    return out + [("reciprocal-100", "reciprocal", _wide_reciprocal())]


def _op(table, x):
    return (fixed if is_fixed_table(table) else half if is_half_table(table) else pwl)(table, x)


@pytest.mark.parametrize("label,name,table", _tables(), ids=[c[0] for c in _tables()])
def test_signed_zeros_give_signed_inf(label, name, table):
    zeros = [-0.0, 0.0]
    want = EXACT[name](torch.tensor(zeros, dtype=torch.float64))
    assert want.tolist() == [-math.inf, math.inf]  # the independent reference: torch's own functions
    assert table(np.array(zeros)).tolist() == want.tolist()  # numpy
    dtypes = (torch.float32, torch.float64) + ((torch.bfloat16,) if isinstance(table, nnlut.Table) else ())
    for dt in dtypes:
        # zeros in every lane position of a 16- and an 8-lane vector, and a scalar tail
        x = torch.tensor(zeros * 19 + [1.0, -1.0] * 3, dtype=dt)
        w = EXACT[name](x.double()).to(dt)
        for got in (_op(table, x), table(x), exact_fn(*table_args(table))(x)):
            z = x == 0
            assert torch.equal(got[z], w[z]), (label, dt)
        if isinstance(table, nnlut.Table):
            assert torch.equal(evaluate_reference(table, x)[x == 0], w[x == 0])
