"""Approximated models out of PyTorch: ``torch.export`` programs whose table ops stay
visible (one ``nnlut`` node per site, its tables as tensor inputs) and their aten
decompositions for runtimes without nnlut; ONNX models whose table ops are model-local
functions of standard ONNX operators (the ``onnx`` extra)."""

from ._program import LastHiddenState, TableSite, decompositions, export_program, load_program, save_program, table_sites


def export_onnx(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """See :func:`nnlut.export._onnx.export_onnx` (onnx is imported on first use)."""
    from ._onnx import export_onnx as _export

    return _export(*args, **kwargs)


def run_onnx(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """See :func:`nnlut.export._onnx.run_onnx` (onnxruntime is imported on first use)."""
    from ._onnx import run_onnx as _run

    return _run(*args, **kwargs)


__all__ = ["LastHiddenState", "TableSite", "decompositions", "export_onnx", "export_program", "load_program",
           "run_onnx", "save_program", "table_sites"]
