"""The built-in op and method specs (see ``_registry``): how each op's modules are found and
replaced, and how each method builds its kernels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..ops._kernels import make_kernel
from ..ops._modules import ApproxActivation, ApproxLayerNorm, ApproxRMSNorm, ApproxSoftmax
from ._registry import MethodSpec, OpSpec, op_spec
from ._sites import (
    _activation_function,
    _layernorm_like,
    _probe_layernorm,
    _probe_rmsnorm,
    _rmsnorm_eps,
    _rmsnorm_like,
    _verify_activation,
)


def _activation(wanted: tuple[str, ...]):
    def find(name: str, module: nn.Module, verify: bool) -> dict[str, Any] | None:
        fn = _activation_function(module)
        if fn not in wanted:
            return None
        if verify:
            _verify_activation(name, module, fn)  # type: ignore[arg-type]
        return {"function": fn}

    return find


def _find_layernorm(name: str, module: nn.Module, verify: bool) -> dict[str, Any] | None:
    if isinstance(module, nn.LayerNorm):
        return {}
    if verify and "Norm" in type(module).__name__ and _layernorm_like(module):
        # a layer norm by what it computes, whatever its class is called (OLMo's, Cohere's)
        return _probe_layernorm(module)
    return None


def _find_rmsnorm(name: str, module: nn.Module, verify: bool) -> dict[str, Any] | None:
    eps = _rmsnorm_eps(module)
    if isinstance(module, nn.RMSNorm) or (type(module).__name__.endswith("RMSNorm") and eps is not None):
        assert eps is not None
        if not verify:
            return {"eps": eps, "weight_offset": 0.0}
        return _probe_rmsnorm(module, eps)  # None: a variant nnlut does not know, left exact and reported
    if verify and eps is not None and _rmsnorm_like(module):
        # an RMSNorm by what it computes, whatever its class is called (T5LayerNorm)
        return _probe_rmsnorm(module, eps)
    return None


def _layernorm_face(kernel: Any, site: Any) -> nn.Module:
    if site.normalized_shape:  # found by what it computes: its epsilon and width come from the probe
        return ApproxLayerNorm(kernel, site.module, site.eps, site.normalized_shape)
    return ApproxLayerNorm(kernel, site.module)


def _find_softmax(name: str, module: nn.Module, verify: bool) -> dict[str, Any] | None:
    return {} if isinstance(module, nn.Softmax) else None


def _softmax_face(kernel: Any, site: Any) -> nn.Module:
    dim = site.module.dim if site.module.dim is not None else -1
    return ApproxSoftmax(kernel, dim=dim, original=site.module)


OPS = (
    OpSpec("gelu", {"act": "gelu"}, _activation(("gelu", "gelu_tanh")),
           lambda k, s: ApproxActivation(k, s.module), observes=("act",)),
    OpSpec("silu", {"act": "silu"}, _activation(("silu",)), lambda k, s: ApproxActivation(k, s.module),
           observes=("act",)),
    OpSpec("softmax", {"exp": "exp", "reciprocal": "reciprocal"}, _find_softmax, _softmax_face,
           observes=("exp", "reciprocal")),
    OpSpec("layernorm", {"rsqrt": "rsqrt"}, _find_layernorm, _layernorm_face,
           observes=("rsqrt",)),
    OpSpec("rmsnorm", {"rsqrt": "rsqrt"}, _find_rmsnorm,
           lambda k, s: ApproxRMSNorm(k, s.module, s.eps, s.weight_offset, weighted=s.weighted), observes=("rsqrt",)),
)


def _table_method(name: str) -> MethodSpec:
    def kernel(op: str, tables: Mapping[str, Any] | None, function: str | None) -> Any:
        own = op_spec(op).kernel
        if own is not None and tables is not None:
            return own(name, tables, function)
        return make_kernel(op, name, tables, function=function)

    return MethodSpec(name, kernel, fitted=True, number_formats=True)


def _plain_method(name: str) -> MethodSpec:
    def kernel(op: str, tables: Mapping[str, Any] | None, function: str | None) -> Any:
        return make_kernel(op, name, function=function)

    return MethodSpec(name, kernel)


METHODS = (_table_method("nnlut"), _table_method("linear"), _table_method("exponential"), _plain_method("ibert"),
           _plain_method("exact"))
