"""Calibration on models whose tables are in a number format: the tables stay in their format."""

from __future__ import annotations

import copy

import pytest
import torch

import nnlut
from nnlut import ApproxConfig, NNLUTError, approximate_, calibrate
from nnlut.calibration._refit import refit_table
from nnlut.fixed import FixedTable, HalfTable
from nnlut.ops import approx_modules
from tests.models.conftest import ToyBlock


def _data(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 7, 16, generator=g) * 2 for _ in range(n)]


@pytest.mark.parametrize("number_format, kind", [("int16", FixedTable), ("fp16", HalfTable)])
def test_calibrate_keeps_the_number_format_and_improves(number_format, kind):
    torch.manual_seed(0)
    model = ToyBlock().eval()
    exact = copy.deepcopy(model)
    approximate_(model, ApproxConfig(entries=4, number_format=number_format))
    xs = _data()

    def err() -> float:
        with torch.no_grad():
            return sum(float((model(x) - exact(x)).abs().mean()) for x in xs)

    before = err()
    report = calibrate(model, xs)
    tables = [t for m in approx_modules(model).values() for t in m.kernel.tables.values()]
    assert tables and all(isinstance(t, kind) for t in tables)
    assert {t["function"] for t in report.tables} == {"gelu", "exp", "reciprocal", "rsqrt"}
    assert err() < before
    # every refitted table is its float refit made again in the same format: same outputs as
    # making it again from that float source
    from nnlut.fixed import quantize_table, to_half

    x = torch.linspace(-8, 8, 1001)
    for t in tables:
        again = quantize_table(t.source, t.fmt, refit=False) if kind is FixedTable else to_half(t.source, t.precision)
        torch.testing.assert_close(t(x), again(x), rtol=0, atol=0, equal_nan=True)


def test_refit_refuses_a_fixed_table_without_its_source():
    ft = nnlut.fit("gelu", 8, format="int8:4", domain=(-4.0, 4.0))
    with pytest.raises(NNLUTError, match="without its float source"):
        refit_table(ft, torch.randn(5000).numpy())
