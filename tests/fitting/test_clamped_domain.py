"""Saturating functions (clamped tails): the fit chooses where the table ends, so the error over
every FP16 input, the clamped tails included, is no worse than on the fixed default domain and
is not dominated by the tails."""

from __future__ import annotations

import numpy as np
import pytest

import nnlut


def _full_max(table: nnlut.Table) -> float:
    return nnlut.full_domain_errors(table, formats=("fp16",))["fp16"]["max_abs"]


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_owned_domain_beats_fixed_domain_over_every_fp16_input(name: str) -> None:
    spec = nnlut.get_function(name)
    owned = nnlut.fit(name, 4)
    fixed = nnlut.fit(name, 4, domain=spec.domain)  # an explicit domain is kept as given
    assert fixed.domain == spec.domain
    assert _full_max(owned) <= _full_max(fixed) * (1 + 1e-9)
    # at 4 entries the best region is far inside the default one, and not symmetric
    assert owned.domain[0] > spec.domain[0] or owned.domain[1] < spec.domain[1]
    assert _full_max(owned) < 0.8 * _full_max(fixed)


def test_polish_lowers_the_error_with_tails_from_a_poor_start() -> None:
    from nnlut.fitting._polish import polish_clamped

    nodes = np.linspace(-6.0, 6.0, 5)  # 4 equal segments, too wide for tanh
    v = np.tanh(nodes)
    x = np.linspace(-50, 50, 200001)

    def err(k: np.ndarray) -> float:
        vals = np.tanh(k)  # interpolating values, the same rule before and after
        return float(np.max(np.abs(np.interp(np.clip(x, k[0], k[-1]), k, vals) - np.tanh(x))))

    new = polish_clamped(np.tanh, None, nodes, v, maxiter=60)
    assert np.all(np.diff(new) > 0)
    assert err(new) < 0.8 * err(nodes)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # float64, no overflow


def test_clamped_tails_stay_at_the_inner_error_level() -> None:
    table = nnlut.fit("sigmoid", 8)
    lo, hi = table.domain
    x = np.linspace(lo, hi, 200001)
    inner = float(np.max(np.abs(table(x) - _sigmoid(x))))
    far = np.array([-1e4, -100.0, 100.0, 1e4])
    tails = float(np.max(np.abs(table(far) - _sigmoid(far))))
    assert tails <= 1.5 * inner
    assert _full_max(table) <= 1.5 * inner


def test_owned_domain_error_falls_with_entries() -> None:
    errs = [_full_max(nnlut.fit("sigmoid", n)) for n in (4, 8, 12)]
    assert errs[0] > errs[1] > errs[2]
