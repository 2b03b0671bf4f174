"""The kernels' portable path (no AVX-512) gives the same values as the reference evaluation.

On a machine with AVX-512 the vector paths are the ones every other test exercises; here the
library is rebuilt with ``NNLUT_KERNELS_FLAGS=-mno-avx512f`` in a fresh cache and checked in a
subprocess, so that machines without AVX-512 are covered too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from nnlut.kernels import _cpu

pytestmark = pytest.mark.skipif(not _cpu.available(), reason=f"fused kernels unavailable: {_cpu.unavailable_reason()}")

CHECK = textwrap.dedent('''
    import math, numpy as np, torch, nnlut
    from nnlut.core._eval import evaluate_reference
    from nnlut.core._scaling import Scaling
    from nnlut.fixed import quantize_table
    from nnlut.kernels import _cpu
    from nnlut.models import fitted_table
    from nnlut.ops import lut_layernorm, lut_softmax
    assert _cpu.available(), _cpu.unavailable_reason()
    g = torch.Generator().manual_seed(0)
    sp = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, 1e-40, 1.2e-38, 3.4e38, -3.4e38, 1.0, -1.0])
    e = torch.arange(-149, 128, dtype=torch.float64)
    x = torch.cat([sp, torch.randn(20000, generator=g) * 30, torch.exp2(e).float(),
                   (torch.exp2(e)[:, None] * (1 + torch.rand(len(e), 32, generator=g, dtype=torch.float64))).float().reshape(-1)])
    x = torch.cat([x, -x])
    rng = np.random.default_rng(0)
    tables = [nnlut.fit("gelu", 16), nnlut.fit("exp", 64), nnlut.fit("sigmoid", 32),
              nnlut.fit("rsqrt", 16, range_reduction=True), nnlut.fit("reciprocal", 64, range_reduction=True),
              fitted_table("rsqrt", "nnlut", 16, "paper"),
              nnlut.Table(np.sort(rng.uniform(-10, 10, 79)), rng.uniform(-2, 2, 80), rng.uniform(-2, 2, 80)),
              nnlut.Table([1.5, 2.5, 3.2], [0.01, -0.01, 0.02, 0.0], [0.05, 0.1, 0.12, 0.2], domain=(1.0, 4.0),
                          tails=("clamp", "clamp"), scaling=Scaling("full", -1.0, 4, "odd")),
              # x**-8: output corrections beyond float64's exponent range (inf or 0 in float32)
              nnlut.Table([1.25, 1.5, 1.75], [-6.0, -3.0, -1.5, -0.8], [7.0, 4.25, 2.2, 1.2], domain=(1.0, 2.0),
                          tails=("clamp", "clamp"), scaling=Scaling("full", -8.0, 2))]
    bad = []
    def same(a, b):
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
    for t in tables:
        for dt in (torch.float32, torch.bfloat16):
            if not same(t(x.to(dt)), evaluate_reference(t, x.to(dt))):
                bad.append(f"{t.function} {t.entries} {dt}")
    for f in ("gelu", "exp", "rsqrt"):
        ft = quantize_table(fitted_table(f, "nnlut", 16, "full"))
        if not same(ft(x), ft(x.double()).float()):
            bad.append(f"fixed {f}")
    ex, rc = fitted_table("exp", "nnlut", 16, "full"), fitted_table("reciprocal", "nnlut", 16, "full")
    s = torch.randn(4, 6, 50, generator=g) * 4
    fused = lut_softmax(s, -1, ex, rc)
    ref = lut_softmax(s, -1, lambda z: evaluate_reference(ex, z), lambda v: evaluate_reference(rc, v))
    if float((fused - ref).abs().max()) > 4 * 1.2e-7:
        bad.append("softmax")
    r = fitted_table("rsqrt", "nnlut", 16, "full")
    h = torch.randn(3, 20, 96, generator=g) * 3 + 5
    fused = lut_layernorm(h, (96,), None, None, 1e-12, r)
    ref = lut_layernorm(h, (96,), None, None, 1e-12, lambda v: evaluate_reference(r, v))
    if float((fused - ref).abs().max()) > 8 * float(ref.abs().max()) * 1.2e-7:
        bad.append("layernorm")
    print("MISMATCH " + "; ".join(bad) if bad else "ALL IDENTICAL")
''')


def test_portable_kernels_match_reference(tmp_path):
    env = {**os.environ, "NNLUT_KERNELS_FLAGS": "-mno-avx512f", "NNLUT_CACHE": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == "ALL IDENTICAL"
