"""Memory-bounded observers of the values each table receives.

A :class:`Reservoir` keeps a uniform random sample of at most ``capacity`` values from a
stream of tensors (weighted reservoir sampling: each batch contributes a random subset whose
items carry the weight ``batch size / subset size``, and keys ``u ** (1 / w)`` decide which
survive), plus running statistics (count, and min, max and non-finite share of the values drawn). Memory is
``O(capacity)`` whatever the amount of data.

Under ``torchrun`` each rank observes its share of the batches; :func:`merge_across_ranks`
then unites the reservoirs of all ranks (the same weighted sampling over the union of the
streams), so every rank refits the same tables from the same samples.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import torch


class Reservoir:
    def __init__(self, capacity: int = 65536, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.gen = torch.Generator().manual_seed(seed + 1_000_003 * _rank())  # independent keys on each rank
        self.values = torch.empty(0, dtype=torch.float64)
        self.weights = torch.empty(0, dtype=torch.float64)
        self.keys = torch.empty(0, dtype=torch.float64)
        self.count = 0
        self.nonfinite = 0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, x: torch.Tensor, importance: torch.Tensor | None = None) -> None:
        """Add a tensor of values (with optional per-value importance weights, broadcastable
        to ``x``): O(capacity) work whatever its size (a random subset of at most
        ``capacity`` values is drawn first, on the tensor's device)."""
        v = x.detach().reshape(-1)
        imp = None if importance is None else importance.detach().expand_as(x).reshape(-1)
        n = v.numel()
        if n == 0:
            return
        m = min(n, self.capacity)
        if m < n:
            idx = torch.randint(n, (m,), generator=self.gen).to(v.device)
            v = v[idx]
            imp = None if imp is None else imp[idx]
        v = v.to("cpu", torch.float64)
        imp = torch.ones_like(v) if imp is None else imp.to("cpu", torch.float64)
        finite = torch.isfinite(v) & torch.isfinite(imp)
        bad = int((~finite).sum())
        if bad:
            self.nonfinite += round(bad * n / m)
            v, imp = v[finite], imp[finite]
        self.count += n
        if v.numel() == 0:
            return
        self.min = min(self.min, float(v.min()))
        self.max = max(self.max, float(v.max()))
        weight = n / m
        keys = torch.rand(v.numel(), generator=self.gen, dtype=torch.float64) ** (1.0 / weight)
        values = torch.cat([self.values, v])
        weights = torch.cat([self.weights, imp])
        keys = torch.cat([self.keys, keys])
        if values.numel() > self.capacity:
            top = torch.topk(keys, self.capacity).indices
            values, weights, keys = values[top], weights[top], keys[top]
        self.values, self.weights, self.keys = values, weights, keys

    def state(self) -> dict[str, Any]:
        """Everything a merge needs (picklable)."""
        return {"capacity": self.capacity, "values": self.values, "weights": self.weights, "keys": self.keys,
                "count": self.count, "nonfinite": self.nonfinite, "min": self.min, "max": self.max}

    @classmethod
    def merged(cls, states: list[dict[str, Any]]) -> Reservoir:
        """The reservoir of the union of the streams behind ``states``: the ``capacity``
        largest keys survive, as if one reservoir had seen every value; counts add up."""
        out = cls(max(s["capacity"] for s in states))
        values = torch.cat([s["values"] for s in states])
        weights = torch.cat([s["weights"] for s in states])
        keys = torch.cat([s["keys"] for s in states])
        if values.numel() > out.capacity:
            top = torch.topk(keys, out.capacity).indices
            values, weights, keys = values[top], weights[top], keys[top]
        out.values, out.weights, out.keys = values, weights, keys
        out.count = sum(s["count"] for s in states)
        out.nonfinite = sum(s["nonfinite"] for s in states)
        out.min = min(s["min"] for s in states)
        out.max = max(s["max"] for s in states)
        return out

    def sample(self) -> np.ndarray:
        return self.values.numpy().copy()

    @staticmethod
    def pooled(reservoirs: list[Reservoir]) -> tuple[np.ndarray, np.ndarray]:
        """(values, importance weights) of all streams together; each reservoir's weights are
        scaled by how much it saw, so the pool stands for the union of the streams."""
        parts, weights = [], []
        for r in reservoirs:
            if r.values.numel():
                parts.append(r.values.numpy())
                weights.append(r.weights.numpy() * (r.count / r.values.numel()))
        if not parts:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(parts), np.concatenate(weights)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def merge_across_ranks(reservoirs: dict[Hashable, Reservoir], batches: int = 0) -> int:
    """Replace each reservoir (in place in the dict) by the union over all ranks of the
    process group; keys seen on only some ranks are added. Returns the number of batches
    observed by all ranks together (``batches`` is this rank's). A no-op outside ``torchrun``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return batches
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, ({k: r.state() for k, r in reservoirs.items()}, batches))
    keys = sorted({k for part, _ in gathered for k in part}, key=repr)
    for k in keys:
        reservoirs[k] = Reservoir.merged([part[k] for part, _ in gathered if k in part])
    return sum(n for _, n in gathered)
