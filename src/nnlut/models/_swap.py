"""``approximate_`` and ``restore_``: replace a model's non-linear ops in place, and undo it."""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .._errors import NNLUTError
from .._logging import logger
from ..core._table import Table
from ..ops._kernels import Kernel
from ..ops._modules import ApproxSoftmax
from ._accounting import left_exact
from ._config import ApproxConfig
from ._default_tables import fitted_table
from ._registry import method_spec, op_spec
from ._sites import Site, find_sites

_STATE = "_nnlut_state"
# (id(table), format) -> (table ref, converted table ref): one converted table per source table
# and format while some model uses it (shared default tables convert once); holds neither alive
_FORMATS: dict[tuple[int, str], tuple[weakref.ref, weakref.ref]] = {}


def _number_format(table: Table, fmt: str) -> Any:
    """``table`` in number format ``fmt`` (the same object while one is in use)."""
    from ..fixed import in_format

    key = (id(table), fmt)
    hit = _FORMATS.get(key)
    if hit is not None and hit[0]() is table:
        out = hit[1]()
        if out is not None:
            return out
    out = in_format(table, fmt)
    _FORMATS[key] = (weakref.ref(table), weakref.ref(out, lambda r, k=key: _forget(k, r)))
    return out


def _forget(key: tuple[int, str], ref: weakref.ref) -> None:
    hit = _FORMATS.get(key)
    if hit is not None and hit[1] is ref:
        del _FORMATS[key]


