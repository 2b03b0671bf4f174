"""``import nnlut`` stays light: no transformers, plotting, RTL tooling or CUDA."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_lazy():
    code = (
        "import sys, nnlut; "
        "bad = [m for m in ('transformers', 'matplotlib', 'torch', 'scipy', 'tqdm', 'cocotb') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import nnlut pulled in: {out}"


def test_public_surface_is_small():
    import nnlut

    assert len(nnlut.__all__) <= 30
    for name in nnlut.__all__:
        assert hasattr(nnlut, name)
