"""Wall time of ``nnlut.approximate_(model)`` with the default config on MiniLM.

Each repeat runs in a fresh process (no table memo), loads the shipped MiniLM and times the
``approximate_`` call alone: discovery, default tables (shipped in the package) and the swap.
Writes JSON (default ``benchmarks/results/approximate.json``) and prints the median.

Usage: ``PYTHONPATH=src python benchmarks/bench_approximate.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CHILD = """
import time, warnings
warnings.simplefilter("ignore")
import nnlut
from nnlut.eval._models import load_encoder
tok, model = load_encoder("minilm")
t = time.perf_counter()
report = nnlut.approximate_(model)
print(time.perf_counter() - t, sum(report.counts().values()))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "approximate.json"))
    args = ap.parse_args()
    times, ops = [], 0
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True).stdout
        t, ops = out.split()[-2:]
        times.append(float(t))
    result = {"model": "all-MiniLM-L6-v2", "ops_replaced": int(ops), "seconds": times,
              "median_s": statistics.median(times)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| model | ops replaced | approximate_ median (s) | runs (s) |\n|---|---|---|---|")
    print(f"| {result['model']} | {ops} | {result['median_s']:.3f} | {', '.join(f'{t:.3f}' for t in times)} |")


if __name__ == "__main__":
    main()
