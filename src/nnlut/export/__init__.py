"""Approximated models out of PyTorch: ``torch.export`` programs whose table ops stay
visible (one ``nnlut`` node per site, its tables as tensor inputs), their aten
decompositions for runtimes without nnlut."""

from ._program import TableSite, decompositions, export_program, load_program, save_program, table_sites

__all__ = ["TableSite", "decompositions", "export_program", "load_program", "save_program", "table_sites"]
