"""Thin ``nn.Module`` faces for approximated ops.

Each module holds a :class:`~nnlut.ops._kernels.Kernel` and calls it. Modules that replace
an existing module keep it (``original``, outside the module tree) so that it can be put back
bit-exactly, and share its parameters, so the original's ``state_dict`` entries stay as they were.

Each table a module reads is also three buffers of the module, ``<role>_breakpoints``,
``<role>_slopes`` and ``<role>_intercepts`` (float64 values of a float or half-precision
table, int64 codes of a fixed-point table): they are in ``state_dict``, move with
``.to(device)`` (a dtype cast leaves them as they are: a table's values are not the model's
dtype), and are what the table ops read inside the module's forward, so a ``torch.export``
program or an ONNX graph takes the tables from the module's named buffers. The buffers are the
source of truth: values loaded with ``load_state_dict`` or written in place become the
kernel's tables before the next use; a ``state_dict`` without them (the original model's)
loads as well, leaving the tables as they are.

Two optional hooks serve evaluation and calibration: ``track`` accumulates the op's error
against the exact op on the same inputs, and ``observers`` see, on every call, the inputs each
of the op's tables receives (``{role: tensor}`` or ``{role: (tensor, importance)}``, e.g.
``{"exp": (x - max, 1/sum**2), "reciprocal": sum}``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._errors import NNLUTError
from ..core._table import Table
from ..kernels._args import adopt, bound_tables, table_args, table_from_args
from ._kernels import ActivationKernel, Kernel, LayerNormKernel, RMSNormKernel, SoftmaxKernel, make_kernel
from ._lut import lut_attention_softmax


@dataclass
class ErrorStats:
    """Running error of an op's output against the exact op."""

    count: int = 0
    sum_abs: float = 0.0
    sum_sq: float = 0.0
    max_abs: float = 0.0
    sum_ref_sq: float = 0.0

    def update(self, y: torch.Tensor, ref: torch.Tensor) -> None:
        with torch.no_grad():
            ok = torch.isfinite(ref)
            d = (y.double() - ref.double())[ok]
            r = ref.double()[ok]
            if d.numel() == 0:
                return
            self.count += d.numel()
            self.sum_abs += float(d.abs().sum())
            self.sum_sq += float((d * d).sum())
            self.max_abs = max(self.max_abs, float(d.abs().max()))
            self.sum_ref_sq += float((r * r).sum())

    def as_dict(self) -> dict[str, float]:
        import math

        mean_abs = self.sum_abs / self.count if self.count else math.nan
        sqnr = 10 * math.log10(self.sum_ref_sq / self.sum_sq) if self.sum_sq > 0 else math.inf
        return {"elements": self.count, "max_abs": self.max_abs, "mean_abs": mean_abs, "sqnr_db": sqnr}


_PARTS = ("breakpoints", "slopes", "intercepts")
_NULL = contextlib.nullcontext()


