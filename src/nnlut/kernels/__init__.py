"""Fused table-evaluation kernels: compiled CPU kernels with a reference fallback."""

from ._cpu import available, unavailable_reason

__all__ = ["available", "unavailable_reason"]
