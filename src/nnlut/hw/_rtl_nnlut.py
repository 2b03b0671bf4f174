"""Verilog for the NN-LUT unit: one compare stage, one multiply-add, two pipeline stages (three
with the multiply and the add split).

``nnlut_unit`` has programmable table registers (breakpoints, slopes, intercepts and the
product shift), so one unit serves GELU, exp, 1/x and 1/sqrt(x) by reloading them. Its
datapath is exactly :meth:`nnlut.fixed.FixedTable.eval_int`:

    cycle 1: ge[j] = (x >= bp[j]); idx = popcount(ge); read s[idx], t[idx]        -> registered
    cycle 2: acc = ((s * x) >>> psh) + t; y = sat((acc + 2**(sh-1)) >>> sh)      -> registered

A new input is accepted every cycle; results appear two cycles later (three when the product
is registered before the add, ``stages=3``). ``sh`` (the guard bits
of the intercepts) is fixed when the unit is generated; ``psh`` is a register.
``nnlut_rom_<name>`` is the same datapath with one table hard-wired (constants).

Programming interface: ``cfg_we`` with ``cfg_addr[7:6]`` = 0 breakpoint, 1 slope,
2 intercept, 3 product shift, and ``cfg_addr[5:0]`` the index; a write presented in one
cycle lands at the next rising edge. The table registers hold their value without load
multiplexers: each word has its own clock gate (the write enable is caught by a
falling-edge flop and ANDed with the clock, so the gated clock cannot glitch), the usual
register-file structure where a library, like OSU's, has no integrated clock-gating cell.
Inputs must therefore be stable from the falling edge to the rising edge of a write cycle.
"""

from __future__ import annotations

from .._errors import NNLUTError
from ..fixed._table import FixedFormat, FixedTable

# the cell the enable flops of the table registers' clock gates map to (OSU 0.18um)
CLOCK_GATE_CELL = "DFFNEGX1"


def pipeline_block(stages: list[list[tuple[str, str]]], resets: list[str], registered: bool = True) -> str:
    """One always block for a pipeline: ``stages`` are lists of (register, next value);
    ``resets`` the registers cleared by ``rst_n`` (the valid bits). With ``registered=False``
    the registers become wires of one combinational block (the un-pipelined datapath whose
    delay the flow times)."""
    if not registered:
        body = "\n".join(f"        {r} = {v};" for st in stages for r, v in st)
        return f"    always @(*) begin\n{body}\n    end"
    rst = " ".join(f"{r} <= 1'b0;" for r in resets)
    body = "\n".join("            " + " ".join(f"{r} <= {v};" for r, v in st) for st in stages)
    return f"""    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            {rst}
        end else begin
{body}
        end
    end"""


def _stage1_decl(fmt: FixedFormat) -> str:
    """The registers between compare/select and the multiply-add: slope, intercept, input, valid."""
    return (f"    reg signed [{fmt.slope_bits - 1}:0] s1;\n    reg signed [{fmt.icpt_bits - 1}:0] t1;\n"
            f"    reg signed [{fmt.in_bits - 1}:0] x1;\n    reg v1;")


def _stage2(fmt: FixedFormat, pshift: str, slope: str, icpt: str, stages: int, registered: bool) -> str:
    """Multiply, product shift, add, rounding shift, saturation and the output register, with
    the stage-1 registers; ``stages=3`` registers the product (and the intercept) between the
    multiply and the add."""
    iw, sw, tw = fmt.in_bits, fmt.slope_bits, fmt.icpt_bits
    pw = iw + sw
    aw = max(pw, tw) + 1
    s1 = [("v1", "in_valid"), ("s1", slope), ("t1", icpt), ("x1", "x_in")]
    if stages == 1:  # compare, select and multiply-add in one cycle: only the output is registered
        out = [("out_valid", "v1"), ("y_out", "sat")]
        return f"""{_stage1_wires(fmt, slope, icpt)}
{_mac(fmt, pshift, "prod", "t1", aw, pw)}
{pipeline_block([out], ["out_valid"], registered)}"""
    if stages == 2:
        mid, prod, t_add, v_out = [], "prod", "t1", "v1"
        decl = ""
    else:
        mid, prod, t_add, v_out = [("v2", "v1"), ("p2", "prod"), ("t2", "t1")], "p2", "t2", "v2"
        decl = f"    reg signed [{pw - 1}:0] p2;\n    reg signed [{tw - 1}:0] t2;\n    reg v2;\n"
    out = [("out_valid", v_out), ("y_out", "sat")]
    block = pipeline_block([s1, mid, out] if mid else [s1, out], ["v1", "out_valid"] + (["v2"] if mid else []),
                           registered)
    return f"""{_stage1_decl(fmt)}
{decl}{_mac(fmt, pshift, prod, t_add, aw, pw)}
{block}"""


