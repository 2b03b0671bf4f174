"""Finding the non-linear ops of a model: activations, norms and attention softmaxes."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._errors import NNLUTError
from ..ops._modules import ApproxOp

_GELU_ERF = {"GELUActivation"}
_GELU_TANH = {"NewGELUActivation", "GELUTanh", "PytorchGELUTanh", "GELUPytorchTanh"}
_SILU = {"SiLUActivation"}
_ACTIVATION_NAME = re.compile(r"gelu|silu|swish", re.IGNORECASE)


@dataclass
class Site:
    """One replaceable op.

    ``name`` is how reports and overrides refer to it: the module's path, or for an attention
    softmax the attention module's path plus ``.softmax``. ``kind`` is ``module`` (the module
    at ``parent.attr`` is swapped), ``attention`` (the attention module gets a ``softmax``
    child and dispatches through nnlut's attention function) or ``adapter`` (the attention
    module is swapped for an adapter).
    """

    name: str
    op: str
    kind: str
    parent: nn.Module
    attr: str
    module: nn.Module
    function: str | None = None
    eps: float = 0.0
    weight_offset: float = 0.0
    weighted: bool = True
    normalized_shape: tuple[int, ...] = ()
    unsupported: tuple[str, ...] = ()


def _activation_function(module: nn.Module) -> str | None:
    cls = type(module).__name__
    if isinstance(module, nn.GELU):
        return "gelu_tanh" if module.approximate == "tanh" else "gelu"
    if cls in _GELU_ERF:
        return "gelu"
    if cls in _GELU_TANH:
        return "gelu_tanh"
    if isinstance(module, nn.SiLU) or cls in _SILU:
        return "silu"
    if _ACTIVATION_NAME.search(cls) and not module._modules and next(module.parameters(), None) is None:
        return _probe_activation(module)
    return None


def _try_on(module: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``module(x)`` without autograd, or None when it raises or does not give a tensor of
    ``x``'s shape: a module that needs more than one tensor (a gated norm's ``gate``) or
    reshapes is not an elementwise activation or a norm over the last dimension."""
    try:
        with torch.no_grad():
            y = module(x)
    except Exception:  # noqa: BLE001  (any failure on a plain tensor means: not this op)
        return None
    return y if isinstance(y, torch.Tensor) and y.shape == x.shape else None


def _probe_activation(module: nn.Module) -> str | None:
    """The function an activation module of an unknown class computes (its name says GELU or
    SiLU, as BLOOM's ``BloomGelu``), found on a grid over [-8, 8]; None when it is none of them."""
    from ..ops._kernels import make_kernel

    x = torch.linspace(-8, 8, 2001, dtype=torch.float32)
    y = _try_on(module, x)
    if y is None:
        return None
    for fn in ("gelu", "gelu_tanh", "silu"):
        ref = make_kernel("gelu" if fn != "silu" else "silu", "exact", function=fn)(x)
        if torch.allclose(y.float(), ref.float(), atol=1e-5):
            return fn
    return None


def _rmsnorm_eps(module: nn.Module) -> float | None:
    for attr in ("variance_epsilon", "eps", "epsilon"):
        v = getattr(module, attr, None)
        if isinstance(v, (int, float)):
            return float(v)
    if isinstance(module, nn.RMSNorm):
        return float(torch.finfo(torch.float32).eps) if module.eps is None else float(module.eps)
    return None


def _verify_activation(name: str, module: nn.Module, function: str) -> None:
    from ..ops._kernels import make_kernel

    p = next(iter(module.parameters()), None)
    x = torch.linspace(-8, 8, 2001, dtype=torch.float32, device=p.device if p is not None else "cpu")
    with torch.no_grad():
        ref = module(x)
        got = make_kernel("gelu" if function != "silu" else "silu", "exact", function=function)(x)
    if not torch.allclose(ref.float(), got.float(), atol=1e-5):
        raise NNLUTError(f"module {name!r} ({type(module).__name__}) does not compute {function}; "
                         f"nnlut cannot replace it")


def _rmsnorm_like(module: nn.Module) -> bool:
    """Shaped like an RMSNorm: no children, at most a 1-D ``weight``, an epsilon attribute."""
    params = dict(module.named_parameters(recurse=False))
    return (not module._modules and set(params) <= {"weight"} and all(p.dim() == 1 for p in params.values())
            and bool(params) and _rmsnorm_eps(module) is not None)


