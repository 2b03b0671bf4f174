"""The Triton kernel gives the reference evaluation's values, bit for bit: on a GPU when one
is present, and in Triton's CPU interpreter wherever Triton is installed. Skipped without
Triton (it is an optional dependency: ``pip install nnlut[gpu]``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from nnlut.kernels import _triton

HAVE_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed (optional)")

# one script for both backends: every table kind, every dtype, special values and subnormals
CHECK = textwrap.dedent('''
    import math, sys, torch, nnlut
    from nnlut.core._eval import evaluate_reference
    from nnlut.kernels import _triton
    from nnlut.models import fitted_table
    dev = sys.argv[1]
    sp = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, 1e-40, 1.2e-38, 3.4e38, -3.4e38, 1.0, -1.0])
    g = torch.Generator().manual_seed(0)
    x = torch.cat([sp, torch.randn(4000, generator=g) * 40, torch.exp(torch.randn(1000, generator=g) * 20),
                   torch.exp2(-126 - 3 * torch.rand(100, generator=g))]).to(dev)
    tables = [nnlut.fit("gelu", 16), nnlut.fit("exp", 8), nnlut.fit("sigmoid", 32), nnlut.fit("rsqrt", 16),
              nnlut.fit("rsqrt", 16, range_reduction=True), nnlut.fit("reciprocal", 16, range_reduction=True),
              fitted_table("rsqrt", "nnlut", 16, "paper"), fitted_table("reciprocal", "nnlut", 16, "full"),
              # outputs near 0.1 with 2**-2 per period: subnormal inputs need the correction 2**128
              nnlut.Table([1.5, 2.5, 3.2], [0.01, -0.01, 0.02, 0.0], [0.05, 0.1, 0.12, 0.2], domain=(1.0, 4.0),
                          tails=("clamp", "clamp"), scaling=nnlut.Scaling("full", -1.0, 4)),
              # x**-8: output corrections beyond float64's exponent range (inf or 0 in float32)
              nnlut.Table([1.25, 1.5, 1.75], [-6.0, -3.0, -1.5, -0.8], [7.0, 4.25, 2.2, 1.2], domain=(1.0, 2.0),
                          tails=("clamp", "clamp"), scaling=nnlut.Scaling("full", -8.0, 2))]
    bad = []
    for t in tables:
        for dt in (torch.float32, torch.bfloat16, torch.float16):
            a, b = _triton.pwl(t, x.to(dt)), evaluate_reference(t, x.to(dt))
            same = torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
            if a.dtype != dt or not same:
                bad.append(f"{t.function} scaling={t.scaling} {dt}")
    from nnlut.fixed import choose_format, quantize_table
    ties = torch.cat([(torch.arange(-300, 300) + 0.5) * 2.0**-k for k in range(6, 16)])  # half-way input codes
    xf = torch.cat([x.float(), ties.to(dev)])
    for f, kw in (("gelu", {}), ("exp", {}), ("rsqrt", {}), ("reciprocal", {"icpt_guard": None})):
        t = fitted_table(f, "nnlut", 16, "full")
        for ft in (quantize_table(t, choose_format(t, **kw)), quantize_table(fitted_table(f, "nnlut", 16, "paper"))):
            a, b = _triton.fixed(ft, xf), ft(xf.cpu().double()).float().to(dev)
            if not (torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))):
                bad.append(f"fixed {f} {ft.scaling}")
    if dev == "cuda":  # calling the table on a float32 CUDA tensor gives the kernel's values
        ft = quantize_table(fitted_table("gelu", "nnlut", 16, "full"))
        assert torch.equal(ft(xf), _triton.fixed(ft, xf))
    print("MISMATCH " + "; ".join(bad) if bad else "ALL IDENTICAL")
''')


def _run(device: str, env: dict[str, str]) -> str:
    res = subprocess.run([sys.executable, "-c", CHECK, device], capture_output=True, text=True, timeout=900,
                         env={**os.environ, **env})
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip().splitlines()[-1]


@needs_triton
def test_interpreted_kernel_bit_identical():
    assert _run("cpu", {"TRITON_INTERPRET": "1"}) == "ALL IDENTICAL"


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_kernel_bit_identical_and_used():
    assert _run("cuda", {"TRITON_INTERPRET": "0"}) == "ALL IDENTICAL"
    import nnlut

    t = nnlut.fit("gelu", 16)
    x = torch.randn(1000, device="cuda")
    assert _triton.usable(x)
    assert torch.equal(t(x), _triton.pwl(t, x))


def test_cpu_tensors_never_take_the_triton_path():
    x = torch.randn(10)
    assert not _triton.usable(x)
    assert not _triton.usable(torch.randn(10, dtype=torch.float64))