def _mac(fmt: FixedFormat, pshift: str, prod: str, t_add: str, aw: int, pw: int) -> str:
    """Multiply, product shift, add, rounding shift and saturation (combinational)."""
    ow, sh = fmt.out_bits, fmt.shift
    omax, omin = 2 ** (ow - 1) - 1, -(2 ** (ow - 1))
    rounded = f"(acc + {aw}'sd{1 << (sh - 1)}) >>> {sh}" if sh > 0 else "acc"
    return f"""    wire signed [{pw - 1}:0] prod = s1 * x1;
    wire signed [{pw - 1}:0] prod_sh = {prod} >>> {pshift};
    wire signed [{aw - 1}:0] acc = prod_sh + {t_add};
    wire signed [{aw - 1}:0] shifted = {rounded};
    wire signed [{ow - 1}:0] sat = (shifted > {omax}) ? {ow}'sd{omax} :
                                  (shifted < {omin}) ? -{ow}'sd{-omin} : shifted[{ow - 1}:0];"""


def _stage1_wires(fmt: FixedFormat, slope: str, icpt: str) -> str:
    """The un-registered stage 1 of the 1-cycle unit: the selected words feed the multiply-add directly."""
    return (f"    wire signed [{fmt.slope_bits - 1}:0] s1 = {slope};\n    wire signed [{fmt.icpt_bits - 1}:0] t1 = {icpt};\n"
            f"    wire signed [{fmt.in_bits - 1}:0] x1 = x_in;\n    wire v1 = in_valid;")


def popcount(n: int) -> str:
    width = max(1, n.bit_length())
    terms = " + ".join(f"{{{width - 1}'d0, ge[{j}]}}" if width > 1 else f"ge[{j}]" for j in range(n))
    return terms or "0"


def select(name: str, words: list[str], width: int, idxw: int) -> str:
    """A case statement choosing ``words[idx_c]`` (combinational)."""
    arms = "\n".join(f"            {idxw}'d{k}: {name} = {w};" for k, w in enumerate(words))
    return f"""    reg signed [{width - 1}:0] {name};
    always @(*) begin
        case (idx_c)
{arms}
            default: {name} = {width}'sd0;
        endcase
    end"""


def _check_stages(stages: int, allowed: tuple[int, ...] = (2, 3)) -> None:
    if stages not in allowed:
        raise NNLUTError(f"this NN-LUT unit has {' or '.join(map(str, allowed))} pipeline stages, got {stages}")


