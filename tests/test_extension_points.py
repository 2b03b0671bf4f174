"""The core's extension points are filled by the layers above it on import: a fixed-point file
loads in a fresh process that never imported nnlut.fixed, a float table on a tensor runs
through the kernels' op, and a fixed-point table on a tensor through the backend registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_a_fixed_point_file_loads_in_a_fresh_process(tmp_path, fitted):
    from nnlut.fixed import in_format

    ft = in_format(fitted("gelu"), "int16")
    ft.save(tmp_path / "g.json")
    x = np.linspace(-6, 6, 101)
    out = _fresh(
        "import sys, numpy as np, nnlut\n"
        "before = 'nnlut.fixed' in sys.modules\n"
        f"t = nnlut.load({str(tmp_path / 'g.json')!r})\n"
        f"print(before, type(t).__name__, ' '.join(map(repr, t(np.linspace(-6, 6, 101)).tolist())))\n")
    before, kind, values = out.split(" ", 2)
    assert before == "False" and kind == "FixedTable"
    assert np.array_equal(np.array([float(v) for v in values.split()]), ft(x))


def test_the_torch_table_op_is_registered_by_the_kernels():
    out = _fresh("import sys, torch, nnlut\n"
                 "from nnlut.core._eval import TORCH_TABLE_OP\n"
                 "print('nnlut.kernels' in sys.modules, 'pwl' in TORCH_TABLE_OP, 'nnlut.kernels' in sys.modules)")
    assert out == "False True True"  # not imported until the op is asked for


def test_fixed_point_tables_on_tensors_go_through_the_backend_registry(fitted):
    from nnlut.fixed import in_format
    from nnlut.kernels import Backend, register_backend, unregister_backend

    ft = in_format(fitted("gelu"), "int16")
    calls = []

    def spy(table, x):
        calls.append(table)
        return None  # declined: the next backend answers

    register_backend(Backend("spy", lambda op, x: True, {"fixed": spy}, priority=1000))
    try:
        x = torch.linspace(-6, 6, 257, dtype=torch.float64)
        y = ft(x)
    finally:
        unregister_backend("spy")
    assert calls and calls[0] == ft
    assert torch.equal(y, ft.reference(x)) and np.array_equal(y.numpy(), ft(x.numpy()))
