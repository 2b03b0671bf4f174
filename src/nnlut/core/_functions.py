"""Scalar functions nnlut can approximate: exact float64 references and their properties.

Each :class:`FunctionSpec` carries the exact function (numpy, float64), its default
evaluation domain, the domain the table is fitted on, how the table behaves outside that
domain (:class:`Tail`), its limits at ±inf and, for the homogeneous functions ``reciprocal``
and ``rsqrt``, the power-of-two input scaling that serves wide ranges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .._errors import NNLUTError

TailKind = Literal["asymptote", "flat", "clamp", "extend"]
_TAIL_KINDS = ("asymptote", "flat", "clamp", "extend")


@dataclass(frozen=True)
class Tail:
    """What a table does at one end of its domain.

    - ``asymptote``: the end segment *is* the line ``slope*x + intercept`` (the function's
      asymptote); the fit is constrained to it and it continues outside the domain, so the
      error far away stays bounded by the in-domain error. Costs no hardware.
    - ``flat``: the end segment is horizontal (its level is fitted) and continues.
    - ``clamp``: inputs beyond the domain edge are saturated to the edge (one compare).
    - ``extend``: the end segment is fitted freely and simply continues (no guarantee).
    """

    kind: TailKind = "clamp"
    slope: float = 0.0
    intercept: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _TAIL_KINDS:
            raise NNLUTError(f"tail kind {self.kind!r} is unknown; allowed: {', '.join(_TAIL_KINDS)}")
        if not (math.isfinite(self.slope) and math.isfinite(self.intercept)):
            raise NNLUTError(f"tail line must be finite, got slope={self.slope}, intercept={self.intercept}")

    @property
    def evaluation(self) -> Literal["clamp", "extend"]:
        """How a table evaluates beyond this edge: saturate the input or continue the segment."""
        return "clamp" if self.kind == "clamp" else "extend"


@dataclass(frozen=True)
class ScalingSpec:
    """Homogeneity ``f(2**q * x) = 2**(q*exponent) * f(x)`` that power-of-two scaling uses.

    ``period`` is ``2**q``: inputs are moved by whole powers of ``period`` so that the
    output correction ``period**(k*exponent)`` is an exact power of two.
    """

    exponent: float
    period: int
    negative: Literal["odd", "nan"] = "nan"

    def scaling(self, mode: Literal["paper", "full"]) -> Any:
        """The :class:`~nnlut.core._scaling.Scaling` of a table in ``mode``."""
        from ._scaling import Scaling

        return Scaling(mode, self.exponent, self.period, self.negative)


@dataclass(frozen=True)
class FunctionSpec:
    """An exact scalar function and everything a table for it needs to know.

    Args:
        name: registry name.
        fn: exact reference, float64 numpy array -> float64 numpy array of the same shape.
        domain: default evaluation interval ``(lo, hi)``.
        fit_domain: interval the table is fitted on (defaults to ``domain``).
        tails: behaviour at the (left, right) edges of the fitted domain.
        limits: values at (-inf, +inf); ``nan`` where undefined.
        defined: open interval where ``fn`` is defined (domains must stay inside).
        scaling: homogeneity used by input scaling, or ``None``.
        full_range_domain: table domain used with full range reduction.
        error: default error measure for fitting, ``"abs"`` or ``"rel"``.
        inputs: the inputs the function is applied to (``exp``: the softmax exponent, never
            positive); full-domain errors cover these. Default: every real.
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    domain: tuple[float, float]
    fit_domain: tuple[float, float] | None = None
    tails: tuple[Tail, Tail] = (Tail("clamp"), Tail("clamp"))
    limits: tuple[float, float] | None = None
    defined: tuple[float, float] = (-math.inf, math.inf)
    scaling: ScalingSpec | None = None
    full_range_domain: tuple[float, float] | None = None
    error: Literal["abs", "rel"] = "abs"
    inputs: tuple[float, float] = (-math.inf, math.inf)
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise NNLUTError(f"function name must be a non-empty string, got {self.name!r}")
        if not callable(self.fn):
            raise NNLUTError(f"function {self.name!r}: fn must be callable, got {type(self.fn).__name__}")
        check_domain(self.domain, what=f"function {self.name!r} domain")
        if self.fit_domain is not None:
            check_domain(self.fit_domain, what=f"function {self.name!r} fit_domain")
        if self.error not in ("abs", "rel"):
            raise NNLUTError(f"function {self.name!r}: error must be 'abs' or 'rel', got {self.error!r}")

    @property
    def table_domain(self) -> tuple[float, float]:
        return self.fit_domain if self.fit_domain is not None else self.domain

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(self.fn(x))
        if y.dtype.kind not in "fiub":  # strings, complex numbers, objects
            raise NNLUTError(f"function {self.name!r} returned {y.dtype} values; it must return real numbers")
        if y.shape != x.shape:
            try:
                y = np.broadcast_to(y, x.shape)
            except ValueError:
                raise NNLUTError(f"function {self.name!r} returned shape {y.shape} for input shape {x.shape}; "
                                 "it must return one value per input") from None
        return y.astype(np.float64, copy=False)

    def check_defined_on(self, lo: float, hi: float) -> None:
        """Raise unless ``fn`` is defined and finite on ``[lo, hi]``."""
        dlo, dhi = self.defined
        if not (lo > dlo and hi < dhi):
            raise NNLUTError(
                f"{self.name} is undefined on [{lo:g}, {hi:g}]: the domain must lie inside "
                f"({dlo:g}, {dhi:g})"
            )
        probe = np.linspace(lo, hi, 4097)
        with np.errstate(all="ignore"):
            y = self(probe)
        bad = ~np.isfinite(y)
        if bad.any():
            x0 = probe[np.argmax(bad)]
            raise NNLUTError(f"{self.name} is not finite at x={x0:g} inside the domain [{lo:g}, {hi:g}]")


