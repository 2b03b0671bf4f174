"""The ops on the input ranges LLMs produce: with the default tables the error stays at its
in-domain level; a table fitted on (-5, 5) without tails (NN-LUT as usually implemented) does
not. Small samples of what benchmarks/stress.py measures; references are the exact ops in
float64 (torch's own GELU, SiLU, softmax, layer_norm)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nnlut import Tail, fit, get_function
from nnlut.models import fitted_table
from nnlut.ops import lut_activation, lut_layernorm, lut_rmsnorm, lut_softmax

FLOOR = 2.0**-14


def _default(name: str):
    return fitted_table(name, "nnlut", 16, "full")


def _narrow(name: str, lo: float, hi: float):
    """Equal-width 16-entry table on (lo, hi) whose end segments continue beyond it."""
    spec = dataclasses.replace(get_function(name), domain=(lo, hi), fit_domain=None,
                               tails=(Tail("extend"), Tail("extend")))
    return fit(spec, 16, method="linear")


def _max_abs(out: torch.Tensor, exact: torch.Tensor) -> float:
    assert torch.isfinite(out).all()
    return float((out.double() - exact).abs().max())


def _max_rel(out: torch.Tensor, exact: torch.Tensor) -> float:
    assert torch.isfinite(out).all()
    return float(((out.double() - exact).abs() / exact.abs().clamp_min(FLOOR)).max())


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _signed_logspace(lo: float, hi: float, n: int, g: torch.Generator) -> torch.Tensor:
    mag = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(math.log(lo), math.log(hi), generator=g))
    return (mag * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()).float()


def _activation_errors(table, exact) -> tuple[float, float]:
    g = _gen()
    inside = torch.empty(4096, dtype=torch.float64).uniform_(-5.0, 5.0, generator=g).float()
    outside = _signed_logspace(5.0, 1000.0, 4096, g)
    return (_max_abs(lut_activation(inside, table), exact(inside.double())),
            _max_abs(lut_activation(outside, table), exact(outside.double())))


@pytest.mark.parametrize("name,exact", [("gelu", torch.nn.functional.gelu), ("silu", torch.nn.functional.silu)])
def test_activations_to_1000_stay_at_in_domain_error(name, exact):
    inside, outside = _activation_errors(_default(name), exact)
    assert inside < 5e-3
    assert outside <= 1.5 * inside, (inside, outside)


def test_no_tail_activation_blows_up_beyond_its_range():
    inside, outside = _activation_errors(_narrow("silu", -5.0, 5.0), torch.nn.functional.silu)
    assert inside < 0.05
    assert outside > 100 * inside, (inside, outside)  # the end slopes miss 1 and 0


def _norm_rows(var_lo: float, var_hi: float, mean: float, g: torch.Generator) -> torch.Tensor:
    var = torch.exp(torch.linspace(math.log(var_lo), math.log(var_hi), 16, dtype=torch.float64))[:, None]
    return (var.sqrt() * (torch.randn(16, 256, dtype=torch.float64, generator=g) + mean)).float()


def _rms_exact(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def _norm_errors(rsqrt) -> dict[str, tuple[float, float]]:
    """(in-domain, LLM-range) max relative error of RMSNorm and LayerNorm."""
    g = _gen()
    out = {}
    for op, mean in (("rmsnorm", 0.0), ("layernorm", 2.0)):
        def run(x, op=op):
            if op == "rmsnorm":
                return _max_rel(lut_rmsnorm(x, None, 1e-6, rsqrt), _rms_exact(x))
            exact = torch.nn.functional.layer_norm(x.double(), (x.shape[-1],), None, None, 1e-5)
            return _max_rel(lut_layernorm(x, (x.shape[-1],), None, None, 1e-5, rsqrt), exact)
        inside = run(_norm_rows(0.1, 1e3, mean, g))
        outside = max(run(_norm_rows(1e-6, 0.1, mean, g)), run(_norm_rows(1e3, 1e8, mean, g)))
        out[op] = (inside, outside)
    return out


def test_norms_with_variances_1e_6_to_1e8_stay_at_in_domain_error():
    for op, (inside, outside) in _norm_errors(_default("rsqrt")).items():
        assert inside < 5e-3, op
        assert outside <= 2.0 * inside, (op, inside, outside)


def test_norms_without_range_reduction_blow_up_on_large_variances():
    # the NN-LUT paper's rsqrt: table on [1, 1024], inputs above it clamped
    for op, (inside, outside) in _norm_errors(fitted_table("rsqrt", "nnlut", 16, "paper")).items():
        assert outside > 100 * inside, (op, inside, outside)


def _softmax_errors(exp, reciprocal) -> tuple[float, float]:
    """(in-domain, LLM-range) max absolute error of softmax: rows of 16 logits in (-5, 0)
    against rows with logit gaps of 100 to 1000 and rows of 16384 near-equal logits."""
    g = _gen()
    inside = -5.0 * torch.rand(1024, 16, generator=g)
    wide = -torch.exp(torch.linspace(math.log(100.0), math.log(1000.0), 64))[:, None] * torch.rand(64, 256, generator=g)
    wide[:, 0] = 0.0
    long = 0.1 * torch.randn(2, 16384, generator=g)

    def err(x):
        return _max_abs(lut_softmax(x, -1, exp, reciprocal), torch.softmax(x.double(), -1))
    return err(inside), max(err(wide), err(long))


def test_softmax_with_gaps_beyond_100_and_long_rows_stays_at_in_domain_error():
    inside, outside = _softmax_errors(_default("exp"), _default("reciprocal"))
    assert inside < 5e-3
    assert outside <= 2.0 * inside, (inside, outside)


def test_no_tail_exp_blows_up_on_gaps_beyond_its_range():
    inside, outside = _softmax_errors(_narrow("exp", -5.0, 0.0), fitted_table("reciprocal", "nnlut", 16, "paper"))
    assert outside > 10 * inside, (inside, outside)  # exp's end segment goes negative below -5


def test_reciprocal_on_row_sums_to_1e6():
    g = _gen()
    sums = torch.exp(torch.empty(4096, dtype=torch.float64).uniform_(0.0, math.log(1e6), generator=g)).float()
    inside = sums[sums <= 1024]
    exact = 1.0 / sums.double()
    default, paper = _default("reciprocal"), fitted_table("reciprocal", "nnlut", 16, "paper")
    in_err = _max_rel(lut_activation(inside, default), 1.0 / inside.double())
    assert _max_rel(lut_activation(sums, default), exact) <= 1.5 * in_err
    assert _max_rel(lut_activation(sums, paper), exact) > 100 * in_err  # clamped at 1024
