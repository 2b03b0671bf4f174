"""The FP16-parameter NN-LUT unit: :class:`nnlut.fixed.HalfTable`'s datapath in Verilog.

HalfTable evaluates ``round16(round16(s * x) + t)``: the product and the sum each rounded to
FP16, nearest even, with subnormals and overflow to infinity, on an input rounded to FP16
(infinities saturated at +-65504). Both roundings are of exact values (an FP16 product has 22
significant bits; a sum of two FP16 values is a multiple of 2**-24 below 2**17), which is what an
IEEE FP16 multiplier and adder compute, so the hardware realises HalfTable exactly::

    cycle 1: x = sat(x_in); key(x) >= key(bp[j]) for every j; idx = popcount; read s, t   -> registered
    cycle 2: p = round16(s * x)       11x11-bit significand product, one rounding          -> registered
    cycle 3: y = round16(p + t)       the smaller aligned to the larger with guard, round, sticky

``key`` maps an FP16 word to an unsigned integer with the order of its value (-0 and +0 equal);
the breakpoint registers hold keys, so the compare is an unsigned one. The rounding block takes
an exact value ``sign * m * 2**e`` (``m`` unsigned) to FP16: it finds the leading one, shifts
to 11 significant bits (or to the subnormal grid), rounds half to even from a guard and a sticky
bit, and adds the exponent above the significand so that a carry out of the significand raises
the exponent by itself; a result at or beyond 0x7C00 is infinity. An exact zero sum takes the
sign of its operands when they agree, +0 otherwise. A NaN input gives the quiet NaN 0x7E00 (the
unit's golden model says the same; HalfTable passes NaN through outside its core).

``nnlut_fp16_unit`` is programmable (``cfg_addr[7:6]`` = 0 breakpoint key, 1 slope, 2 intercept;
FP16 words; one clock gate per word) and serves GELU, exp, 1/x and 1/sqrt x like the INT16 unit.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._errors import NNLUTError
from ..fixed import HalfTable, to_fp16
from . import _testbench as tbm
from ._rtl_nnlut import pipeline_block, popcount, register_file, select
from ._units import BuildContext, Unit, _stream_tb, programmed_real, programmed_streams, register_unit

FUNCTIONS = ("gelu", "exp", "reciprocal", "rsqrt")
QNAN = 0x7E00
FP16_MAX = 0x7BFF


def _round_module(name: str, width: int) -> str:
    """``sign * m * 2**e`` (``m`` ``width`` bits unsigned, ``e`` signed 8 bits) rounded to FP16."""
    return f"""module {name} (
    input  wire              sign,
    input  wire [{width - 1}:0]       m,
    input  wire signed [7:0] e,
    output wire [15:0]       y
);
    reg [5:0] lead;
    integer i;
    always @(*) begin
        lead = 6'd0;
        for (i = 0; i < {width}; i = i + 1) if (m[i]) lead = i[5:0];
    end
    // right shift to 11 significant bits, or to the subnormal grid (LSB 2^-24) if that is coarser
    wire signed [8:0] r_norm = $signed({{3'b000, lead}}) - 9'sd10;
    wire signed [8:0] r_sub = -9'sd24 - e;
    wire signed [8:0] r = (r_norm > r_sub) ? r_norm : r_sub;
    wire [3:0] rl = (r < 0) ? (-r) : 9'sd0;                       // exact left shift, at most 10
    wire [6:0] rr = (r <= 0) ? 7'd0 : (r > {width + 1}) ? 7'd{width + 1} : r[6:0];
    wire [{width - 1}:0] m_right = m >> rr;
    wire [10:0] m_left = m[10:0] << rl;
    wire [10:0] mant = (r > 0) ? m_right[10:0] : m_left;
    wire [{width}:0] at_guard = {{1'b0, m}} >> (rr - 7'd1);
    wire guard = (rr != 0) && at_guard[0];
    wire [{width}:0] below = ({{{width}'d0, 1'b1}} << (rr - 7'd1)) - {width + 1}'d1;
    wire sticky = (rr > 1) && (|(m & below[{width - 1}:0]));
    wire up = guard && (sticky || mant[0]);
    wire signed [9:0] ebase = e + r + 10'sd24;                     // biased exponent - 1, >= 0
    wire [20:0] enc = {{ebase[9:0], 10'd0}} + {{10'd0, mant}} + {{20'd0, up}};
    assign y = (m == 0) ? {{sign, 15'd0}} : (enc >= 21'h7C00) ? {{sign, 15'h7C00}} : {{sign, enc[14:0]}};
endmodule
"""


def _unpack(w: str, n: str) -> str:
    """Significand (hidden bit included) and biased exponent (subnormals at 1) of FP16 word ``w``."""
    return (f"    wire [10:0] m{n} = {{|{w}[14:10], {w}[9:0]}};\n"
            f"    wire [4:0] e{n} = ({w}[14:10] == 5'd0) ? 5'd1 : {w}[14:10];")


def _mul_module(name: str) -> str:
    return f"""module {name} (input wire [15:0] a, input wire [15:0] b, output wire [15:0] y);
{_unpack("a", "a")}
{_unpack("b", "b")}
    wire [21:0] m = ma * mb;
    wire signed [7:0] e = $signed({{3'b000, ea}}) + $signed({{3'b000, eb}}) - 8'sd50;
    {name}_round rnd (.sign(a[15] ^ b[15]), .m(m), .e(e), .y(y));
endmodule
"""


def _add_module(name: str) -> str:
    """``p + t`` with ``t`` finite; an infinite ``p`` passes through. The larger magnitude ``a``
    keeps its place; the smaller ``b`` is shifted right onto it with three more bits (guard,
    round, sticky: the bits shifted out ORed into the lowest), which rounds like the exact sum:
    when bits are lost (exponents two or more apart) the sum keeps its leading one within one
    place of ``a``'s, so the sticky bit lies below the rounding position."""
    return f"""module {name} (input wire [15:0] p, input wire [15:0] t, output wire [15:0] y);
    wire swap = t[14:0] > p[14:0];                  // FP16 magnitudes order like their bit patterns
    wire [15:0] a = swap ? t : p;
    wire [15:0] b = swap ? p : t;
{_unpack("a", "a")}
{_unpack("b", "b")}
    wire [4:0] d = ea - eb;
    wire [4:0] dc = (d > 5'd14) ? 5'd14 : d;
    wire [27:0] b_wide = {{mb, 3'b000, 14'd0}} >> dc;  // the aligned word, then the bits shifted out
    wire [13:0] b_al = {{b_wide[27:15], b_wide[14] | (|b_wide[13:0])}};
    wire [14:0] sum = (a[15] ^ b[15]) ? ({{1'b0, ma, 3'b000}} - {{1'b0, b_al}}) : ({{1'b0, ma, 3'b000}} + {{1'b0, b_al}});
    wire signed [7:0] e = $signed({{3'b000, ea}}) - 8'sd28;
    wire [15:0] r;
    {name}_round rnd (.sign((sum == 0) ? (a[15] & b[15]) : a[15]), .m(sum), .e(e), .y(r));
    assign y = (p[14:10] == 5'd31) ? p : r;
endmodule
"""


def fp16_unit_verilog(entries: int, name: str = "nnlut_fp16_unit", *, registered: bool = True) -> str:
    """Programmable ``entries``-entry FP16 unit, 3-cycle pipeline; ``registered=False``: un-pipelined."""
    if not 2 <= entries <= 64:
        raise NNLUTError(f"the programmable FP16 unit holds 2 to 64 entries, got {entries}")
    nb, idxw = entries - 1, max(1, entries.bit_length())
    words = ([(f"bp{j}", 16, j) for j in range(nb)] + [(f"sl{k}", 16, 64 + k) for k in range(entries)]
             + [(f"ic{k}", 16, 128 + k) for k in range(entries)])
    keys = [f"bp{j}" for j in range(nb)]
    cmps = "\n".join(f"    assign ge[{j}] = (xkey >= {w});" for j, w in enumerate(keys))
    stages = [[("v1", "in_valid"), ("n1", "xnan"), ("s1", "sel_s"), ("t1", "sel_t"), ("x1", "xsat")],
              [("v2", "v1"), ("n2", "n1"), ("p2", "p_c"), ("t2", "t1")],
              [("out_valid", "v2"), ("y_out", f"n2 ? 16'h{QNAN:04X} : y_c")]]
    decl = "\n".join(f"    reg [{b - 1}:0] {r};" for r, b in (("s1", 16), ("t1", 16), ("x1", 16), ("p2", 16), ("t2", 16)))
    return f"""// Generated by nnlut: programmable {entries}-entry FP16-parameter NN-LUT unit, 3-cycle pipeline{"" if registered else " (un-pipelined)"}.
`default_nettype none
module {name} (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 cfg_we,
    input  wire [7:0]           cfg_addr,
    input  wire [31:0]          cfg_data,
    input  wire                 in_valid,
    input  wire [15:0]          x_in,
    output reg                  out_valid,
    output reg  [15:0]          y_out
);
{register_file(words, unsigned=tuple(w for w, _, _ in words))}

    // stage 1: saturate infinities, order key, compare with every breakpoint key, select
    wire xnan = (x_in[14:10] == 5'd31) && (x_in[9:0] != 10'd0);
    wire [15:0] xsat = (x_in[14:10] == 5'd31) ? {{x_in[15], 15'h{FP16_MAX:04X}}} : x_in;
    wire [15:0] xkey = (xsat[14:0] == 15'd0) ? 16'h8000 : xsat[15] ? {{1'b0, ~xsat[14:0]}} : {{1'b1, xsat[14:0]}};
    wire [{max(nb - 1, 0)}:0] ge;
{cmps}
    wire [{idxw - 1}:0] idx_c = {popcount(nb)};
{select("sel_s", [f"sl{k}" for k in range(entries)], 16, idxw)}
{select("sel_t", [f"ic{k}" for k in range(entries)], 16, idxw)}
{decl}
    reg v1, n1, v2, n2;
    // stage 2: FP16 multiply; stage 3: FP16 add
    wire [15:0] p_c, y_c;
    {name}_mul mul (.a(s1), .b(x1), .y(p_c));
    {name}_add add (.p(p2), .t(t2), .y(y_c));
{pipeline_block(stages, ["v1", "v2", "out_valid"], registered)}
endmodule

{_mul_module(f"{name}_mul")}
{_round_module(f"{name}_mul_round", 22)}
{_add_module(f"{name}_add")}
{_round_module(f"{name}_add_round", 15)}`default_nettype wire
"""


# ---------------------------------------------------------------------------- golden model and units
def bits(values: np.ndarray) -> np.ndarray:
    """FP16 words (int64) of float64 values exact in FP16."""
    return np.asarray(values, dtype=np.float64).astype(np.float16).view(np.uint16).astype(np.int64)


def order_key(words: np.ndarray) -> np.ndarray:
    """The unsigned key whose integer order is the FP16 values' order (-0 and +0 one key)."""
    w = np.asarray(words, dtype=np.int64)
    key = np.where(w & 0x8000, (~w) & 0x7FFF, w | 0x8000)
    return np.where((w & 0x7FFF) == 0, 0x8000, key)


def golden(ht: HalfTable, words: np.ndarray) -> np.ndarray:
    """The unit's expected FP16 words for input words: :meth:`HalfTable.core` (NaN in: 0x7E00)."""
    x = np.asarray(words, dtype=np.int64).astype(np.uint16).view(np.float16).astype(np.float64)
    nan = np.isnan(x)
    return np.where(nan, QNAN, bits(ht.core(np.where(nan, 0.0, x))))


def check_fp16(ht: HalfTable) -> None:
    if ht.precision != "fp16" or not (np.all(np.isfinite(ht.s)) and np.all(np.isfinite(ht.t))):
        raise NNLUTError(f"the FP16 unit needs an fp16 HalfTable with finite parameters; table {ht.function!r} "
                         f"is {ht.precision} with finite slopes/intercepts: {bool(np.all(np.isfinite(ht.s)))}/"
                         f"{bool(np.all(np.isfinite(ht.t)))}")


@functools.lru_cache(maxsize=4)
def fp16_tables(entries: int = 16) -> dict[str, HalfTable]:
    """The four paper functions' NN-LUT tables with FP16 parameters (:func:`nnlut.fixed.to_fp16`)."""
    from ..models._swap import fitted_table

    return {fn: to_fp16(fitted_table(fn, "nnlut", entries, "full")) for fn in FUNCTIONS}


def vectors(ht: HalfTable, n: int, rng: np.random.Generator) -> np.ndarray:
    """Edge words (zeros, subnormals, the largest finite, infinities, a NaN, each breakpoint and
    its neighbours), then half random words, half random values inside the table's domain."""
    edges = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x83FF, 0x8400, 0x3C00, 0xBC00, FP16_MAX, 0xFBFF,
             0x7C00, 0xFC00, QNAN, 0x7C01]
    edges += [int(w) + d for w in bits(ht.bp) for d in (-1, 0, 1)]
    k = max(n - len(edges), 0)
    lo, hi = ht.source.domain if ht.source.domain is not None else (-8.0, 8.0)
    inside = bits(np.clip(rng.uniform(lo, hi, k - k // 2), -65504, 65504))
    return np.concatenate([np.array(edges, dtype=np.int64) & 0xFFFF, rng.integers(0, 1 << 16, k // 2), inside])


def program(ht: HalfTable) -> list[str]:
    """Load one table: breakpoint keys, slope and intercept words, one register write per cycle."""
    check_fp16(ht)
    words = ([(j, k) for j, k in enumerate(order_key(bits(ht.bp)))] + [(64 + j, w) for j, w in enumerate(bits(ht.s))]
             + [(128 + j, w) for j, w in enumerate(bits(ht.t))])
    return [tbm.stream_command(tbm.KIND_CFG, addr=a, data=int(v)) for a, v in words]


def real_words(ht: HalfTable, x: np.ndarray) -> np.ndarray:
    """Recorded real inputs -> the unit's input words (range-reduced first where the table is)."""
    if ht.scaling is not None:
        from ..core._eval import reduce_input

        x, _ = reduce_input(ht.scaling, x)
    return bits(np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64)), -65504, 65504))


@register_unit("nnlut_fp16_unit")
def _fp16_unit(ctx: BuildContext) -> list[Unit]:
    tables = fp16_tables(ctx.entries)
    for ht in tables.values():
        check_fp16(ht)
        if ht.entries != ctx.entries:
            raise NNLUTError(f"FP16 table {ht.function!r} has {ht.entries} entries, the unit {ctx.entries}")
    per = math.ceil(ctx.vectors / len(tables))
    lines, n_vec = programmed_streams(tables, 3, program, lambda t: vectors(t, per, ctx.rng), golden)
    real = programmed_real(tables["gelu"], program, real_words, golden)

    name = "nnlut_fp16_unit"
    return [Unit(name, fp16_unit_verilog(ctx.entries, name), "stream", lines, n_vec, 3, "nnlut-fp16", list(tables),
                 _stream_tb(name, "x_in", 16, "y_out", 16, 3, has_cfg=True), real,
                 fp16_unit_verilog(ctx.entries, f"{name}_comb", registered=False),
                 {"entries": ctx.entries, "programmable": True, "stages": 3, "power_inputs": "gelu",
                  "format": "fp16"})]
