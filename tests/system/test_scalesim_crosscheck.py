"""Optional: the closed-form weight-stationary GEMM cycles against the real SCALE-Sim.

SCALE-Sim (pip package ``scalesim``) needs ``numpy<2.4`` and is slow, so it is not installed
by the set-up; this test runs where it is importable and is skipped otherwise.
"""

from __future__ import annotations

import pytest

from nnlut.system import Gemm, gemm_compute_cycles

scalesim = pytest.importorskip("scalesim.compute.systolic_compute_ws", reason="SCALE-Sim is not installed (optional)")


@pytest.mark.parametrize("M,K,N,R,C", [(8, 4, 4, 4, 4), (10, 9, 5, 4, 4), (16, 32, 16, 8, 8), (33, 17, 12, 8, 4)])
def test_against_scalesim(M, K, N, R, C):
    import numpy as np
    from scalesim.compute.systolic_compute_ws import systolic_compute_ws
    from scalesim.scale_config import scale_config

    cfg = scale_config()
    cfg.array_rows, cfg.array_cols = R, C
    cfg.valid_conf_flag = True
    ifmap = np.arange(M * K).reshape(M, K)
    filt = np.arange(K * N).reshape(K, N) + M * K
    ofmap = np.arange(M * N).reshape(M, N) + M * K + K * N
    sim = systolic_compute_ws()
    sim.set_params(config_obj=cfg, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap)
    sim.create_prefetch_matrices()
    sim.create_demand_matrices()
    cycles = sim.ifmap_demand_matrix.shape[0]
    assert abs(cycles - gemm_compute_cycles(Gemm("g", M, K, N), R, C)) <= 1
