"""Number formats as data: the integer datapath of a fixed-point table, float-parameter
formats, and the spec strings that name them.

Integer datapath (:class:`FixedFormat`): a signed ``in_bits`` input ``x`` with ``in_frac``
fractional bits; signed ``slope_bits`` slopes with ``slope_frac`` fractional bits; signed
``icpt_bits`` intercepts with ``icpt_frac`` fractional bits; an accumulator with ``acc_frac``
fractional bits; a signed ``out_bits`` output with ``out_frac`` fractional bits::

    acc = ((s * x) >> pshift) + (t << tshift)      pshift = in_frac + slope_frac - acc_frac
                                                   tshift = acc_frac - icpt_frac
    y   = saturate_out(round(acc >> shift))        shift  = acc_frac - out_frac

``>>`` is an arithmetic (flooring) shift; ``round`` is the format's rounding mode (half up by
default: add ``2**(shift-1)`` before the shift). ``out_frac == acc_frac`` is the unrounded
output (GQA-LUT's datapath).

Spec strings (:func:`parse_format`), one per preset:

- ``int16``: today's unit: 16-bit inputs, slopes and outputs, intercepts two guard bits below
  the output LSB; the fractional bits are chosen from the table's ranges.
- ``int8``: GQA-LUT's datapath with the input's power-of-two scale left open (chosen from the
  table's domain or from calibration data); ``int8:P`` fixes the input scale at ``2**-P``
  (P = 0..7): INT8 input, 8-bit slopes and intercepts with 6 fractional bits, unrounded output.
- ``fp16``, ``bf16``: the float table's parameters and multiply-add in that float format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import NNLUTError


def _round_half_up(acc: Any, shift: int) -> Any:
    return (acc + (1 << (shift - 1))) >> shift


def _round_floor(acc: Any, shift: int) -> Any:
    return acc >> shift


# rounding modes of the final shift (numpy or torch int64 in, same out); a registry, so a new
# mode is one entry here and one line in the C header's template
ROUNDING: dict[str, Callable[[Any, int], Any]] = {"half_up": _round_half_up, "floor": _round_floor}


@dataclass(frozen=True)
class FixedFormat:
    """An integer datapath (see module docstring). Bits are widths of signed words; fractional
    bits may be negative (a scale above 1). ``icpt_frac`` None: the intercepts sit at the
    product's precision; ``acc_frac`` None: the accumulator sits at the intercepts' precision."""

    in_bits: int = 16
    in_frac: int = 8
    slope_bits: int = 16
    slope_frac: int = 12
    icpt_bits: int = 32
    out_bits: int = 16
    out_frac: int = 12
    icpt_frac: int | None = None
    acc_frac: int | None = None
    rounding: str = "half_up"

    def __post_init__(self) -> None:
        for f in ("in_bits", "slope_bits", "icpt_bits", "out_bits"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 32:
                raise NNLUTError(f"{f} must be an integer in [2, 32], got {v!r}")
        for f in ("in_frac", "slope_frac", "out_frac"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or not -32 <= v <= 48:
                raise NNLUTError(f"{f} must be an integer in [-32, 48], got {v!r}")
        for f in ("icpt_frac", "acc_frac"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise NNLUTError(f"{f} must be an integer or None, got {v!r}")
        if self.rounding not in ROUNDING:
            raise NNLUTError(f"rounding {self.rounding!r} is unknown; allowed: {', '.join(ROUNDING)}")
        acc = "icpt_frac" if self.acc_frac is None else "acc_frac"  # the field that sets the accumulator grid
        if self.pshift < 0:
            raise NNLUTError(f"{acc} ({self.a_frac}) must be <= in_frac + slope_frac ({self.in_frac + self.slope_frac})")
        if self.tshift < 0:
            raise NNLUTError(f"acc_frac ({self.a_frac}) must be >= icpt_frac ({self.t_frac})")
        if self.shift < 0:
            raise NNLUTError(f"{acc} ({self.a_frac}) must be >= out_frac ({self.out_frac})")

    @property
    def t_frac(self) -> int:
        """Fractional bits of the intercepts."""
        return self.in_frac + self.slope_frac if self.icpt_frac is None else self.icpt_frac

    @property
    def a_frac(self) -> int:
        """Fractional bits of the accumulator."""
        return self.t_frac if self.acc_frac is None else self.acc_frac

    @property
    def pshift(self) -> int:
        """Right shift of the product onto the accumulator grid (0: exact multiply-add)."""
        return self.in_frac + self.slope_frac - self.a_frac

    @property
    def tshift(self) -> int:
        """Left shift of the intercept onto the accumulator grid."""
        return self.a_frac - self.t_frac

    @property
    def shift(self) -> int:
        """Final rounding shift from the accumulator to the output grid (0: unrounded)."""
        return self.a_frac - self.out_frac

    @property
    def codes(self) -> tuple[int, int]:
        """The smallest and largest input code."""
        return -(2 ** (self.in_bits - 1)), 2 ** (self.in_bits - 1) - 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Any) -> FixedFormat:
        if not isinstance(d, dict):
            raise NNLUTError(f"a fixed-point format must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise NNLUTError(f"unknown fixed-point format field(s) {unknown}; allowed: {list(cls.__dataclass_fields__)}")
        return cls(**d)


def accumulate(fmt: FixedFormat, s: Any, x: Any, t: Any) -> Any:
    """The unit's multiply-add and rounding shift, before saturation (numpy or torch int64)."""
    prod = s * x
    if fmt.pshift > 0:
        prod = prod >> fmt.pshift
    acc = prod + (t << fmt.tshift if fmt.tshift > 0 else t)
    return ROUNDING[fmt.rounding](acc, fmt.shift) if fmt.shift > 0 else acc


