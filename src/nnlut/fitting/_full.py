"""Full-domain errors: a table against the exact function on every input a number format holds.

Where :func:`~nnlut.fitting.measure` looks at the fitted domain, this looks at every input a
model can send: every finite FP16 value, every finite BF16 value, and a log-spaced sweep of
FP32 values from the smallest normal to the largest finite one, in both signs (with +-0). The
table (any kind: float, fixed point, half precision; tails, range reduction and special values
included) is evaluated through its own ``__call__``; the exact function is computed in float64.

Relative error is ``|t - f| / max(|f|, 2**-14)``: the floor keeps it meaningful near zeros of f.

Which inputs count:

- inputs outside the function's ``inputs`` (``exp`` is the softmax exponent: non-positive inputs
  only) are left out;
- inputs where the exact value is not finite (1/0, rsqrt of a negative number) or overflows
  the format (exp(12) in FP16, 1/x at FP16 subnormals) are left out and counted in
  ``excluded``: no output in that format can be right there;
- inputs where the exact value is finite but the table's is not are counted in
  ``nonfinite_outputs`` (and left out of the maxima, which stay JSON numbers): any count above
  zero is a failure of the table.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import NNLUTError

if TYPE_CHECKING:
    from ..core._functions import FunctionSpec

REL_FLOOR = 2.0**-14
FP32_SWEEP_POINTS = 2**15  # per sign

# format -> largest finite value
_LARGEST = {"fp16": 65504.0, "bf16": float(np.ldexp(2.0 - 2.0**-7, 127)), "fp32": float(np.finfo(np.float32).max)}
FORMATS = tuple(_LARGEST)


def fp16_inputs() -> np.ndarray:
    """Every finite FP16 value (63488 of them, +0 and -0 included), as float64."""
    x = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float64)
    return x[np.isfinite(x)]


def bf16_inputs() -> np.ndarray:
    """Every finite BF16 value (65280 of them): each 16-bit pattern as the top half of an FP32."""
    x = (np.arange(2**16, dtype=np.uint32) << 16).view(np.float32)
    return x[np.isfinite(x)].astype(np.float64)


def fp32_inputs(points: int = FP32_SWEEP_POINTS) -> np.ndarray:
    """``points`` log-spaced FP32 values per sign from the smallest normal to the largest finite
    value, both signs, and +-0."""
    fi = np.finfo(np.float32)
    pos = np.geomspace(float(fi.tiny), float(fi.max), points).astype(np.float32)
    pos = np.clip(pos, fi.tiny, fi.max).astype(np.float64)
    return np.concatenate([-pos[::-1], [-0.0, 0.0], pos])


_INPUTS = {"fp16": fp16_inputs, "bf16": bf16_inputs, "fp32": fp32_inputs}


def _errors(table: Any, spec: FunctionSpec, x: np.ndarray, largest: float) -> dict[str, Any]:
    lo, hi = spec.inputs
    x = x[(x >= lo) & (x <= hi)]
    with np.errstate(all="ignore"):
        f = spec(x)
        t = np.asarray(table(x), dtype=np.float64).reshape(x.shape)
    counted = np.isfinite(f) & (np.abs(f) <= largest)
    finite_t = np.isfinite(t)
    ok = counted & finite_t
    out: dict[str, Any] = {"points": int(ok.sum()), "excluded": int((~counted).sum()),
                           "nonfinite_outputs": int((counted & ~finite_t).sum())}
    if not ok.any():
        return out | dict.fromkeys(("max_abs", "mean_abs", "max_rel", "mean_rel", "argmax_abs", "argmax_rel"))
    xs, fs, ts = x[ok], f[ok], t[ok]
    ae = np.abs(ts - fs)
    re = ae / np.maximum(np.abs(fs), REL_FLOOR)
    ia, ir = int(np.argmax(ae)), int(np.argmax(re))
    return out | {"max_abs": float(ae[ia]), "mean_abs": float(np.mean(ae)), "max_rel": float(re[ir]),
                  "mean_rel": float(np.mean(re)), "argmax_abs": float(xs[ia]), "argmax_rel": float(xs[ir])}


def full_domain_errors(table: Any, spec: str | FunctionSpec | None = None,
                       formats: tuple[str, ...] = FORMATS) -> dict[str, Any]:
    """Max and mean absolute and relative error of ``table`` (any table kind, or any float64
    numpy callable with ``spec`` given) over every finite input of each of ``formats``
    (``"fp16"``, ``"bf16"``: every value; ``"fp32"``: the log-spaced sweep). See the module
    docstring for which inputs count. Returns ``{format: {...}, "inputs": [lo, hi],
    "rel_floor": 2**-14}``."""
    from ..core._functions import get_function

    if spec is None:
        spec = getattr(table, "function", None)
        if spec is None:
            raise NNLUTError("full-domain errors need the table's function; this table names none")
    spec = get_function(spec)
    unknown = [f for f in formats if f not in _LARGEST]
    if unknown:
        raise NNLUTError(f"format {unknown[0]!r} is unknown; allowed: {', '.join(FORMATS)}")
    out: dict[str, Any] = {"inputs": [_enc(v) for v in spec.inputs], "rel_floor": REL_FLOOR}
    for name in formats:
        out[name] = _errors(table, spec, _INPUTS[name](), _LARGEST[name])
    out["specials"] = _specials(table, spec)
    return out


def _specials(table: Any, spec: FunctionSpec) -> dict[str, Any]:
    """The table at -inf, +inf and NaN beside the exact values (the function's limits; NaN for
    NaN); ``match`` is whether every one is right (NaN matching NaN). An infinite input outside
    the function's ``inputs`` is left out."""
    lo, hi = spec.inputs
    xs = [v for v in (-math.inf, math.inf) if lo <= v <= hi] + [math.nan]
    with np.errstate(all="ignore"):
        got = np.asarray(table(np.array(xs)), dtype=np.float64).reshape(-1).tolist()
        limits = spec.limits if spec.limits is not None else tuple(spec(np.array([-math.inf, math.inf])).tolist())
    want = [limits[0] if x == -math.inf else limits[1] if x == math.inf else math.nan for x in xs]
    match = all((math.isnan(g) and math.isnan(w)) or g == w for g, w in zip(got, want, strict=True))
    keys = [_enc(x) for x in xs]
    return {"match": match, "table": dict(zip(keys, map(_enc, got), strict=True)),
            "exact": dict(zip(keys, map(_enc, want), strict=True))}


def _enc(v: float) -> float | str:
    # JSON-safe: non-finite values as strings, the way table files write infinite limits
    if math.isnan(v):
        return "nan"
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")


FULL_HEADERS = ("inputs", "max abs", "mean abs", "max rel", "mean rel", "counted", "excluded", "non-finite out")


def full_domain_rows(errors: dict[str, Any]) -> list[list[Any]]:
    """Rows (one per format) under :data:`FULL_HEADERS` for printing a full-domain result."""
    names = {"fp16": "every FP16", "bf16": "every BF16", "fp32": "FP32 sweep"}
    rows = []
    for fmt in FORMATS:
        e = errors.get(fmt)
        if e is None:
            continue
        rows.append([names[fmt]] + [math.nan if e[k] is None else e[k] for k in ("max_abs", "mean_abs", "max_rel",
                                                                                 "mean_rel")]
                    + [e["points"], e["excluded"], e["nonfinite_outputs"]])
    return rows