@dataclass
class ApproxReport:
    """What ``approximate_`` did.

    ``replaced``: one record per replaced op (``name``, ``op``, ``method``, ``kernel``,
    ``function``). ``left_exact``: one record per non-linear op or call left exact (``name``,
    ``op``, ``why``): ops outside ``config.ops`` or overridden with ``None``, modules nnlut has
    no table for, and non-linear functional calls inside a module's ``forward`` that no table
    serves.

    After a traced probe forward (``approximate_(..., probe=batch)`` or
    :func:`approximation_report` with ``probe``) the report says what ran, not what was swapped:
    ``replaced`` keeps the modules that ran on tables and ``not_run`` lists those that never ran
    in the forward (a replaced module the model never calls); ``calls`` has one record per call
    site (``site``: ``<module path>#<call>``, ``on``: ``table``, ``static`` or ``exact``, ``why``,
    ``calls``, ``elements``); ``coverage`` is the dispatch-level
    :class:`~nnlut.models._trace.Coverage` of that forward (its ``coverage``: the share of
    data-dependent non-linear evaluations that ran on tables).
    """

    replaced: list[dict[str, Any]] = field(default_factory=list)
    left_exact: list[dict[str, str]] = field(default_factory=list)
    not_run: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    coverage: Any = None

    @property
    def skipped(self) -> list[str]:
        """Names of the module paths left exact."""
        return [r["name"] for r in self.left_exact]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.replaced:
            out[r["op"]] = out.get(r["op"], 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        out = {"replaced": self.replaced, "left_exact": self.left_exact, "counts": self.counts()}
        if self.coverage is not None:
            out.update(not_run=self.not_run, calls=self.calls, coverage=self.coverage.as_dict())
        return out

    def __str__(self) -> str:
        parts = [f"{n} {op}" for op, n in self.counts().items()]
        s = "replaced " + (", ".join(parts) if parts else "nothing")
        if self.left_exact:
            s += f"; left exact: {len(self.left_exact)} (" + "; ".join(
                f"{r['name']}: {r['op']}" for r in self.left_exact[:4]) + (", ..." if len(self.left_exact) > 4 else "") + ")"
        if self.not_run:
            s += f"; replaced but never ran: {', '.join(r['name'] for r in self.not_run)}"
        if self.coverage is not None:
            s += f"; {self.coverage}"
        return s


@dataclass
class _State:
    swaps: list[tuple[nn.Module, str, nn.Module]] = field(default_factory=list)
    children: list[nn.Module] = field(default_factory=list)
    attention: list[tuple[nn.Module, str]] = field(default_factory=list)
    report: ApproxReport = field(default_factory=ApproxReport)
    calls: Any = None  # the CallTables serving the forward's non-linear calls, or None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # an approximated model unpickled in a fresh process (torch.load, pickle, deepcopy)
        # dispatches its attention to "nnlut": make that name known to transformers again
        self.__dict__.update(state)
        if self.attention:
            from ._hf import register

            register()


def _kernel_for(site: Site, cfg: ApproxConfig, shared: dict[tuple, Kernel]) -> Kernel:
    function = site.function
    method = method_spec(cfg.method)
    if not method.fitted:
        return method.make(site.op, None, function)
    roles = op_spec(site.op).tables_for(function)
    key = (site.op, function, id(cfg))
    if cfg.share_tables and key in shared:
        return shared[key]
    tables = {}
    for role, fn in roles.items():
        if fn in cfg.tables:
            tables[role] = cfg.tables[fn]
        else:
            t = fitted_table(fn, cfg.method, cfg.entries, cfg.scaling, cfg.seed)
            tables[role] = t if cfg.share_tables else t.replace()
    if cfg.number_format is not None:
        tables = {role: _number_format(t, cfg.number_format) for role, t in tables.items()}
    kernel = method.make(site.op, tables, function)
    if cfg.share_tables:
        shared[key] = kernel
    return kernel


def approximate_(model: nn.Module, config: ApproxConfig | None = None, *, verify: bool = True,
                 probe: Any = None) -> ApproxReport:
    """Replace ``model``'s non-linear ops in place, as ``config`` says; undo with :func:`restore_`.

    Args:
        model: any ``nn.Module``; HuggingFace models (BERT, RoBERTa, DistilBERT, MPNet,
            LLaMA-style, ...) whatever attention implementation they were loaded with.
        config: what to replace and how (default: every op, 16-entry NN-LUT tables).
        verify: check at swap time that each replaced module computes what nnlut assumes.
        probe: model inputs (a dict of keyword arguments, a tuple of positional ones, or one
            tensor) for one traced forward after the swap: the report then says what ran on
            tables and what ran exact (see :class:`ApproxReport`).

    Returns:
        An :class:`ApproxReport` listing every replaced op (also kept on the model).

    Raises:
        NNLUTError: an op in ``config.ops`` the model does not have, an override pattern that
            matches nothing, a module nnlut cannot reproduce, or a model already approximated.
    """
    config = config if config is not None else ApproxConfig()
    if not isinstance(config, ApproxConfig):
        raise NNLUTError(f"config must be an ApproxConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise NNLUTError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if getattr(model, _STATE, None) is not None:
        raise NNLUTError("model is already approximated; call nnlut.restore_(model) first")
    sites = find_sites(model, verify=verify)
    present = sorted({s.op for s in sites})
    wanted = config.ops if config.ops is not None else tuple(present)
    missing = [op for op in wanted if op not in present]
    if missing:
        raise NNLUTError(f"the model has no {', '.join(missing)}; it has: {', '.join(present) or 'no replaceable ops'}")
    chosen = [s for s in sites if s.op in wanted]
    unmatched = config.unmatched_overrides([s.name for s in chosen])
    if unmatched:
        listing = ", ".join(s.name for s in chosen[:8]) + (", ..." if len(chosen) > 8 else "")
        raise NNLUTError(f"override(s) {', '.join(map(repr, unmatched))} match no replaced op; ops are named like: {listing}")

    not_chosen = {s.name: f"{s.op} is not in config.ops" for s in sites if s.op not in wanted}
    not_chosen.update({s.name: "an override of None leaves it exact" for s in chosen if config.resolve(s.name) is None})
    state = _State()
    calls = _build_calls(config)
    state.report.left_exact = left_exact(model, sites, not_chosen,
                                         served=calls.kinds if calls is not None and calls.tables else ())
    shared: dict[tuple, Kernel] = {}
    try:
        for site in chosen:
            cfg = config.resolve(site.name)
            if cfg is None:
                continue
            if site.unsupported:
                raise NNLUTError(
                    f"attention module {site.name.rsplit('.', 1)[0]!r} ({type(site.module).__name__}) uses "
                    f"{', '.join(site.unsupported)} in its attention, which nnlut's attention does not implement; "
                    f"leave its softmax exact with ApproxConfig(overrides={{{site.name!r}: None}}) or ops without "
                    f"'softmax'")
            kernel = _kernel_for(site, cfg, shared)
            _apply(site, kernel, state, verify)
            state.report.replaced.append({"name": site.name, "op": site.op, "method": kernel.method,
                                          "kernel": kernel.describe(), "function": site.function})
        _switch_attention(model, state)
        _install_calls(model, calls, sites, not_chosen, state)
    except BaseException:
        _undo(state, model)
        raise
    model.__dict__[_STATE] = state  # a plain attribute, outside the module tree and state_dict
    if probe is not None:
        _trace_report(model, state, probe)
    logger.info("approximate_: %s", state.report)
    return state.report


def _trace_report(model: nn.Module, state: _State, probe: Any) -> None:
    """Count what one forward on ``probe`` runs, and make the report say that."""
    from ._trace import trace_coverage

    if isinstance(probe, dict):
        args, kwargs = (), probe
    elif isinstance(probe, tuple):
        args, kwargs = probe, {}
    else:
        args, kwargs = (probe,), {}
    report = state.report
    if state.calls is not None:
        state.calls.stats.clear()
    coverage = trace_coverage(model, *args, **kwargs)
    swapped = report.replaced + [{k: v for k, v in r.items() if k != "why"} for r in report.not_run]
    report.replaced = [r for r in swapped if coverage.ran(r["name"])]
    report.not_run = [{**r, "why": "replaced, but the forward never calls it"} for r in swapped
                      if not coverage.ran(r["name"])]
    report.calls = state.calls.report() if state.calls is not None else []
    report.coverage = coverage


def _apply(site: Site, kernel: Kernel, state: _State, verify: bool) -> None:
    from ._hf import ADAPTERS, check_adapter

    if site.kind == "module":
        setattr(site.parent, site.attr, _placed(op_spec(site.op).face(kernel, site), site))
        state.swaps.append((site.parent, site.attr, site.module))
    elif site.kind == "adapter":
        adapter_cls = ADAPTERS[type(site.module).__name__]
        if verify:
            check_adapter(site.module, adapter_cls(site.module, ApproxSoftmax(kernel)))  # type: ignore[call-arg,arg-type]
        setattr(site.parent, site.attr,
                adapter_cls(site.module, _placed(ApproxSoftmax(kernel), site)))  # type: ignore[call-arg,arg-type]
        state.swaps.append((site.parent, site.attr, site.module))
    else:  # attention registry
        site.module.add_module("softmax", _placed(ApproxSoftmax(kernel), site))  # type: ignore[arg-type]
        state.children.append(site.module)


def _placed(face: nn.Module, site: Site) -> nn.Module:
    """``face`` with its table buffers on the device of the module it replaces (or of that
    module's parent: an activation has no tensors of its own)."""
    for m in (site.module, site.parent):
        for t in itertools.chain(m.parameters(), m.buffers()):
            if t.device.type not in ("cpu", "meta"):
                return face.to(t.device)
            return face
    return face


def _switch_attention(model: nn.Module, state: _State) -> None:
    if not state.children:
        return
    from ._hf import ATTN_NAME, ATTN_NAME_SDPA_MASKS, owning_pretrained_models, switch_attention

    owners = owning_pretrained_models(model)
    if not owners:
        raise NNLUTError("attention modules that use transformers' attention registry must sit inside a "
                         "transformers PreTrainedModel")
    for pm in owners:
        original = pm.config._attn_implementation  # type: ignore[union-attr]
        if original == "sdpa":  # fully masked queries: zeros, as SDPA gives them, not eager's even spread
            inside = {id(m) for m in pm.modules()}
            for module in state.children:
                if id(module) in inside:
                    module._modules["softmax"].empty_rows = "zero"
        switch_attention(pm, ATTN_NAME_SDPA_MASKS if original == "sdpa" else ATTN_NAME)
        state.attention.append((pm, original))


def _call_table(function: str, cfg: ApproxConfig) -> Any:
    table = cfg.tables.get(function) or fitted_table(function, cfg.method, cfg.entries, cfg.scaling, cfg.seed)
    if not cfg.share_tables:
        table = table.replace()
    return _number_format(table, cfg.number_format) if cfg.number_format is not None else table


def _build_calls(config: ApproxConfig) -> Any:
    from ._calls import build

    return build(config, _call_table)


def _install_calls(model: nn.Module, mode: Any, sites: list[Site], not_chosen: dict[str, str],
                   state: _State) -> None:
    """Serve the non-linear calls of ``model``'s forward with ``mode`` (see ``_calls``); calls
    inside replaced modules and inside sites left exact run exact."""
    from ..ops._modules import ApproxOp
    from ._calls import HOLDER, CallTableBuffers, install

    if mode is None:
        return
    exact = {id(m) for m in model.modules() if isinstance(m, ApproxOp)}
    exact.update(id(s.module) for s in sites if s.name in not_chosen)
    install(model, mode, exact)
    state.calls = mode
    # the call tables as buffers of one child of the model (not of a container, whose forward
    # calls every child: there the call tables stay constants of a traced graph)
    if mode.tables and not isinstance(model, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        if HOLDER in model._modules:
            raise NNLUTError(f"the model already has a child named {HOLDER!r}, where nnlut keeps its call tables")
        holder = CallTableBuffers(mode)
        device = next((t.device for t in itertools.chain(model.parameters(), model.buffers())), None)
        model.add_module(HOLDER, holder if device is None or device.type == "cpu" else holder.to(device))


def _undo(state: _State, model: nn.Module | None = None) -> None:
    from ._calls import uninstall
    from ._hf import switch_attention

    if model is not None:
        uninstall(model)

    for pm, original in reversed(state.attention):
        switch_attention(pm, original)
    for module in reversed(state.children):
        if isinstance(module._modules.get("softmax"), ApproxSoftmax):
            del module._modules["softmax"]
    for parent, attr, original in reversed(state.swaps):
        setattr(parent, attr, original)


def restore_(model: nn.Module) -> nn.Module:
    """Undo :func:`approximate_`: the model gets its original modules and attention back and
    gives bit-identical outputs to before. Returns the model."""
    state = model.__dict__.get(_STATE)
    if state is None:
        raise NNLUTError("model was not approximated by nnlut (nothing to restore)")
    _undo(state, model)
    del model.__dict__[_STATE]
    return model


def approximation_report(model: nn.Module, probe: Any = None) -> ApproxReport | None:
    """The report of the last ``approximate_`` on ``model``, or None; with ``probe`` (model
    inputs, as ``approximate_`` takes them) first counted again from a traced forward on it."""
    state = model.__dict__.get(_STATE)
    if state is not None and probe is not None:
        _trace_report(model, state, probe)
    return state.report if state is not None else None
