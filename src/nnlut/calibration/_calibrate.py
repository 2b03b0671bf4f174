"""Calibration in explicit steps: observe the inputs every table sees on unlabeled data, refit
the tables, swap them in. Model weights are never touched."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._errors import NNLUTError
from .._logging import logger, progress
from ..core._table import Table
from ..ops._modules import ApproxOp, approx_modules
from ._observers import Reservoir, merge_across_ranks
from ._refit import MIN_SAMPLES, RefitInfo, refit_table


@dataclass
class CalibrationReport:
    batches: int = 0
    seconds_observe: float = 0.0
    seconds_refit: float = 0.0
    tables: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.seconds_observe + self.seconds_refit

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "seconds": self.seconds, "seconds_observe": self.seconds_observe,
                "seconds_refit": self.seconds_refit, "tables": self.tables}

    def extensions(self) -> list[str]:
        return [f"{t['function']} ({', '.join(t['modules'][:2])}{'...' if len(t['modules']) > 2 else ''}): {n}"
                for t in self.tables for n in t["notes"]]


def _call_mode(model: nn.Module) -> Any:
    """The mode serving ``model``'s non-linear calls from tables, or None."""
    from ..models._calls import of_model

    mode = of_model(model)
    return mode if mode is not None and mode.tables else None


def _lut_modules(model: nn.Module) -> dict[str, ApproxOp]:
    mods = approx_modules(model)
    if not mods:
        raise NNLUTError("the model has no approximated ops; call nnlut.approximate_(model, config) first")
    lut = {n: m for n, m in mods.items() if m.kernel.tables}
    if not lut:
        raise NNLUTError("the model's approximated ops use no tables (method 'ibert' or 'exact'); nothing to calibrate")
    return lut