def _probe_rmsnorm(module: nn.Module, eps: float) -> dict[str, Any] | None:
    """How ``module`` computes an RMSNorm, found on random inputs: ``{"eps", "weight_offset"
    (0 or 1), "weighted"}`` (``weighted`` False: it ignores its ``weight``, as a norm holding a
    placeholder weight does: it also runs, unweighted, on a longer last dimension); None when it
    computes something else or cannot run on one tensor."""
    from ..ops._lut import exact_rmsnorm

    w = getattr(module, "weight", None)
    dim = int(w.shape[-1] if w is not None else getattr(module, "normalized_shape", (8,))[-1])
    dev = w.device if w is not None else "cpu"
    dt = w.dtype if w is not None else torch.float32

    def run(n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        x = torch.randn(2, 3, n, generator=torch.Generator().manual_seed(0)).to(device=dev, dtype=dt)
        y = _try_on(module, x)
        return None if y is None else (x, y)

    def same(got: torch.Tensor, ref: torch.Tensor) -> bool:
        return bool(torch.allclose(got.float(), ref.float(), rtol=1e-3, atol=1e-5))

    probe = run(dim)
    if probe is None:
        return None
    x, ref = probe
    if w is not None:
        longer = run(dim + 3)
        if longer is not None and same(exact_rmsnorm(longer[0], None, eps, 0.0), longer[1]):
            return {"eps": eps, "weight_offset": 0.0, "weighted": False}
    for offset in (0.0, 1.0):
        if same(exact_rmsnorm(x, w, eps, offset), ref):
            return {"eps": eps, "weight_offset": offset, "weighted": True}
    return None


def _layernorm_like(module: nn.Module) -> bool:
    """Shaped like a layer norm over the last dimension: no children, at most a 1-D ``weight``
    and ``bias``, and a width (the weight's, or ``normalized_shape``)."""
    params = dict(module.named_parameters(recurse=False))
    if module._modules or not set(params) <= {"weight", "bias"} or any(p.dim() != 1 for p in params.values()):
        return False
    shape = getattr(module, "normalized_shape", None)
    return bool(params) or (isinstance(shape, (tuple, list)) and len(shape) == 1)


def _probe_layernorm(module: nn.Module) -> dict[str, Any] | None:
    """``{"eps", "normalized_shape"}`` of the layer norm over the last dimension that ``module``
    computes on 3-D inputs (a channels-first norm does not pass), with its epsilon attribute,
    else the usual epsilons tried on low-variance inputs, where they differ; None when it
    computes something else or cannot run on one tensor."""
    w = getattr(module, "weight", None)
    w = w if isinstance(w, torch.Tensor) else None
    b = getattr(module, "bias", None)
    b = b if isinstance(b, torch.Tensor) else None
    dim = int(w.shape[-1] if w is not None else module.normalized_shape[-1])
    dev = w.device if w is not None else "cpu"
    dt = w.dtype if w is not None else torch.float32
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, 3, dim, generator=gen).to(device=dev, dtype=dt) * s for s in (1.0, 3e-3)]
    ys = [_try_on(module, x) for x in xs]
    if any(y is None for y in ys):
        return None
    own = _rmsnorm_eps(module)
    for eps in ([own] if own is not None else [1e-5, 1e-6, 1e-12, 1e-8]):
        refs = [torch.nn.functional.layer_norm(x.float(), (dim,), None if w is None else w.float(),
                                               None if b is None else b.float(), eps) for x in xs]
        if all(torch.allclose(y.float(), r, rtol=1e-3, atol=1e-4) for y, r in zip(ys, refs, strict=True)):
            return {"eps": float(eps), "normalized_shape": (dim,)}
    return None


def extra_inputs(module: nn.Module) -> list[str]:
    """Names of the inputs ``module.forward`` takes besides its first (a gated norm's ``gate``):
    a module that takes any cannot be replaced by a one-tensor op. Empty when the signature is
    unknown or only ``*args``/``**kwargs``."""
    try:
        params = list(inspect.signature(type(module).forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    named = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [p.name for p in named[1:]]


def find_sites(model: nn.Module, *, verify: bool = True) -> list[Site]:
    """Every op of ``model`` that nnlut can replace, in module order."""
    from ._hf import ADAPTERS, unsupported_attention_features, uses_attention_registry
    from ._registry import _OPS, _builtins

    _builtins()
    sites: list[Site] = []
    for pname, parent in model.named_modules(remove_duplicate=False):
        for attr, module in parent.named_children():
            name = f"{pname}.{attr}" if pname else attr
            if isinstance(module, ApproxOp):
                raise NNLUTError(f"module {name!r} is already approximated; call nnlut.restore_(model) first")
            cls = type(module).__name__
            found = None
            for spec in _OPS.values() if not extra_inputs(module) else ():
                details = spec.find(name, module, verify)
                if details is not None:
                    found = Site(name, spec.name, "module", parent, attr, module, **details)
                    break
            if found is not None:
                sites.append(found)
            elif cls in ADAPTERS:
                sites.append(Site(f"{name}.softmax", "softmax", "adapter", parent, attr, module))
            elif uses_attention_registry(module):
                if "softmax" in module._modules or hasattr(module, "softmax"):
                    raise NNLUTError(f"attention module {name!r} already has an attribute 'softmax'")
                sites.append(Site(f"{name}.softmax", "softmax", "attention", parent, attr, module,
                                  unsupported=tuple(unsupported_attention_features(module))))
    return sites
