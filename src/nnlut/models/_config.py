"""``ApproxConfig``: what ``approximate_`` replaces, and with what."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .._errors import NNLUTError
from ..core._io import table_from_any_dict
from ..core._table import Table, is_table, table_kinds
from ..core._validate import check_seed, check_values
from ._registry import method_names, method_spec, op_names

SCALINGS = ("full", "paper")


@dataclass(frozen=True)
class ApproxConfig:
    """Configuration of :func:`nnlut.approximate_`.

    Args:
        ops: tuple of op types to replace, any of ``gelu``, ``softmax``, ``layernorm``, ``silu``,
            ``rmsnorm`` or a registered op; ``None`` (default) = every one the model has.
        method: ``nnlut`` (trained tables, default), ``linear`` / ``exponential``
            (conventional tables), ``ibert`` (I-BERT's integer kernels) or ``exact``
            (PyTorch reference through the same plumbing).
        entries: table entries N (default 16).
        scaling: input scaling of the reciprocal and rsqrt tables: ``full`` range reduction
            (default; relative error ~3e-4 for every positive input) or ``paper`` (table on
            [1, 1024], inputs below 1 scaled).
        share_tables: one table object per function for the whole model (default) or one per
            module (what per-layer calibration refits).
        overrides: per-module settings by name: an exact module name, else the first regular
            expression (full match) that matches, else this config; a value of ``None``
            leaves that module exact. A key that matches no op is an error. Call sites are
            named ``<module path>#<call>`` (``model.layers.0.self_attn#tanh``); an override of
            ``None`` that matches one leaves that call exact (keys with ``#`` are not checked
            against the model: its call sites are known only when the forward runs).
        tables: fixed tables to use instead of fitting, by function name (``gelu``, ``exp``,
            ``reciprocal``, ``rsqrt``, ``silu``, ``gelu_tanh``).
        number_format: ``None`` (float tables, default) or a number format spec
            (:func:`nnlut.fixed.in_format`): ``"int16"`` (bit-exact INT16 input / INT32
            accumulate tables), ``"int8"`` (GQA-LUT's INT8 datapath; each table's power-of-two
            input scale ``2**-P`` is the finest that holds its default domain, and
            :func:`nnlut.calibrate` then chooses it from the data: the P whose table has the
            smallest error on held-out observed inputs),
            ``"int8:P"``, ``"fp16"`` or ``"bf16"`` (half-precision parameters and multiply-add).
        seed: fitting seed.
        calls: also serve the non-linear functions the model's code calls directly
            (``F.softmax``, ``torch.exp``, ``x.tanh()``, divisions by computed tensors, ...)
            from tables while its forward runs (default); False replaces modules only.
    """

    ops: tuple[str, ...] | None = None
    method: str = "nnlut"
    entries: int = 16
    scaling: str = "full"
    share_tables: bool = True
    overrides: dict[str, ApproxConfig | None] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    number_format: str | None = None
    seed: int = 0
    calls: bool = True

    VERSION: ClassVar[int] = 1
    __hash__ = None  # type: ignore[assignment]  # frozen, but holds dicts

    def __post_init__(self) -> None:
        if self.ops is not None:
            if isinstance(self.ops, (list, set, frozenset)) or (
                    isinstance(self.ops, Sequence) and not isinstance(self.ops, (str, bytes, tuple))):
                # a list (what torchao and PEFT take) or any sequence of names: kept as a tuple
                object.__setattr__(self, "ops", tuple(sorted(self.ops) if isinstance(self.ops, (set, frozenset))
                                                      else self.ops))
            if not isinstance(self.ops, tuple) or not all(isinstance(o, str) for o in self.ops):
                raise NNLUTError(f"ops must be a list or tuple of op names such as ['gelu'] or None, got {self.ops!r}")
            bad = [o for o in self.ops if o not in op_names()]
            if bad:
                raise NNLUTError(f"unknown op(s) {', '.join(map(repr, bad))}; allowed: {', '.join(op_names())}")
            if not self.ops:
                raise NNLUTError("ops is empty; give at least one op or None for all")
        if self.method not in method_names():
            raise NNLUTError(f"method {self.method!r} is unknown; allowed: {', '.join(method_names())}")
        if isinstance(self.entries, bool) or not isinstance(self.entries, int) or not 2 <= self.entries <= 4096:
            raise NNLUTError(f"entries must be an integer between 2 and 4096, got {self.entries!r}")
        if self.number_format is not None:
            from ..fixed import parse_format

            parse_format(self.number_format)  # a bad spec raises one line naming the allowed ones
        if self.number_format is not None and not method_spec(self.method).number_formats:
            raise NNLUTError(f"number_format applies to table methods, not {self.method!r}")
        if not isinstance(self.calls, bool):
            raise NNLUTError(f"calls must be True or False, got {self.calls!r}")
        if not isinstance(self.share_tables, bool):
            raise NNLUTError(f"share_tables must be True or False, got {self.share_tables!r}")
        object.__setattr__(self, "seed", check_seed(self.seed))
        if self.scaling not in SCALINGS:
            raise NNLUTError(f"scaling {self.scaling!r} is unknown; allowed: {', '.join(SCALINGS)}")
        if not isinstance(self.overrides, Mapping):
            raise NNLUTError("overrides must be a mapping of module name or pattern to ApproxConfig or None")
        for key, value in self.overrides.items():
            if not isinstance(key, str):
                raise NNLUTError(f"override key {key!r} must be a module name or regular expression")
            try:
                re.compile(key)
            except re.error as e:
                raise NNLUTError(f"override key {key!r} is not a valid regular expression: {e}") from None
            if value is not None and not isinstance(value, ApproxConfig):
                raise NNLUTError(f"override {key!r} must be an ApproxConfig or None, got {type(value).__name__}")
        if not isinstance(self.tables, Mapping):
            raise NNLUTError("tables must be a mapping of function name to table")
        for name, t in self.tables.items():
            if not is_table(t):
                raise NNLUTError(f"tables[{name!r}] must be a table ({', '.join(table_kinds())}), got {type(t).__name__}")
            try:
                check_values(t, name)  # the values of the function it serves (an exp table given for gelu: refused)
            except NNLUTError as e:
                raise NNLUTError(f"tables[{name!r}]: {e}") from None

    # ------------------------------------------------------------------ resolution
    def resolve(self, name: str) -> ApproxConfig | None:
        """The config that applies to module ``name`` (``None`` = leave it exact)."""
        if name in self.overrides:
            return self.overrides[name]
        for key, value in self.overrides.items():
            if re.fullmatch(key, name):
                return value
        return self

    def unmatched_overrides(self, names: list[str]) -> list[str]:
        """Override keys that name no op of ``names``; keys with ``#`` name call sites
        (``<module path>#<call>``), known only when the forward runs, and are not checked."""
        return [k for k in self.overrides
                if "#" not in k and k not in names and not any(re.fullmatch(k, n) for n in names)]

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "ops": list(self.ops) if self.ops is not None else None,
            "method": self.method, "entries": self.entries, "scaling": self.scaling,
            "share_tables": self.share_tables, "seed": self.seed, "number_format": self.number_format,
            "calls": self.calls,
            "overrides": {k: (v.to_dict() if v is not None else None) for k, v in self.overrides.items()},
            "tables": {k: t.to_dict() for k, t in self.tables.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ApproxConfig:
        """The config :meth:`to_json` wrote."""
        try:
            data = json.loads(text)
        except ValueError as e:
            raise NNLUTError(f"a config must be JSON: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ApproxConfig:
        if not isinstance(d, Mapping):
            raise NNLUTError(f"a config must be an object, got {type(d).__name__}")
        version = d.get("version", cls.VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version != cls.VERSION:
            raise NNLUTError(f"unknown config version {d.get('version')!r}; this nnlut reads version {cls.VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - {"version"}
        if unknown:
            raise NNLUTError(f"unknown config key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(known))}")
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("ops") is not None:
            kw["ops"] = tuple(kw["ops"])
        kw["overrides"] = {k: (cls.from_dict(v) if v is not None else None) for k, v in (d.get("overrides") or {}).items()}
        kw["tables"] = {k: table_from_any_dict(v) for k, v in (d.get("tables") or {}).items()}
        return cls(**kw)