class TableHolder(nn.Module):
    """A module that holds tables as buffers (``<role>_breakpoints``, ``<role>_slopes``,
    ``<role>_intercepts``) and binds them for the table ops (see the module docstring).

    Subclasses say where their tables live: :meth:`held_tables` (role -> table, the tables to
    hold) and :meth:`replace_tables` (take tables rebuilt from the buffers).
    """

    def __init__(self) -> None:
        super().__init__()
        self._layouts: dict[str, str] = {}  # role -> the layout of its table (as in its buffers)
        self._held: dict[str, int] = {}  # role -> id of the table the buffers were made from
        self._synced: tuple = ()
        self._source: Any = None

    def held_tables(self) -> dict[str, Any]:
        raise NotImplementedError

    def replace_tables(self, tables: dict[str, Any]) -> None:
        raise NotImplementedError

    def source_token(self) -> Any:
        """A cheap value that changes when the held tables are replaced at their source."""
        return tuple(id(t) for t in self.held_tables().values())

    def hold_tables(self) -> None:
        """Make the held tables the module's table buffers (on the device its table buffers
        were on)."""
        device = next((b.device for n, b in self._buffers.items() if b is not None and n.endswith("_breakpoints")), None)
        for role in self._layouts:
            for part in _PARTS:
                self._buffers.pop(f"{role}_{part}", None)
        self._layouts, self._held = {}, {}
        for role, table in self.held_tables().items():
            try:
                *tensors, layout = table_args(table)
            except NNLUTError:  # a table kind the table ops do not take: no buffers, its caller calls it
                continue
            own = tuple(t.clone() if device is None else t.to(device, copy=True) for t in tensors)
            for part, t in zip(_PARTS, own, strict=True):
                self.register_buffer(f"{role}_{part}", t)
            self._layouts[role] = layout
            self._held[role] = id(table)
            adopt(table, own, layout)
        self._synced = self._sync_token()
        self._source = self.source_token()

    def _table_buffers(self, role: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self._buffers
        return b[f"{role}_breakpoints"], b[f"{role}_slopes"], b[f"{role}_intercepts"]  # type: ignore[return-value]

    def _sync_token(self) -> tuple:
        return tuple((id(t), t._version) for role in self._layouts for t in self._table_buffers(role))

    def _sync(self) -> None:
        """Make the tables what the buffers hold (after a move, a load, an in-place write or a
        copy of the module); tables replaced at their source become the buffers."""
        tables = self.held_tables()
        if {r: id(t) for r, t in tables.items() if r in self._layouts} != self._held or not set(self._layouts) <= set(tables):
            self.hold_tables()
            return
        if self._sync_token() == self._synced:
            return
        new = {}
        for role, layout in self._layouts.items():
            own = self._table_buffers(role)
            table = tables[role]
            canon = table_args(table)
            if canon[3] != layout or any(not torch.equal(a, b.to(a.device)) for a, b in zip(canon[:3], own, strict=True)):
                table = table_from_args(*own, layout)
                new[role] = table
            adopt(table, own, layout)
        if new:
            self.replace_tables(new)
            self._held.update({r: id(t) for r, t in new.items()})
        self._synced = self._sync_token()
        self._source = self.source_token()

    def _binding(self) -> dict[int, tuple[Any, Any]]:
        tables = self.held_tables()
        return {id(tables[role]): (tables[role], (*self._table_buffers(role), layout))
                for role, layout in self._layouts.items()}

    def tables_bound(self) -> Any:
        """Context manager: the table ops read this module's buffers (see the module
        docstring) in a traced graph (``torch.export``, ``torch.jit.trace``); under
        ``torch.compile`` the tables are constants of the graph instead. In eager calls the
        tables are first made what the buffers hold; the ops then read the tables' own tensors
        (the same values), which costs nothing per call."""
        if not self._layouts:
            return _NULL
        if torch.compiler.is_compiling():
            if torch.compiler.is_dynamo_compiling():
                return _NULL
            return bound_tables(self._binding())  # torch.export: the buffers are the trace's tensors
        if self.source_token() != self._source or self._sync_token() != self._synced:
            self._sync()
        if torch._C._is_tracing():
            return bound_tables(self._binding())
        return _NULL

    def _apply(self, fn: Any, recurse: bool = True) -> TableHolder:
        self._sync()
        out = super()._apply(fn, recurse)
        tables = self.held_tables()
        for role in self._layouts:  # a dtype cast (model.half()) keeps the tables' own dtype
            canon = table_args(tables[role])[:3]
            for part, c in zip(_PARTS, canon, strict=True):
                name = f"{role}_{part}"
                b = self._buffers[name]
                if b is not None and b.dtype != c.dtype:
                    self._buffers[name] = c.to(b.device, copy=True)
        self._sync()
        return out

    def _load_from_state_dict(self, state_dict: Any, prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        self._sync()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        own = {prefix + f"{role}_{part}" for role in self._layouts for part in _PARTS}
        missing_keys[:] = [k for k in missing_keys if k not in own]  # the original model's state_dict
        self._sync()


class ApproxOp(TableHolder):
    """Base class of every approximated op module."""

    op: str = ""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.track = False
        self.stats = ErrorStats()
        self.observers: list[Callable[[ApproxOp, dict[str, torch.Tensor]], None]] = []
        self.set_kernel(kernel)

    def set_kernel(self, kernel: Kernel) -> None:
        """Use ``kernel``; its tables become the module's table buffers."""
        self.kernel = kernel
        self.hold_tables()

    def held_tables(self) -> dict[str, Any]:
        return dict(self.kernel.tables)

    def replace_tables(self, tables: dict[str, Any]) -> None:
        self.kernel = self.kernel.with_tables(tables)

    def source_token(self) -> Any:
        return id(self.kernel)

    def _observe(self, inputs: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for obs in self.observers:
                obs(self, inputs)

    def extra_repr(self) -> str:
        return self.kernel.describe()


class ApproxActivation(ApproxOp):
    """Replaces an elementwise activation module (GELU, SiLU)."""

    def __init__(self, kernel: ActivationKernel, original: nn.Module | None = None) -> None:
        super().__init__(kernel)
        self.op = "silu" if kernel.function == "silu" else "gelu"
        self.__dict__["original"] = original  # kept outside the module tree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observers:
            self._observe({"act": x})
        with self.tables_bound():
            y = self.kernel(x)
        if self.track:
            if self.original is not None:
                ref = self.original(x)
            else:
                ref = make_kernel(self.op, "exact", function=self.kernel.function)(x)
            self.stats.update(y, ref)
        return y


class ApproxSoftmax(ApproxOp):
    """Softmax along a dim (an attention's softmax, or a replaced ``nn.Softmax``)."""

    op = "softmax"

    def __init__(self, kernel: SoftmaxKernel, dim: int = -1, original: nn.Module | None = None) -> None:
        super().__init__(kernel)
        self.dim = dim
        # an attention's softmax: what a query whose keys are all masked gets (None: eager's even
        # spread; "zero": zeros, as SDPA gives)
        self.empty_rows: str | None = None
        self.__dict__["original"] = original

    def forward(self, x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        d = self.dim if dim is None else dim
        if self.observers:
            self._observe(self._table_inputs(x, d))
        with self.tables_bound():
            y = self.kernel(x, d)
        if self.track:
            self.stats.update(y, torch.softmax(x.float(), dim=d).to(y.dtype))
        return y


    OBSERVED_ROWS = 1024

    def fused_attention(self, raw: torch.Tensor, scale: float, mask: torch.Tensor | None,
                        inplace: bool = False) -> torch.Tensor | None:
        """``self(raw * scale + mask[..., :keys])`` over the last dim of (batch, heads, queries,
        keys) scores in one op, when this softmax has float tables, no observers or error
        tracking, no input needs a gradient and ``mask`` is None or an additive float mask;
        else None (the caller takes the unfused path). ``inplace``: overwrite ``raw`` (a
        contiguous temporary) with the probabilities."""
        if self.observers or self.track or raw.dim() != 4:
            return None
        exp, rec = self.kernel.tables.get("exp"), self.kernel.tables.get("reciprocal")
        if not (isinstance(exp, Table) and isinstance(rec, Table)) or (
                mask is not None and (not mask.is_floating_point() or mask.dim() != 4)):
            return None
        if torch.is_grad_enabled() and (raw.requires_grad or (mask is not None and mask.requires_grad)):
            return None
        with self.tables_bound():
            return lut_attention_softmax(raw, scale, mask, exp, rec, inplace=inplace)

    def _table_inputs(self, x: torch.Tensor, dim: int) -> dict[str, torch.Tensor]:
        """Inputs of the exp and reciprocal tables on a random subset of rows (bounded work)."""
        with torch.no_grad():
            rows = x.movedim(dim, -1).reshape(-1, x.shape[dim])
            if rows.shape[0] > self.OBSERVED_ROWS:
                gen = torch.Generator().manual_seed(rows.shape[0])  # deterministic, leaves the global RNG alone
                pick = torch.randperm(rows.shape[0], generator=gen)[: self.OBSERVED_ROWS]
                rows = rows[pick.to(rows.device)]
            z = rows.float() - rows.float().amax(dim=-1, keepdim=True)
            exp = self.kernel.tables.get("exp")
            e = exp(z) if exp is not None else torch.exp(z)
            s = e.sum(dim=-1, keepdim=True)
            # an error in exp(z) moves the probability by error / row sum: weight by 1/sum**2
            return {"exp": (z, (1.0 / (s * s)).expand_as(z)), "reciprocal": s.squeeze(-1)}


class ApproxLayerNorm(ApproxOp):
    """Replaces an ``nn.LayerNorm``, or a module that computes one (``eps`` and
    ``normalized_shape`` given: OLMo's parameter-free norm, Cohere's bias-free one); shares its
    weight and bias (either may be None)."""

    op = "layernorm"

    def __init__(self, kernel: LayerNormKernel, original: nn.Module, eps: float | None = None,
                 normalized_shape: tuple[int, ...] | None = None) -> None:
        super().__init__(kernel)
        self.normalized_shape = tuple(original.normalized_shape if normalized_shape is None else normalized_shape)
        self.eps = float(original.eps if eps is None else eps)
        self.weight = getattr(original, "weight", None)
        self.bias = getattr(original, "bias", None)
        self.__dict__["original"] = original

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.tables_bound():
            y = self.kernel(x, self.normalized_shape, self.weight, self.bias, self.eps)
        if self.observers:
            dims = tuple(range(-len(self.normalized_shape), 0))
            self._observe({"rsqrt": x.float().var(dim=dims, unbiased=False) + self.eps})
        if self.track:
            self.stats.update(y, self.original(x))
        return y


class ApproxRMSNorm(ApproxOp):
    """Replaces an RMSNorm module (``nn.RMSNorm`` or a LLaMA-style ``*RMSNorm``); ``weighted``
    False: the original ignores its ``weight`` (a placeholder), and so does this."""

    op = "rmsnorm"

    def __init__(self, kernel: RMSNormKernel, original: nn.Module, eps: float, weight_offset: float = 0.0,
                 weighted: bool = True) -> None:
        super().__init__(kernel)
        self.eps = float(eps)
        self.weight_offset = float(weight_offset)
        self.weight = getattr(original, "weight", None) if weighted else None
        self.__dict__["original"] = original

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.tables_bound():
            y = self.kernel(x, self.weight, self.eps, self.weight_offset)
        if self.observers:
            xf = x.float()
            self._observe({"rsqrt": (xf * xf).mean(dim=-1) + self.eps})
        if self.track:
            self.stats.update(y, self.original(x))
        return y


def approx_modules(model: nn.Module) -> dict[str, ApproxOp]:
    """All approximated op modules of ``model`` by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ApproxOp)}


class track_errors:
    """Context manager: accumulate each approximated op's error against the exact op.

    ``with track_errors(model) as t: model(**batch)``, then ``t.report()`` gives, per module,
    elements seen, max and mean absolute error and SQNR (dB).
    """

    def __init__(self, model: nn.Module) -> None:
        self.modules = approx_modules(model)

    def __enter__(self) -> track_errors:
        for m in self.modules.values():
            m.stats = ErrorStats()
            m.track = True
        return self

    def __exit__(self, *exc: Any) -> None:
        for m in self.modules.values():
            m.track = False

    def report(self) -> dict[str, dict[str, Any]]:
        return {name: {"op": m.op, **m.stats.as_dict()} for name, m in self.modules.items()}
