"""The built-in op and method specs (see ``_registry``): how each op's modules are found and
replaced; their kernels and table roles are registered in ``nnlut.ops._kernels``."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..ops._kernels import ROLES
from ..ops._modules import ApproxActivation, ApproxLayerNorm, ApproxRMSNorm, ApproxSoftmax
from ._registry import MethodSpec, OpSpec
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
    OpSpec("gelu", ROLES["gelu"], _activation(("gelu", "gelu_tanh")), lambda k, s: ApproxActivation(k, s.module)),
    OpSpec("silu", ROLES["silu"], _activation(("silu",)), lambda k, s: ApproxActivation(k, s.module)),
    OpSpec("softmax", ROLES["softmax"], _find_softmax, _softmax_face),
    OpSpec("layernorm", ROLES["layernorm"], _find_layernorm, _layernorm_face),
    OpSpec("rmsnorm", ROLES["rmsnorm"], _find_rmsnorm,
           lambda k, s: ApproxRMSNorm(k, s.module, s.eps, s.weight_offset, weighted=s.weighted)),
)

# their kernels are the ops' own (nnlut.ops._kernels): I-BERT's for gelu, softmax and layernorm
METHODS = (MethodSpec("nnlut", fitted=True, number_formats=True), MethodSpec("linear", fitted=True, number_formats=True),
           MethodSpec("exponential", fitted=True, number_formats=True), MethodSpec("ibert"), MethodSpec("exact"))
