"""What ``approximate_`` leaves exact, with where and why.

Three sources, so that the report accounts for every non-linear call a forward makes:

- replaceable ops it did not replace (an op outside ``config.ops``, an override of ``None``);
- non-linear modules nnlut has no table for (ReLU, QuickGELU, Tanh, ...) and norm-like modules
  whose computation it does not recognise;
- non-linear functional calls written in a module's ``forward`` (``F.gelu``, ``torch.softmax``,
  ``x.tanh()``, ...): nnlut swaps modules, so these stay exact.

Each entry is ``{"name": module path, "op": what it computes, "why": one line}``.
"""

from __future__ import annotations

import inspect
import re
from functools import lru_cache
from typing import Any

from torch import nn

from ..ops._modules import ApproxOp
from ._sites import extra_inputs

# non-linear functions a forward may call directly (activations, normalisations, softmax)
_CALL = re.compile(r"(?<!self)\.(gelu|silu|softmax|log_softmax|layer_norm|rms_norm|group_norm|tanh|sigmoid|rsqrt"
                   r"|relu|mish|softplus|quick_gelu)\s*\(")
# class names of activation and norm modules (leaf modules only)
_NONLINEAR_CLASS = re.compile(r"((?i:gelu|silu|swish|relu|tanh|sigmoid|mish|softplus)|ELU|Activation|Norm)")


@lru_cache(maxsize=512)
def _forward_calls(cls: type) -> list[str]:
    """Non-linear functional calls in the source of ``cls`` and of the class that defines its
    ``forward`` (forward and the helpers it calls on ``self``), sorted and unique."""
    forward = getattr(cls, "forward", None)
    if forward is None or getattr(forward, "__module__", "").startswith("torch."):
        return []
    owner = next((c for c in cls.__mro__ if "forward" in vars(c)), cls)
    found: set[str] = set()
    for c in {cls, owner}:
        if c.__module__.startswith("torch."):
            continue
        for fn in vars(c).values():  # the methods' own sources: quick, unlike a class's (a parse of its file)
            if not inspect.isfunction(fn):
                continue
            try:
                src = inspect.getsource(fn)
            except (OSError, TypeError):
                continue
            found.update(m.group(1) for m in _CALL.finditer(src))
    return sorted(found)


def left_exact(model: nn.Module, sites: list[Any], not_chosen: dict[str, str],
               served: Any = ()) -> list[dict[str, str]]:
    """Everything non-linear in ``model`` that is not (or will not be) approximated.

    Args:
        model: the model (its modules already swapped, or not).
        sites: every replaceable op found (see ``find_sites``).
        not_chosen: site name -> why it is left exact (op not asked for, override ``None``).
        served: the call kinds served from tables while the forward runs (``_calls``): such
            calls are not listed; a module listed for its class says that its calls may run
            on tables (``trace_coverage`` counts what does).
    """
    out = [{"name": s.name, "op": s.op, "why": not_chosen[s.name]} for s in sites if s.name in not_chosen]
    site_modules = {id(s.module) for s in sites if s.kind == "module"}
    taken = {id(s.module) for s in sites if s.kind != "module"}
    for s in sites:
        if (s.kind == "attention" and s.name not in not_chosen and "tanh" not in served
                and getattr(s.module, "attn_logit_softcapping", None)):
            out.append({"name": s.name.rsplit(".", 1)[0], "op": "tanh",
                        "why": "logit soft-capping before the attention softmax stays exact"})
    for name, module in model.named_modules():
        if isinstance(module, ApproxOp) or id(module) in site_modules:
            continue
        cls = type(module)
        if not module._modules and _NONLINEAR_CLASS.search(cls.__name__):
            extra = extra_inputs(module)
            why = (f"{cls.__name__} takes more inputs than one tensor ({', '.join(extra)}); nnlut replaces "
                   f"one-tensor ops" if extra else f"nnlut has no table for {cls.__name__}" if "Norm" not in cls.__name__
                   else f"{cls.__name__} computes no normalisation nnlut recognises (layer norm, RMS norm)")
            if served:
                why += "; the non-linear calls in its forward run on tables"
            out.append({"name": name, "op": cls.__name__, "why": why})
            continue
        if cls.__module__.startswith("torch."):
            continue
        calls = [c for c in _forward_calls(cls) if not (id(module) in taken and c == "softmax") and c not in served]
        for c in calls:
            out.append({"name": name or "<model>", "op": c,
                        "why": f"{cls.__name__} calls {c}() directly; nnlut replaces modules, not calls"})
    return out