@dataclass(frozen=True)
class FixedSpec:
    """A fixed-point format family whose fractional bits are chosen per table: the widths,
    the intercepts' guard bits below the output LSB (None: exact multiply-add), and optionally
    a fixed input scale (``in_frac``). ``gqa``: GQA-LUT's datapath (8-bit, 6 fractional-bit
    slopes and intercepts, unrounded output) instead of :func:`nnlut.fixed.choose_format`'s."""

    name: str
    in_bits: int = 16
    slope_bits: int = 16
    out_bits: int = 16
    icpt_guard: int | None = 2
    in_frac: int | None = None
    gqa: bool = False

    def resolve(self, in_frac: int) -> FixedFormat:
        """The concrete GQA-LUT-style datapath for an input scale of ``2**-in_frac``."""
        if not self.gqa:
            raise NNLUTError(f"format {self.name!r} chooses its fractional bits from a table (choose_format)")
        return gqa_format(in_frac, self.in_bits)


@dataclass(frozen=True)
class FloatFormat:
    """Float parameters and multiply-add: ``fp16`` (IEEE binary16) or ``bf16`` (bfloat16)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in FLOAT_FORMATS:
            raise NNLUTError(f"float format {self.name!r} is unknown; allowed: {', '.join(FLOAT_FORMATS)}")


FLOAT_FORMATS = ("fp16", "bf16")
GQA_FRAC = 6  # GQA-LUT's slopes and intercepts: 8 bits, 6 of them fractional


def gqa_format(p: int, in_bits: int = 8) -> FixedFormat:
    """GQA-LUT's datapath for input scale ``2**-p``: INT8 input, 8-bit slopes and intercepts
    with 6 fractional bits, the intercept shifted onto the product's grid, unrounded output."""
    if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= in_bits - 1:
        raise NNLUTError(f"the input's fractional bits P must be an integer in [0, {in_bits - 1}], got {p!r}")
    acc = p + GQA_FRAC
    return FixedFormat(in_bits=in_bits, in_frac=p, slope_bits=8, slope_frac=GQA_FRAC, icpt_bits=8, icpt_frac=GQA_FRAC,
                       acc_frac=acc, out_bits=32, out_frac=acc)


Format = FixedFormat | FixedSpec | FloatFormat

PRESETS: dict[str, Callable[[], Format]] = {
    "int16": lambda: FixedSpec("int16"),
    "int8": lambda: FixedSpec("int8", in_bits=8, slope_bits=8, out_bits=32, icpt_guard=None, gqa=True),
    "fp16": lambda: FloatFormat("fp16"),
    "bf16": lambda: FloatFormat("bf16"),
}
SPEC_HELP = "int16, int8, int8:P (P = 0..7), fp16, bf16"


def parse_format(spec: str | Format) -> Format:
    """The format named by ``spec`` (see the module docstring); format objects pass through.
    A bad spec raises one :class:`NNLUTError` line naming it and the allowed specs."""
    if isinstance(spec, (FixedFormat, FixedSpec, FloatFormat)):
        return spec
    if not isinstance(spec, str):
        raise NNLUTError(f"a number format must be a spec string ({SPEC_HELP}) or a format object, got {spec!r}")
    name, sep, arg = spec.strip().lower().partition(":")
    if name not in PRESETS:
        raise NNLUTError(f"unknown number format {spec!r}; allowed: {SPEC_HELP}")
    fmt = PRESETS[name]()
    if not sep:
        return fmt
    if not (isinstance(fmt, FixedSpec) and fmt.gqa and arg.isdigit() and int(arg) < fmt.in_bits):
        raise NNLUTError(f"bad number format {spec!r}: only int8 takes ':P', P an integer in [0, 7]; allowed: {SPEC_HELP}")
    return fmt.resolve(int(arg))


def format_name(fmt: Format) -> str:
    """A short human-readable name of a format (the spec string where there is one)."""
    if isinstance(fmt, (FixedSpec, FloatFormat)):
        return fmt.name
    if fmt == gqa_format(fmt.in_frac, fmt.in_bits) if 0 <= fmt.in_frac < fmt.in_bits else False:
        return f"int{fmt.in_bits}:{fmt.in_frac}"
    return f"int{fmt.in_bits} (Q.{fmt.in_frac} in, Q.{fmt.out_frac} out)"
