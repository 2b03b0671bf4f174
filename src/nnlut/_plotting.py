"""matplotlib, imported lazily and rendered off-screen; PNG files written atomically."""

from __future__ import annotations

from typing import Any

from ._errors import NNLUTError
from ._files import atomic_write_bytes


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise NNLUTError("plotting needs matplotlib: pip install 'nnlut[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