def nnlut_unit_verilog(entries: int, fmt: FixedFormat, name: str = "nnlut_unit", *, stages: int = 2,
                       registered: bool = True) -> str:
    """Programmable N-entry unit for the widths (and final shift) of ``fmt``; ``stages=3``
    splits the multiply from the add; ``registered=False`` gives the un-pipelined datapath
    (the table registers stay)."""
    if not 2 <= entries <= 64:
        raise NNLUTError(f"the programmable unit holds 2 to 64 entries, got {entries}")
    _check_stages(stages)
    nb = entries - 1
    iw, sw, tw, ow = fmt.in_bits, fmt.slope_bits, fmt.icpt_bits, fmt.out_bits
    idxw = max(1, entries.bit_length())
    # table words: (register name, width, address)
    words = ([(f"bp{j}", iw, j) for j in range(nb)] + [(f"sl{k}", sw, 64 + k) for k in range(entries)]
             + [(f"ic{k}", tw, 128 + k) for k in range(entries)] + [("psh", 6, 192)])
    cmps = "\n".join(f"    assign ge[{j}] = (x_in >= bp{j});" for j in range(nb))
    return f"""// Generated by nnlut: programmable {entries}-entry NN-LUT unit, {stages}-cycle pipeline{"" if registered else " (un-pipelined)"}.
`default_nettype none
module {name} (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 cfg_we,
    input  wire [7:0]           cfg_addr,
    input  wire [31:0]          cfg_data,
    input  wire                 in_valid,
    input  wire signed [{iw - 1}:0]   x_in,
    output reg                  out_valid,
    output reg  signed [{ow - 1}:0]   y_out
);
{register_file(words, unsigned=("psh",))}

    // stage 1: compare against every breakpoint, count, select
    wire [{max(nb - 1, 0)}:0] ge;
{cmps}
    wire [{idxw - 1}:0] idx_c = {popcount(nb)};
{select("sel_s", [f"sl{k}" for k in range(entries)], sw, idxw)}
{select("sel_t", [f"ic{k}" for k in range(entries)], tw, idxw)}

    // then one multiply-add, rounding shift, saturation
{_stage2(fmt, "psh", "sel_s", "sel_t", stages, registered)}
endmodule
`default_nettype wire
"""


def register_file(words: list[tuple[str, int, int]], unsigned: tuple[str, ...] = ()) -> str:
    """The programmable table registers: ``words`` are (name, bits, cfg address); each word has
    its own clock gate (see the module docstring); names in ``unsigned`` are declared unsigned."""
    nw = len(words)
    regs = "\n".join(f"    reg {'' if w in unsigned else 'signed '}[{bits - 1}:0] {w};" for w, bits, _ in words)
    sel = "\n".join(f"    assign wsel[{i}] = cfg_we && (cfg_addr == 8'd{addr});" for i, (_, _, addr) in enumerate(words))
    writes = "\n".join(f"    always @(posedge gclk[{i}]) {w} <= cfg_data[{bits - 1}:0];"
                       for i, (w, bits, _) in enumerate(words))
    return f"""    // table registers, one clock gate per word
{regs}
    wire [{nw - 1}:0] wsel;
{sel}
    reg [{nw - 1}:0] wen;
    always @(negedge clk) wen <= wsel;
    wire [{nw - 1}:0] gclk = {{{nw}{{clk}}}} & wen;
{writes}"""


def const(value: int, width: int) -> str:
    return f"-{width}'sd{-value}" if value < 0 else f"{width}'sd{value}"


def nnlut_rom_verilog(ft: FixedTable, name: str, *, stages: int = 2, registered: bool = True) -> str:
    """The same datapath with ``ft`` hard-wired; ``stages=1`` registers only the output (the
    whole datapath in one cycle: the shortest latency, the lowest clock)."""
    _check_stages(stages, (1, 2, 3))
    fmt = ft.fmt
    iw, sw, tw, ow = fmt.in_bits, fmt.slope_bits, fmt.icpt_bits, fmt.out_bits
    nb, n = len(ft.bp), ft.entries
    idxw = max(1, n.bit_length())
    cmps = "\n".join(f"    assign ge[{j}] = (x_in >= {const(int(b), iw)});" for j, b in enumerate(ft.bp))
    sel_s = select("sel_s", [const(int(v), sw) for v in ft.s], sw, idxw)
    sel_t = select("sel_t", [const(int(v), tw) for v in ft.t], tw, idxw)
    return f"""// Generated by nnlut: hard-wired {n}-entry NN-LUT unit for {ft.function}, {stages}-cycle pipeline{"" if registered else " (un-pipelined)"}.
`default_nettype none
module {name} (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 in_valid,
    input  wire signed [{iw - 1}:0]   x_in,
    output reg                  out_valid,
    output reg  signed [{ow - 1}:0]   y_out
);
    wire [{max(nb - 1, 0)}:0] ge;
{cmps}
    wire [{idxw - 1}:0] idx_c = {popcount(nb)};
{sel_s}
{sel_t}
{_stage2(fmt, str(fmt.pshift), "sel_s", "sel_t", stages, registered)}
endmodule
`default_nettype wire
"""
