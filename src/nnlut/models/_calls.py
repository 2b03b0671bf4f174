"""Non-linear *calls* inside an approximated model on tables.

``approximate_`` swaps modules; a model's code also calls non-linear functions directly
(``F.softmax`` on inline attention scores, ``torch.tanh`` for soft-capping, ``torch.exp`` and
``F.softplus`` in an SSM mixer, ``x.rsqrt()``, ``a / a.sum(-1, keepdim=True)``). A
:class:`CallTables` (a ``torch.overrides.TorchFunctionMode``) serves those calls from tables
(:mod:`nnlut.ops._calls`) while the model's forward runs: a forward pre-hook on the model
enters it and a forward hook (called also when the forward raises) leaves it, so code outside
the model is untouched. Every module gets a pair of small hooks that keep the module path, so
each call site has a name, ``<module path>#<call>`` (``transformer.h.0.self_attention#softmax``),
and so that inside modules nnlut already replaced, or left exact on purpose (an override of
``None``, an op outside ``config.ops``), calls run exact: nothing is handled twice.

Static work stays exact: a call whose tensor inputs depend only on weights, buffers and
constants made in the forward (``-exp(A_log)``, ``1 / (base ** (arange / d))``) is precomputed
on an accelerator. The mode follows that through every torch call: outputs of a call whose
tensor inputs are all static are static; an in-place write with a data-dependent value makes
its target (and the target's base) data-dependent.

``stats`` counts, per site, calls and elements on tables and exact (with why).

Tables: every call site reads the mode's ``tables`` (function name -> table), unless
``site_tables`` gives it its own (``site_tables["model.layers.0.mlp.gate#softmax"]["exp"]``):
what calibration refits per site and a calibration folder restores. While ``observer`` is set
(``observer(site, function, x[, importance])``), every table a call reads reports the tensor
it is given (calibration's observation; the values are the same, evaluated through the
reference path; a softmax's exp inputs carry the weight 1 / row sum**2, as a softmax module's).

``torch.export`` (non-strict, its default) traces the model's Python as eager runs it, so the
mode serves the calls there too: the exported program has every call on its table op and
equals the eager model. Under ``torch.compile`` dynamo traces the hooks and the mode (a torch
function mode entered inside the compiled region) and the compiled graph holds the same table
ops as eager, with no graph break: the mode takes a traceable path there (``_traced``) with the
same decisions, static values marked by a tensor attribute instead of the weak dictionary,
call forms and in-place functions looked up by id, override resolution a constant of the
trace, and no counting (reports come from eager traces).
Strict export (``torch.export.export(..., strict=True)``) is the exception: its dynamo looks
tensor methods called under a torch function mode up on the mode, so there the hooks stand
aside and the program holds the replaced modules with the model's own calls exact; the default
non-strict export serves them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from ..ops._calls import CALLS, register_extra_functions
from ..ops._lut import _as_fn

ROOT = "<model>"
# call kind -> the module op whose ``config.ops`` entry also governs it (None: every op wanted)
OP_OF_CALL = {"softmax": "softmax", "log_softmax": "softmax", "sdpa": "softmax", "gelu": "gelu", "gelu_tanh": "gelu",
              "silu": "silu", "layer_norm": "layernorm", "rms_norm": "rmsnorm"}

T = torch.Tensor


# ------------------------------------------------------------------------ call signatures
# normaliser(args, kwargs) -> (kind, tensor, extra positional, options, in-place target) or None (run exact)
def _dim_dtype(args: tuple, kwargs: dict, dim_at: int, dtype_at: int) -> tuple[Any, Any]:
    dim = args[dim_at] if len(args) > dim_at else kwargs.get("dim")
    dtype = args[dtype_at] if len(args) > dtype_at else kwargs.get("dtype")
    return dim, dtype


def _softmax_form(kind: str, dim_at: int, dtype_at: int) -> Callable[[tuple, dict], Any]:
    def norm(args: tuple, kwargs: dict) -> Any:
        x = args[0]
        dim, dtype = _dim_dtype(args, kwargs, dim_at, dtype_at)
        if dim is None:
            dim = F._get_softmax_dim(kind, x.dim(), 5)
        if dtype is not None:
            x = x.to(dtype)
        return kind, x, (), {"dim": int(dim)}, None

    return norm


def _unary_form(kind: str, inplace: bool = False) -> Callable[[tuple, dict], Any]:
    def norm(args: tuple, kwargs: dict) -> Any:
        if len(args) != 1 or kwargs.get("out") is not None:
            return None
        return kind, args[0], (), {}, args[0] if inplace else None

    return norm


def _silu(args: tuple, kwargs: dict) -> Any:
    inplace = args[1] if len(args) > 1 else kwargs.get("inplace", False)
    return "silu", args[0], (), {}, args[0] if inplace else None


def _gelu(args: tuple, kwargs: dict) -> Any:
    approx = args[1] if len(args) > 1 else kwargs.get("approximate", "none")
    return ("gelu_tanh" if approx == "tanh" else "gelu"), args[0], (), {}, None


def _softplus(args: tuple, kwargs: dict) -> Any:
    beta = args[1] if len(args) > 1 else kwargs.get("beta", 1.0)
    threshold = args[2] if len(args) > 2 else kwargs.get("threshold", 20.0)
    return "softplus", args[0], (), {"beta": float(beta), "threshold": float(threshold)}, None


def _division(inplace: bool = False, reverse: bool = False) -> Callable[[tuple, dict], Any]:
    def norm(args: tuple, kwargs: dict) -> Any:
        if len(args) != 2 or kwargs.get("rounding_mode") is not None or kwargs.get("out") is not None:
            return None
        a, b = (args[1], args[0]) if reverse else args
        if not isinstance(b, T) or isinstance(a, T) and (not a.is_floating_point() or a.shape != torch.broadcast_shapes(
                a.shape, b.shape) and inplace):
            return None
        if not isinstance(a, (T, int, float)) or isinstance(a, bool):
            return None
        return "div", b, (a,), {}, args[0] if inplace else None

    return norm


_POWERS = {0.5: "sqrt", -0.5: "rsqrt", -1.0: "reciprocal"}


def _power(args: tuple, kwargs: dict) -> Any:
    e = args[1] if len(args) > 1 else kwargs.get("exponent")
    if len(args) != 2 or kwargs or not isinstance(args[0], T) or not isinstance(e, (int, float)) or isinstance(e, bool):
        return None
    kind = _POWERS.get(float(e))
    return None if kind is None else (kind, args[0], (), {}, None)


def _layer_norm(args: tuple, kwargs: dict) -> Any:
    names = ("normalized_shape", "weight", "bias", "eps")
    opts = {**dict(zip(names, args[1:], strict=False)), **{k: v for k, v in kwargs.items() if k in names}}
    if len(args) > 5 or set(kwargs) - set(names) or "normalized_shape" not in opts:
        return None
    return "layer_norm", args[0], (), {"eps": 1e-5, **opts}, None


def _rms_norm(args: tuple, kwargs: dict) -> Any:
    names = ("normalized_shape", "weight", "eps")
    opts = {**dict(zip(names, args[1:], strict=False)), **{k: v for k, v in kwargs.items() if k in names}}
    shape = opts.pop("normalized_shape", None)
    if len(args) > 4 or set(kwargs) - set(names) or shape is None or len(tuple(shape)) != 1:
        return None  # a norm over more than the last dimension: exact
    return "rms_norm", args[0], (), opts, None


_SDPA_ARGS = ("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def _sdpa(args: tuple, kwargs: dict) -> Any:
    if len(args) < 3 or len(args) > 8 or set(kwargs) - set(_SDPA_ARGS):
        return None
    q, k, v = args[:3]
    if not all(isinstance(t, T) for t in (q, k, v)) or q.dim() < 2:
        return None
    opts = {**dict(zip(_SDPA_ARGS, args[3:], strict=False)), **kwargs}
    return "sdpa", q, (k, v), opts, None


def _logsumexp(args: tuple, kwargs: dict) -> Any:
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if dim is None or len(args) > 3 or set(kwargs) - {"dim", "keepdim"}:
        return None
    return "logsumexp", args[0], (), {"dim": dim if isinstance(dim, int) else tuple(dim), "keepdim": bool(keepdim)}, None


def _glu(args: tuple, kwargs: dict) -> Any:
    dim = args[1] if len(args) > 1 else kwargs.get("dim", -1)
    return "glu", args[0], (), {"dim": int(dim)}, None


def _normalize(args: tuple, kwargs: dict) -> Any:
    names = ("p", "dim", "eps")
    opts = {**dict(zip(names, args[1:], strict=False)), **{k: v for k, v in kwargs.items() if k in names}}
    if len(args) > 4 or set(kwargs) - {*names, "out"} or kwargs.get("out") is not None or float(opts.pop("p", 2.0)) != 2.0:
        return None
    return "normalize", args[0], (), opts, None


_FORMS: dict[Any, Callable[[tuple, dict], Any]] = {
    F.softmax: _softmax_form("softmax", 1, 3), torch.softmax: _softmax_form("softmax", 1, 2),
    T.softmax: _softmax_form("softmax", 1, 2), torch.special.softmax: _softmax_form("softmax", 1, 2),
    F.log_softmax: _softmax_form("log_softmax", 1, 3), torch.log_softmax: _softmax_form("log_softmax", 1, 2),
    T.log_softmax: _softmax_form("log_softmax", 1, 2), torch.special.log_softmax: _softmax_form("log_softmax", 1, 2),
    torch.exp: _unary_form("exp"), T.exp: _unary_form("exp"), T.exp_: _unary_form("exp", True),
    torch.expm1: _unary_form("expm1"), T.expm1: _unary_form("expm1"), torch.special.expm1: _unary_form("expm1"),
    torch.log: _unary_form("log"), T.log: _unary_form("log"),
    torch.pow: _power, T.pow: _power, T.__pow__: _power,
    torch.sigmoid: _unary_form("sigmoid"), T.sigmoid: _unary_form("sigmoid"), T.sigmoid_: _unary_form("sigmoid", True),
    torch.special.expit: _unary_form("sigmoid"),
    torch.tanh: _unary_form("tanh"), T.tanh: _unary_form("tanh"), T.tanh_: _unary_form("tanh", True),
    torch.erf: _unary_form("erf"), T.erf: _unary_form("erf"), torch.special.erf: _unary_form("erf"),
    torch.rsqrt: _unary_form("rsqrt"), T.rsqrt: _unary_form("rsqrt"), T.rsqrt_: _unary_form("rsqrt", True),
    torch.sqrt: _unary_form("sqrt"), T.sqrt: _unary_form("sqrt"), T.sqrt_: _unary_form("sqrt", True),
    torch.reciprocal: _unary_form("reciprocal"), T.reciprocal: _unary_form("reciprocal"),
    T.reciprocal_: _unary_form("reciprocal", True),
    F.silu: _silu, F.gelu: _gelu, F.softplus: _softplus, F.layer_norm: _layer_norm, F.rms_norm: _rms_norm,
    torch.rms_norm: _rms_norm,
    F.scaled_dot_product_attention: _sdpa, F.logsigmoid: _unary_form("logsigmoid"), F.glu: _glu,
    F.normalize: _normalize,
    torch.logsumexp: _logsumexp, T.logsumexp: _logsumexp, torch.special.logsumexp: _logsumexp,
    torch.div: _division(), T.div: _division(), torch.true_divide: _division(), T.true_divide: _division(),
    T.__truediv__: _division(), T.__div__: _division(), T.__rtruediv__: _division(reverse=True),
    T.__rdiv__: _division(reverse=True), T.div_: _division(inplace=True), T.__itruediv__: _division(inplace=True),
}


# Python functions of torch.nn.functional by name too: the object a call hands the mode can be
# another than the module attribute (``F.glu``)
_FORMS_BY_NAME = {f.__qualname__: form for f, form in _FORMS.items()
                  if getattr(f, "__module__", None) == "torch.nn.functional"}


_FORMS_BY_ID = {id(f): form for f, form in _FORMS.items()}  # what dynamo looks up faithfully


def _form_of(func: Any) -> Callable[[tuple, dict], Any] | None:
    form = _FORMS.get(func)
    if form is None and getattr(func, "__module__", None) == "torch.nn.functional":
        form = _FORMS_BY_NAME.get(func.__qualname__)
    return form


_STATIC = "_nnlut_static"  # under torch.compile: a tensor that depends only on weights and constants
# functions that write into their first argument (the name rule of _writes, as a set dynamo can test)
_INPLACE = frozenset(id(getattr(T, n)) for n in dir(T) if (n.endswith("_") and not n.startswith("__"))
                     or n.startswith("__i") or n == "__setitem__")


@torch._dynamo.assume_constant_result
def _resolves_exact(config: Any, name: str) -> bool:
    """Whether an override of None leaves call site ``name`` exact (a constant of the trace)."""
    return config.resolve(name) is None


def _tensors(args: tuple, kwargs: dict) -> Iterator[T]:
    for a in (*args, *kwargs.values()):
        if isinstance(a, T):
            yield a
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, T):
                    yield b


def _writes(func: Any, args: tuple, kwargs: dict) -> list[T]:
    """The tensors ``func`` writes into: its first argument for an in-place call, ``out=``."""
    name = getattr(func, "__name__", "")
    out = []
    if args and isinstance(args[0], T) and ((name.endswith("_") and not name.startswith("__"))
                                             or name.startswith("__i") or name == "__setitem__"):
        out.append(args[0])
    o = kwargs.get("out")
    if isinstance(o, T):
        out.append(o)
    elif isinstance(o, (list, tuple)):
        out.extend(t for t in o if isinstance(t, T))
    return out


class CallTables(TorchFunctionMode):
    """The mode that serves a model's non-linear calls from tables (see module docstring).

    Args:
        tables: function name -> table, for every function the wanted kinds read (empty for
            ``exact``: calls then run as they are, through the same plumbing).
        kinds: the call kinds served (see :data:`nnlut.ops._calls.CALLS`).
        method: the method name, for reports.
    """

    def __init__(self, tables: dict[str, Any], kinds: tuple[str, ...], method: str,
                 config: Any = None) -> None:
        super().__init__()
        self.tables = tables
        self.kinds = frozenset(kinds)
        self.method = method
        self.config = config  # its overrides of None leave call sites exact
        self.site_tables: dict[str, dict[str, Any]] = {}  # call site -> function -> its own table
        self._runtime()

    def _runtime(self) -> None:
        self.frames: list[tuple[str, bool]] = []
        self.exact_depth = 0
        self.depth = 0
        self.static: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.stats: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.left_exact: dict[str, bool] = {}  # call site -> an override of None matches it
        self.observer: Callable[..., None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"tables": self.tables, "kinds": self.kinds, "method": self.method, "config": self.config,
                "site_tables": self.site_tables}

    def __setstate__(self, state: dict[str, Any]) -> None:
        TorchFunctionMode.__init__(self)
        self.site_tables = {}
        self.__dict__.update(state)
        self._runtime()

    def tables_at(self, name: str) -> dict[str, Any]:
        """The tables call site ``name`` (``<module path>#<call>``) reads, by function."""
        own = self.site_tables.get(name)
        return {**self.tables, **own} if own else self.tables

    # ------------------------------------------------------------------ scope
    def enter(self, model: nn.Module) -> None:
        if self.depth == 0:
            compiling = torch.compiler.is_dynamo_compiling()
            for t in (*model.parameters(), *model.buffers()):
                if compiling:
                    setattr(t, _STATIC, True)
                else:
                    self.static[t] = True
            self.frames = []
            self.exact_depth = 0
            self.__enter__()
        self.depth += 1

    def leave(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.__exit__(None, None, None)
            self.frames = []

    def site(self) -> str:
        return self.frames[-1][0] if self.frames else ROOT

    def _record(self, kind: str, on: str, n: int, why: str = "") -> None:
        key = (self.site(), kind, on)
        rec = self.stats.get(key)
        if rec is None:
            rec = self.stats[key] = {"site": f"{key[0]}#{kind}", "call": kind, "on": on, "why": why,
                                     "calls": 0, "elements": 0}
        rec["calls"] += 1
        rec["elements"] += n

    # ------------------------------------------------------------------ the mode
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if torch.compiler.is_dynamo_compiling():
            return self._traced(func, args, kwargs)
        form = _form_of(func)
        if form is not None and self.frames:
            got = self._call(func, form, args, kwargs)
            if got is not NotImplemented:
                return got
        out = func(*args, **kwargs)
        self._propagate(func, args, kwargs, out)
        return out

    def _propagate(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        static = self.static
        if all(t in static for t in _tensors(args, kwargs)):
            if isinstance(out, T):
                static[out] = True
            elif isinstance(out, (tuple, list)):
                for o in out:
                    if isinstance(o, T):
                        static[o] = True
            return
        for t in _writes(func, args, kwargs):
            static.pop(t, None)
            if t._base is not None:
                static.pop(t._base, None)

    # ------------------------------------------------------------------ under torch.compile
    # What dynamo traces: the same decisions as eager, written with what it follows (static
    # marks as a tensor attribute instead of a weak dictionary, in-place functions from a set,
    # no counting); the compiled graph then holds the table ops where eager calls them.
    def _traced(self, func: Any, args: tuple, kwargs: dict) -> Any:
        form = _FORMS_BY_ID.get(id(func))
        if form is not None and self.frames and not self.exact_depth and args and isinstance(args[0], T):
            norm = form(args, kwargs)
            if norm is not None:
                y = self._traced_call(norm, args)
                if y is not None:
                    return y
        out = func(*args, **kwargs)
        tensors = [t for t in _tensors(args, kwargs)]
        if all(getattr(t, _STATIC, False) for t in tensors):
            for o in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(o, T):
                    setattr(o, _STATIC, True)
        elif id(func) in _INPLACE or kwargs.get("out") is not None:
            for t in ([args[0]] if id(func) in _INPLACE else []) + [o for o in _tensors((), {"out": kwargs.get("out")})]:
                if getattr(t, _STATIC, False):
                    setattr(t, _STATIC, False)
                    if t._base is not None:
                        setattr(t._base, _STATIC, False)
        return out

    def _traced_call(self, norm: tuple, args: tuple) -> Any:
        kind, x, extra, options, target = norm
        if not x.is_floating_point() or x.is_complex() or kind not in self.kinds or not self.tables:
            return None
        if getattr(x if kind == "div" else args[0], _STATIC, False):
            return None
        name = self.frames[-1][0] + "#" + kind
        if self.config is not None and self.config.overrides and _resolves_exact(self.config, name):
            return None
        y = CALLS[kind].evaluate(self.tables_at(name), x, *extra, **options)
        if target is not None:
            target.copy_(y)
            return target
        return y

    def _call(self, func: Any, form: Callable[[tuple, dict], Any], args: tuple, kwargs: dict) -> Any:
        if not args or not isinstance(args[0], T):
            return NotImplemented
        norm = form(args, kwargs)
        if norm is None:
            return NotImplemented
        kind, x, extra, options, target = norm
        if not x.is_floating_point() or x.is_complex():
            return NotImplemented
        if kind == "sdpa":  # one softmax evaluation per score
            n = x.numel() // max(1, x.shape[-1]) * extra[0].shape[-2]
        else:
            n = math.prod(torch.broadcast_shapes(x.shape, *(e.shape for e in extra if isinstance(e, T))))
        if self.exact_depth:
            self._record(kind, "exact", n, "inside a module nnlut replaced or left exact")
            return NotImplemented
        if (x if kind == "div" else args[0]) in self.static:
            self._record(kind, "static", n, "depends only on weights and constants")
            return NotImplemented
        if kind not in self.kinds:
            self._record(kind, "exact", n, f"{kind} calls are not approximated with this config")
            return NotImplemented
        name = f"{self.site()}#{kind}"
        if self.config is not None and self.config.overrides and self._overridden(name):
            self._record(kind, "exact", n, "an override of None leaves it exact")
            return NotImplemented
        if not self.tables:  # the exact method: the call itself, through the same plumbing
            self._record(kind, "exact", n, f"method {self.method}")
            return NotImplemented
        tables = self.tables_at(name)
        if self.observer is not None:
            tables = _observed(tables, CALLS[kind].functions, name, self.observer, kind in _ROW_SUMS)
        y = CALLS[kind].evaluate(tables, x, *extra, **options)
        self._record(kind, "table", n)
        if target is not None:
            target.copy_(y)
            return target
        return y

    def _overridden(self, name: str) -> bool:
        hit = self.left_exact.get(name)
        if hit is None:
            hit = self.left_exact[name] = self.config.resolve(name) is None
        return hit

    # ------------------------------------------------------------------ reports
    def report(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.stats.values()]


# softmax kinds: the exp table's inputs weighted as a softmax module weights them (an error in
# exp(z) moves the probability by error / row sum: weight 1 / sum**2)
_ROW_SUMS = frozenset({"softmax", "sdpa"})


class _Observed:
    """A table that reports each input to ``observer(site, function, x[, importance])`` before
    evaluating; ``held``: an exp table whose inputs wait for the row sums (``release``)."""

    def __init__(self, table: Any, site: str, function: str, observer: Callable[..., None], held: bool = False) -> None:
        self.fn, self.site, self.function, self.observer = _as_fn(table), site, function, observer
        self.held: list[T] | None = [] if held else None

    def __call__(self, x: T) -> T:
        if self.held is not None:
            self.held.append(x)
        else:
            self.observer(self.site, self.function, x)
        return self.fn(x)

    def release(self, sums: T) -> None:
        for z in self.held or ():
            self.observer(self.site, self.function, z, (1.0 / (sums * sums)).expand_as(z))
        self.held = []


class _ReciprocalOfSums(_Observed):
    def __init__(self, table: Any, site: str, observer: Callable[..., None], exp: _Observed) -> None:
        super().__init__(table, site, "reciprocal", observer)
        self.exp = exp

    def __call__(self, s: T) -> T:
        self.exp.release(s)
        return super().__call__(s)


def _observed(tables: dict[str, Any], functions: tuple[str, ...], site: str, observer: Callable[..., None],
              row_sums: bool) -> dict[str, Any]:
    if row_sums:
        exp = _Observed(tables["exp"], site, "exp", observer, held=True)
        return {"exp": exp, "reciprocal": _ReciprocalOfSums(tables["reciprocal"], site, observer, exp)}
    return {f: _Observed(tables[f], site, f, observer) for f in functions}


def of_model(model: nn.Module) -> CallTables | None:
    """The :class:`CallTables` serving ``model``'s calls (None: its calls are not served)."""
    for hook in model._forward_pre_hooks.values():
        if isinstance(hook, _Enter) and hook.root:
            return hook.mode
    return None


def active() -> CallTables | None:
    """The :class:`CallTables` serving calls at this point of a forward (None outside one, or
    inside a module whose calls run exact)."""
    for mode in reversed(torch.overrides._get_current_function_mode_stack()):
        if isinstance(mode, CallTables):
            return mode if mode.frames and not mode.exact_depth else None
    return None


# ------------------------------------------------------------------------ hooks
def _strict_export() -> bool:
    """Strict ``torch.export`` (dynamo in export mode): there dynamo looks a tensor method called
    under a torch function mode up on the mode (``'CallTables' object has no attribute 'tanh'``),
    so the hooks stand aside and the program runs the model's own calls exact."""
    return torch.compiler.is_dynamo_compiling() and torch.compiler.is_exporting()


class _Enter:
    def __init__(self, mode: CallTables, name: str, exact: bool, root: bool) -> None:
        self.mode, self.name, self.exact, self.root = mode, name, exact, root

    def __call__(self, module: nn.Module, args: Any) -> None:
        if _strict_export():
            return
        mode = self.mode
        if self.root:
            mode.enter(module)
        elif not mode.frames:
            return
        mode.frames.append((self.name, self.exact))
        mode.exact_depth += self.exact


class _Leave:
    def __init__(self, mode: CallTables, root: bool) -> None:
        self.mode, self.root = mode, root

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        if _strict_export():
            return
        mode = self.mode
        if not mode.frames:
            return
        _, exact = mode.frames.pop()
        mode.exact_depth -= exact
        if self.root:
            mode.leave()


def install(model: nn.Module, mode: CallTables, exact_modules: set[int]) -> None:
    """Hooks that scope ``mode`` to ``model``'s forward and name its call sites; calls inside
    the modules whose ids are in ``exact_modules`` run exact."""
    for name, module in model.named_modules():
        root = module is model
        exact = id(module) in exact_modules
        module.register_forward_pre_hook(_Enter(mode, name or ROOT, exact, root))
        module.register_forward_hook(_Leave(mode, root), always_call=True)


def uninstall(model: nn.Module) -> None:
    """Remove every hook :func:`install` put on ``model`` (also after a copy or unpickling), and
    the static marks a compiled forward left on its weights."""
    for t in (*model.parameters(), *model.buffers()):
        t.__dict__.pop(_STATIC, None)
    for module in model.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, h in hooks.items() if isinstance(h, (_Enter, _Leave))]:
                del hooks[key]
                module._forward_hooks_always_called.pop(key, None)


def build(config: Any, fitted: Callable[[str, Any], Any]) -> CallTables | None:
    """The mode for ``config`` (its ``method``, ``ops``), with tables from ``fitted(function,
    config)``; None for methods without call kernels (I-BERT)."""
    from ._registry import method_spec

    if not config.calls:
        return None
    method = method_spec(config.method)
    kinds = tuple(k for k in CALLS if config.ops is None or OP_OF_CALL.get(k) in config.ops)
    if method.fitted:
        register_extra_functions()
        functions = sorted({f for k in kinds for f in CALLS[k].functions})
        return CallTables({f: fitted(f, config) for f in functions}, kinds, config.method, config)
    if config.method == "exact":
        return CallTables({}, kinds, config.method, config)
    return None
