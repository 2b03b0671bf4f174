"""Data-parallel evaluation under ``torchrun`` (torch.distributed, gloo on CPU).

Work is split by whole batches (rank r runs batches r, r + W, r + 2W, ...), so each batch is
computed exactly as a single process computes it, and the per-item results are gathered on
every rank: the numbers are identical to a one-process run. Without ``torchrun`` (or with one
process) every helper is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def init_from_env() -> bool:
    """Join the process group ``torchrun`` describes (gloo backend); True when distributed."""
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group("gloo")
    return True


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def my_share(items: Iterable[T]) -> Iterator[T]:
    """This rank's items of an iterable of batches (round robin)."""
    rank, size = world()
    for k, item in enumerate(items):
        if k % size == rank:
            yield item


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (picklable objects); ``[obj]`` alone."""
    rank, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out