def calibrate(model: nn.Module, batches: Iterable[Any], *, capacity: int = 65536, max_batches: int | None = None,
              seed: int = 0, input_scale_criterion: str | None = None) -> CalibrationReport:
    """Refit every table of an approximated ``model`` to the inputs it sees on ``batches``.

    Args:
        model: a model prepared by :func:`nnlut.approximate_` with table-based ops.
        batches: model inputs (dicts as a tokenizer returns them, or tensors); no labels are
            read. Each is run once, without gradients.
        capacity: values kept per (module, table) by the reservoir observers.
        max_batches: stop after this many batches.
        seed: sampling seed of the observers.
        input_scale_criterion: how INT8 tables (``number_format="int8"``) choose their input
            scale 2**-P on held-out samples: ``rms`` (default) or ``mean_abs`` error.

    Tables shared between modules (``share_tables=True``) are refit once on the pooled
    inputs of all their modules; per-module tables are refit separately. Returns a
    :class:`CalibrationReport` (time, per-table error before and after, domain extensions).
    """
    from ._scale import CRITERIA

    if input_scale_criterion is not None and input_scale_criterion not in CRITERIA:
        raise NNLUTError(f"input_scale_criterion {input_scale_criterion!r} is unknown; allowed: {', '.join(CRITERIA)}")
    mode = _call_mode(model)
    mods = _lut_modules(model) if mode is None else {n: m for n, m in approx_modules(model).items() if m.kernel.tables}
    res: dict[tuple[str, str], Reservoir] = {}

    def observe_call(site: str, function: str, x: torch.Tensor, importance: torch.Tensor | None = None) -> None:
        key = (site, function)
        if key not in res:
            res[key] = Reservoir(capacity, seed=seed + len(res))
        res[key].add(x, importance)

    def make_observer(name: str):  # noqa: ANN202
        def observe(module: ApproxOp, inputs: dict[str, torch.Tensor]) -> None:
            for role, x in inputs.items():
                if role in module.kernel.tables:
                    key = (name, role)
                    if key not in res:
                        res[key] = Reservoir(capacity, seed=seed + len(res))
                    if isinstance(x, tuple):
                        res[key].add(*x)
                    else:
                        res[key].add(x)
        return observe

    observers = {name: make_observer(name) for name in mods}
    report = CalibrationReport()
    was_training = model.training
    t0 = time.perf_counter()
    try:
        for name, m in mods.items():
            m.observers.append(observers[name])
        if mode is not None:
            mode.observer = observe_call
        model.eval()
        with torch.no_grad():
            for k, batch in enumerate(progress(batches, desc="calibration data")):
                if max_batches is not None and k >= max_batches:
                    break
                if isinstance(batch, dict):
                    model(**batch)
                elif isinstance(batch, (tuple, list)):
                    model(*batch)
                else:
                    model(batch)
                report.batches += 1
    finally:
        for name, m in mods.items():
            if observers[name] in m.observers:
                m.observers.remove(observers[name])
        if mode is not None:
            mode.observer = None
        model.train(was_training)
    report.batches = merge_across_ranks(res, report.batches)  # under torchrun: every rank refits from all ranks' samples
    report.seconds_observe = time.perf_counter() - t0
    if report.batches == 0:
        raise NNLUTError("no calibration data: the batches iterable was empty")

    t1 = time.perf_counter()
    groups: dict[Any, tuple[Table, list[tuple[str, str]]]] = {}
    for name, m in mods.items():
        for role, table in m.kernel.tables.items():
            groups.setdefault(id(table), (table, []))[1].append((name, role))
    if mode is not None:
        _call_groups(mode, res, groups)
    new_tables: dict[Any, Table] = {}
    for tid, (table, users) in progress(list(groups.items()), desc="refitting tables"):
        samples, importance = Reservoir.pooled([res[u] for u in users if u in res])
        if len(samples) < MIN_SAMPLES:
            new_tables[tid] = table
            report.tables.append({"function": table.function, "entries": table.entries, "modules": [u[0] for u in users],
                                  "samples": len(samples), "extended": False,
                                  "notes": [f"kept unchanged: only {len(samples)} samples (needs {MIN_SAMPLES})"]})
            continue
        try:
            new, info = refit_table(table, samples, importance, input_scale_criterion=input_scale_criterion)
        except NNLUTError as e:
            raise NNLUTError(f"calibrating the {table.function} table of {users[0][0]}: {e}") from None
        new_tables[tid] = new
        report.tables.append(_table_record(table, users, info))
    for m in mods.values():
        m.set_kernel(m.kernel.with_tables({role: new_tables[id(t)] for role, t in m.kernel.tables.items()}))
    if mode is not None:
        _set_call_tables(mode, new_tables)
    report.seconds_refit = time.perf_counter() - t1
    logger.info("calibrated %d tables on %d batches in %.2f s", len(groups), report.batches, report.seconds)
    return report


def _call_groups(mode: Any, res: dict[tuple[str, str], Reservoir],
                 groups: dict[Any, tuple[Table, list[tuple[str, str]]]]) -> None:
    """Add the call sites' tables to ``groups``: a table shared between sites and modules
    (``share_tables=True``, a table object the site does not own) is refit once on everything
    that reads it; otherwise each observed site gets its own table, refit on its inputs."""
    shared = mode.config is None or mode.config.share_tables
    for (site, function) in sorted(k for k in res if "#" in k[0]):
        table = mode.tables_at(site)[function]
        own = function in mode.site_tables.get(site, {})
        key = id(table) if shared or own else (site, function)
        groups.setdefault(key, (table, []))[1].append((site, function))


def _set_call_tables(mode: Any, new_tables: dict[Any, Table]) -> None:
    """Put the refit tables where the call sites read them."""
    for key, table in new_tables.items():
        if isinstance(key, tuple):  # a site's own table from now on
            site, function = key
            mode.site_tables.setdefault(site, {})[function] = table
    mode.tables = {f: new_tables.get(id(t), t) for f, t in mode.tables.items()}
    mode.site_tables = {site: {f: new_tables.get(id(t), t) for f, t in own.items()}
                        for site, own in mode.site_tables.items()}


def _table_record(table: Table, users: list[tuple[str, str]], info: RefitInfo) -> dict[str, Any]:
    return {"function": table.function, "entries": table.entries, "modules": [u[0] for u in users], **info.as_dict()}
