"""nnlut's I-BERT kernels against I-BERT's own code (``transformers.models.ibert.quant_modules``).

1. Mismatching values per op and input scale (8-, 16- and 32-bit inputs, random and edge cases),
   the comparison of ``tests/ibert/reference.py`` on ``--n`` inputs per case (default 1M).
2. The two places where nnlut deliberately differs, counted:
   - i-GELU at scales below ~2.8e-8 (e.g. 8 / 2**31), where I-BERT's float64 code cannot hold
     its constant ``c / s**2`` (> 2**53) and rounds; nnlut computes the integers exactly.
   - i-Softmax with I-BERT's modules in float32 (their default), whose float round trip of the
     16-bit exp returns probability 256 = 2**8, which does not fit the 8-bit output.

Writes ``benchmarks/results/ibert_reference.json`` (or ``--out``) and prints the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def deviations(n: int) -> dict[str, tuple[int, int]]:
    import numpy as np
    import torch
    from tests.ibert import reference as ref

    from nnlut.ibert._int import int_softmax

    rng = np.random.default_rng(1)
    out = {}
    s = 8 / 2**31
    q = torch.tensor(rng.integers(-(2**31) + 1, 2**31, n))
    out["gelu s=8/2**31 (reference rounds its integers)"] = (int((ref.nnlut_gelu(q, s) != ref.ref_gelu(q, s)).sum()), n)
    from transformers.models.ibert import quant_modules as qm

    s = 2.0**-13
    rows = torch.tensor(rng.integers(-(2**31) + 1, 2**31, (max(1, n // 256), 256)))
    p, ps = qm.IntSoftmax(8, quant_mode=True)(rows.to(torch.float64) * s, torch.tensor([s], dtype=torch.float64))
    mine, _ = int_softmax(rows, s)
    rp = (p / ps).reshape(mine.shape)
    out["softmax float32 modules s=2**-13 (reference returns 256)"] = (int((mine.double() != rp).sum()), mine.numel())
    out["  of which the reference's value is 256"] = (int((rp == 256).sum()), mine.numel())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="random inputs per case")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ibert_reference.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.ibert import reference as ref

    t = time.perf_counter()
    res = ref.compare(args.n)
    dev = deviations(min(args.n, 200_000))
    wall = time.perf_counter() - t
    print(f"{'case':58s} {'mismatches':>10s} {'values':>10s}")
    for k, (bad, tot) in res.items():
        print(f"{k:58s} {bad:10d} {tot:10d}")
    total = sum(b for b, _ in res.values()), sum(t for _, t in res.values())
    print(f"{'all cases':58s} {total[0]:10d} {total[1]:10d}")
    print("intended deviations:")
    for k, (bad, tot) in dev.items():
        print(f"{k:58s} {bad:10d} {tot:10d}")
    print(f"wall {wall:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"n": args.n, "cases": res, "total": total, "deviations": dev,
                                    "wall_s": round(wall, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
