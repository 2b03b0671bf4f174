"""Fused table-evaluation kernels: compiled CPU kernels and, on CUDA, a Triton kernel (both
optional), with the reference evaluation as the fallback."""

from ._cpu import available, unavailable_reason

__all__ = ["available", "unavailable_reason"]