def check_domain(domain: object, *, what: str = "domain") -> tuple[float, float]:
    """Validate an interval ``(lo, hi)``: two finite floats with ``lo < hi``."""
    try:
        lo, hi = (float(v) for v in domain)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise NNLUTError(f"{what} must be two numbers (lo, hi), got {domain!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise NNLUTError(f"{what} must be finite, got [{lo}, {hi}]")
    if not lo < hi:
        raise NNLUTError(f"{what} must have lo < hi, got [{lo:g}, {hi:g}]" + (" (empty)" if lo == hi else " (reversed)"))
    return lo, hi


# --------------------------------------------------------------------------------------
# Built-in functions

def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(x)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


def _silu(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


def _reciprocal(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / x


def _rsqrt(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(x)


_ZERO = Tail("asymptote", 0.0, 0.0)
_IDENTITY = Tail("asymptote", 1.0, 0.0)

_BUILTINS = (
    FunctionSpec(
        "gelu", _gelu, (-5.0, 5.0), tails=(_ZERO, _IDENTITY), limits=(0.0, math.inf),
        description="GELU, erf form: x/2 (1 + erf(x/sqrt 2)); tails are the asymptotes 0 and x",
    ),
    FunctionSpec(
        "gelu_tanh", _gelu_tanh, (-5.0, 5.0), tails=(_ZERO, _IDENTITY), limits=(0.0, math.inf),
        description="GELU, tanh form (GPT-2's 'gelu_new'); tails are the asymptotes 0 and x",
    ),
    FunctionSpec(
        "silu", _silu, (-8.0, 8.0), fit_domain=(-16.0, 16.0), tails=(_ZERO, _IDENTITY), limits=(0.0, math.inf),
        description="SiLU / swish: x sigmoid(x); tails are the asymptotes 0 and x, and where they start is "
                    "fitted on [-16, 16] (at +-8 SiLU is still 0.0027 from them)",
    ),
    FunctionSpec(
        "exp", np.exp, (-256.0, 0.0), tails=(_ZERO, Tail("extend")), limits=(0.0, math.inf),
        inputs=(-math.inf, 0.0),
        description="exp on non-positive inputs (Softmax after max subtraction); 0 below the domain",
    ),
    FunctionSpec(
        "reciprocal", _reciprocal, (1.0, 1024.0), tails=(Tail("clamp"), Tail("clamp")),
        limits=(-0.0, 0.0), defined=(0.0, math.inf),
        scaling=ScalingSpec(exponent=-1.0, period=2, negative="odd"), full_range_domain=(1.0, 2.0), error="rel",
        description="1/x (Softmax's division); inputs below 1 are scaled by powers of two; fits relative error",
    ),
    FunctionSpec(
        "rsqrt", _rsqrt, (0.1, 1024.0), fit_domain=(1.0, 1024.0), tails=(Tail("clamp"), Tail("clamp")),
        limits=(math.nan, 0.0), defined=(0.0, math.inf),
        scaling=ScalingSpec(exponent=-0.5, period=4, negative="nan"), full_range_domain=(1.0, 4.0), error="rel",
        description="1/sqrt(x) (LayerNorm); table on [1, 1024], inputs below 1 scaled by powers of four; fits "
                    "relative error",
    ),
    FunctionSpec(
        "sigmoid", _sigmoid, (-8.0, 8.0), tails=(Tail("clamp"), Tail("clamp")), limits=(0.0, 1.0),
        description="logistic sigmoid; inputs saturate at the domain edges",
    ),
    FunctionSpec(
        "tanh", np.tanh, (-4.0, 4.0), tails=(Tail("clamp"), Tail("clamp")), limits=(-1.0, 1.0),
        description="hyperbolic tangent; inputs saturate at the domain edges",
    ),
)

_REGISTRY: dict[str, FunctionSpec] = {spec.name: spec for spec in _BUILTINS}
BUILTIN_NAMES = tuple(spec.name for spec in _BUILTINS)


def get_function(name: str | FunctionSpec) -> FunctionSpec:
    """Look up a registered function by name (a :class:`FunctionSpec` passes through)."""
    if isinstance(name, FunctionSpec):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise NNLUTError(f"unknown function {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def list_functions() -> list[str]:
    """Names of all registered functions."""
    return sorted(_REGISTRY)


def register_function(
    name: str,
    fn: Callable[[np.ndarray], np.ndarray],
    domain: tuple[float, float],
    *,
    tails: tuple[Tail | str, Tail | str] = ("clamp", "clamp"),
    limits: tuple[float, float] | None = None,
    error: Literal["abs", "rel"] = "abs",
    overwrite: bool = False,
) -> FunctionSpec:
    """Register a scalar function so that ``fit`` and the CLI can use it by name.

    Args:
        name: registry key.
        fn: exact reference; takes and returns float64 numpy arrays of any shape.
        domain: interval ``(lo, hi)`` to fit and evaluate on; ``fn`` must be finite there.
        tails: behaviour at (left, right) edges, each a :class:`Tail` or one of
            ``"clamp"``, ``"flat"``, ``"extend"`` (default: saturate inputs at the edges).
        limits: values returned for -inf and +inf inputs (default: the table's own limits).
        error: fit absolute (``"abs"``) or relative (``"rel"``) error.
        overwrite: replace an existing registration of ``name``.
    """
    if name in _REGISTRY and not overwrite:
        raise NNLUTError(f"function {name!r} is already registered; pass overwrite=True to replace it")
    parsed = tuple(t if isinstance(t, Tail) else Tail(t) for t in tails)
    spec = FunctionSpec(name, fn, check_domain(domain), tails=parsed, limits=limits, error=error)  # type: ignore[arg-type]
    spec.check_defined_on(*spec.domain)
    _REGISTRY[name] = spec
    return spec
