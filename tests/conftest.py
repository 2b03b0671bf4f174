"""Shared fixtures: fixed seeds, a fitted-table cache, Hypothesis settings."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("NNLUT_PROGRESS", "0")

settings.register_profile("nnlut", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("nnlut")


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)


_FITTED: dict = {}


@pytest.fixture(scope="session")
def fitted():
    """fitted(name, entries=16, **kw) -> Table, cached for the session (fits take ~1 s)."""
    import nnlut

    def get(name: str, entries: int = 16, **kw):
        key = (name, entries, tuple(sorted(kw.items())))
        if key not in _FITTED:
            _FITTED[key] = nnlut.fit(name, entries, **kw)
        return _FITTED[key]

    return get
