"""How fast nnlut refuses hostile files: a FIFO, /dev/urandom, /dev/zero, a 100 MB file (sparse),
duplicate keys, a non-integer version, a relabelled table (file and calibration folder), a forged
output marker. Each must be refused in one line within a second, and nothing changed.

Writes ``benchmarks/results/bad_files.json`` (or ``--out``) and prints one line per case.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cases(tmp: Path) -> dict:
    import nnlut
    from nnlut._files import MARKER, OutputFolder
    from nnlut.calibration import read_manifest

    gelu = nnlut.fit("gelu", 4, method="linear")
    exp = nnlut.fit("exp", 4, method="linear")
    out = {}
    fifo = tmp / "fifo.json"
    os.mkfifo(fifo)
    out["FIFO table file"] = lambda: nnlut.load(fifo)
    out["/dev/urandom"] = lambda: nnlut.load("/dev/urandom")
    out["/dev/zero"] = lambda: nnlut.load("/dev/zero")
    big = tmp / "big.json"
    with open(big, "wb") as f:
        f.truncate(100 << 20)
    out["100 MB file"] = lambda: nnlut.load(big)
    dup = tmp / "dup.json"
    gelu.save(dup)
    dup.write_text(dup.read_text().rstrip()[:-1] + ', "function": "exp"}')
    out["duplicate key"] = lambda: nnlut.load(dup)
    ver = tmp / "ver.json"
    ver.write_text(json.dumps(dict(gelu.to_dict(), version=True)))
    out["version true"] = lambda: nnlut.load(ver)
    rel = tmp / "rel.json"
    rel.write_text(json.dumps(dict(exp.to_dict(), function="gelu")))
    out["exp table labelled gelu (file)"] = lambda: nnlut.load(rel)

    import torch

    sys.path.insert(0, str(ROOT))
    from tests.models.conftest import ToyBlock

    from nnlut import ApproxConfig, approximate_, save_calibration

    torch.manual_seed(0)
    model = ToyBlock().eval()
    approximate_(model, ApproxConfig(entries=4, method="linear"))
    folder = save_calibration(model, tmp / "cal")
    m = json.loads((folder / "manifest.json").read_text())
    name = next(r for r, rec in m["files"].items() if rec["function"] == "gelu")
    data = json.dumps(dict(exp.to_dict(), function="gelu")).encode()
    (folder / name).write_bytes(data)
    m["files"][name]["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))
    out["exp table labelled gelu (calibration folder, hashes fixed)"] = lambda: read_manifest(folder)
    cal2 = tmp / "cal2"
    cal2.mkdir()
    os.mkfifo(cal2 / "manifest.json")
    out["FIFO manifest"] = lambda: read_manifest(cal2)
    res = tmp / "res"
    res.mkdir()
    (res / "a.txt").write_text("the user's")
    (res / MARKER).write_text(json.dumps({"format": "nnlut.output", "files": ["a.txt"]}))

    def forged() -> None:
        with OutputFolder(res, kind="export") as o:
            o.write_text("a.txt", "result")

    out["forged output marker over a user file"] = forged
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bad_files.json")
    args = ap.parse_args()
    from nnlut import NNLUTError

    rows = {}
    with tempfile.TemporaryDirectory() as d:
        for name, fn in cases(Path(d)).items():
            t = time.perf_counter()
            try:
                fn()
                msg, ok = "ACCEPTED", False
            except NNLUTError as e:
                msg, ok = str(e), "\n" not in str(e)
            dt = time.perf_counter() - t
            rows[name] = {"seconds": round(dt, 4), "refused_in_one_line": ok, "message": msg}
            print(f"{name:58s} {dt * 1000:8.1f} ms  {'ok' if ok and dt < 1 else 'FAIL'}  {msg[-90:]}")
        kept = (Path(d) / "res" / "a.txt").read_text() == "the user's"
        rows["user file kept after the forged marker"] = kept
        print(f"user file kept after the forged marker: {kept}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
