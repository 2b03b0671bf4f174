"""The hardware units, one registered builder each: Verilog (pipelined and un-pipelined),
self-checking testbench, golden vectors, and how real inputs become the unit's input codes.

A builder takes a :class:`BuildContext` and returns its units; ``register_unit`` adds one to
``UNIT_BUILDERS`` (the flow runs them in registration order), so a new unit is a new builder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from ..fixed import FixedTable
from ..ibert._int import int_exp_requant, int_gelu, isqrt
from . import _rtl_ibert as rib
from . import _rtl_nnlut as rnn
from . import _testbench as tbm

GELU_SCALE = 2.0**-11  # i-GELU's static input scale: 16-bit inputs cover [-16, 16)
EXP_SCALE = 2.0**-12  # i-exp's static input scale (as the Softmax op uses)


@dataclass
class Unit:
    """One generated unit. ``make_tb(n_cmds, n_vecs, hexfile, vcd)`` writes its testbench;
    ``real_lines(inputs)`` turns recorded real inputs (see ``_activity``) into (testbench lines,
    vectors) with golden expected values; ``comb_verilog`` is the un-pipelined datapath."""

    name: str
    verilog: str
    kind: str  # "stream" or "sequential"
    hexlines: list[str]
    vectors: int
    latency: int
    role: str  # "nnlut", "nnlut-rom" or "ibert"
    functions: list[str]
    make_tb: Callable[[int, int, str, str | None], str]
    real_lines: Callable[[dict[str, np.ndarray], int], tuple[list[str], int]]
    comb_verilog: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def top(self) -> str:
        return self.name

    @property
    def hexfile(self) -> str:
        return f"{self.name}_vectors.hex"

    @property
    def tb(self) -> str:
        return self.make_tb(len(self.hexlines), self.vectors, self.hexfile, None)


@dataclass
class BuildContext:
    tables: dict[str, FixedTable]
    rng: np.random.Generator
    vectors: int
    entries: int


UNIT_BUILDERS: dict[str, Callable[[BuildContext], list[Unit]]] = {}


def register_unit(name: str) -> Callable:
    def deco(fn: Callable[[BuildContext], list[Unit]]) -> Callable[[BuildContext], list[Unit]]:
        if name in UNIT_BUILDERS:
            raise NNLUTError(f"hardware unit builder {name!r} is registered twice")
        UNIT_BUILDERS[name] = fn
        return fn
    return deco


# ---------------------------------------------------------------------------- helpers
def edge_and_random(lo: int, hi: int, n: int, rng: np.random.Generator, extra: Any = ()) -> np.ndarray:
    edges = [e for e in [lo, lo + 1, hi, hi - 1, 0, 1, -1, *extra] if lo <= e <= hi]
    rand = rng.integers(lo, hi + 1, max(n - len(edges), 0), dtype=np.int64)
    return np.concatenate([np.array(edges, dtype=np.int64), rand])


def stream_lines(xs: Any, ys: Any) -> list[str]:
    return [tbm.stream_command(tbm.KIND_VEC, x=int(x), expected=int(y)) for x, y in zip(xs, ys, strict=True)]


def _stream_tb(top: str, in_port: str, in_bits: int, out_port: str, out_bits: int, latency: int,
               has_cfg: bool = False) -> Callable[[int, int, str, str | None], str]:
    def make(n_cmds: int, n_vecs: int, hexfile: str, vcd: str | None) -> str:
        return tbm.stream_testbench(top, n_cmds, n_vecs, in_port=in_port, in_bits=in_bits, out_port=out_port,
                                    out_bits=out_bits, latency=latency, has_cfg=has_cfg, hexfile=hexfile, vcd=vcd)
    return make


def programmed_streams(tables: dict[str, Any], stages: int, program: Callable[[Any], list[str]],
                       vectors: Callable[[Any], np.ndarray],
                       golden: Callable[[Any, np.ndarray], np.ndarray]) -> tuple[list[str], int]:
    """Testbench lines of a programmable unit and their vector count: each table written
    (``program``), its ``vectors`` streamed with ``golden`` values, then the pipeline drained
    before the next table is loaded."""
    lines, n = [], 0
    for t in tables.values():
        xs = vectors(t)
        lines += program(t) + stream_lines(xs, golden(t, xs)) + [tbm.stream_command(0)] * (stages + 1)
        n += len(xs)
    return lines, n


def programmed_real(table: Any, program: Callable[[Any], list[str]], codes: Callable[[Any, np.ndarray], np.ndarray],
                    golden: Callable[[Any, np.ndarray], np.ndarray]) -> Callable[[dict[str, np.ndarray], int],
                                                                                tuple[list[str], int]]:
    """A programmable unit's ``real_lines``: recorded GELU inputs streamed through the unit
    programmed with ``table`` (``codes`` turns them into input words)."""
    def real(inputs: dict[str, np.ndarray], n: int) -> tuple[list[str], int]:
        xs = codes(table, inputs["gelu"][:n])
        # two idle cycles let the last write's clock-gate enable fall before the measured window
        return program(table) + [tbm.stream_command(0)] * 2 + stream_lines(xs, golden(table, xs)), len(xs)
    return real


def table_codes(ft: FixedTable, x: np.ndarray) -> np.ndarray:
    """Real inputs -> the table core's input codes (range-reduced first where the table is)."""
    if ft.scaling is not None:
        from ..core._eval import reduce_input

        x, _ = reduce_input(ft.scaling, x)
    return np.asarray(ft.quantize_input(x), dtype=np.int64)


def _program(ft: FixedTable) -> list[str]:
    """Load one table into the programmable unit: one register write per cycle."""
    words = ([(j, b) for j, b in enumerate(ft.bp)] + [(64 + j, v) for j, v in enumerate(ft.s)]
             + [(128 + j, v) for j, v in enumerate(ft.t)] + [(192, ft.fmt.pshift)])
    return [tbm.stream_command(tbm.KIND_CFG, addr=a, data=int(v)) for a, v in words]


def _check_common(tables: dict[str, FixedTable]) -> None:
    first = next(iter(tables.values()))
    fmt, entries = first.fmt, first.entries
    for name, ft in tables.items():
        f = ft.fmt
        if (f.in_bits, f.slope_bits, f.icpt_bits, f.out_bits, f.shift, ft.entries) != (
                fmt.in_bits, fmt.slope_bits, fmt.icpt_bits, fmt.out_bits, fmt.shift, entries):
            raise NNLUTError(f"table {name!r} does not fit the unit: every table needs the same widths, final shift "
                             f"and entry count ({fmt}, {entries} entries); got {f}, {ft.entries} entries")


# ---------------------------------------------------------------------------- NN-LUT units
def _programmable(ctx: BuildContext, name: str, stages: int) -> Unit:
    tables = ctx.tables
    _check_common(tables)
    first = next(iter(tables.values()))
    fmt, entries = first.fmt, first.entries
    per = math.ceil(ctx.vectors / len(tables))
    lo, hi = -(2 ** (fmt.in_bits - 1)), 2 ** (fmt.in_bits - 1) - 1
    lines, n_vec = programmed_streams(
        tables, stages, _program,
        lambda ft: edge_and_random(lo, hi, per, ctx.rng, [int(b) + d for b in ft.bp for d in (-1, 0, 1)]),
        lambda ft, xs: ft.eval_int(xs))
    real = programmed_real(tables["gelu"], _program, table_codes, lambda ft, xs: ft.eval_int(xs))
    make = _stream_tb(name, "x_in", fmt.in_bits, "y_out", fmt.out_bits, stages, has_cfg=True)
    return Unit(name, rnn.nnlut_unit_verilog(entries, fmt, name, stages=stages), "stream", lines, n_vec, stages,
                "nnlut", list(tables), make, real, rnn.nnlut_unit_verilog(entries, fmt, f"{name}_comb", stages=stages,
                                                                          registered=False),
                {"entries": entries, "programmable": True, "stages": stages, "format": fmt.to_dict(),
                 "power_inputs": "gelu"})


@register_unit("nnlut_unit")
def _nnlut_unit(ctx: BuildContext) -> list[Unit]:
    return [_programmable(ctx, "nnlut_unit", 2)]


@register_unit("nnlut_unit_p3")
def _nnlut_unit_p3(ctx: BuildContext) -> list[Unit]:
    """The programmable unit with its multiply and its add in separate stages."""
    return [_programmable(ctx, "nnlut_unit_p3", 3)]


@register_unit("nnlut_rom")
def _nnlut_roms(ctx: BuildContext) -> list[Unit]:
    units = []
    for fname, ft in ctx.tables.items():
        fmt = ft.fmt
        lo, hi = -(2 ** (fmt.in_bits - 1)), 2 ** (fmt.in_bits - 1) - 1
        xs = edge_and_random(lo, hi, ctx.vectors, ctx.rng, [int(b) + d for b in ft.bp for d in (-1, 0, 1)])
        top = f"nnlut_rom_{fname}"

        def real(inputs: dict[str, np.ndarray], n: int, ft: FixedTable = ft, fname: str = fname) -> tuple[list[str], int]:
            codes = table_codes(ft, inputs[fname][:n])
            return stream_lines(codes, ft.eval_int(codes)), len(codes)

        units.append(Unit(top, rnn.nnlut_rom_verilog(ft, top), "stream", stream_lines(xs, ft.eval_int(xs)), len(xs), 2,
                          "nnlut-rom", [fname], _stream_tb(top, "x_in", fmt.in_bits, "y_out", fmt.out_bits, 2), real,
                          rnn.nnlut_rom_verilog(ft, f"{top}_comb", registered=False),
                          {"entries": ft.entries, "programmable": False, "power_inputs": fname}))
    return units


@register_unit("nnlut_rom_1c")
def _nnlut_rom_one_cycle(ctx: BuildContext) -> list[Unit]:
    """Hard-wired GELU with only its output registered: compare, select and multiply-add in one
    cycle, the shortest latency in ns (at a lower clock than the 2-stage unit)."""
    ft = ctx.tables["gelu"]
    fmt = ft.fmt
    lo, hi = -(2 ** (fmt.in_bits - 1)), 2 ** (fmt.in_bits - 1) - 1
    xs = edge_and_random(lo, hi, ctx.vectors, ctx.rng, [int(b) + d for b in ft.bp for d in (-1, 0, 1)])
    top = "nnlut_rom_gelu_1c"

    def real(inputs: dict[str, np.ndarray], n: int) -> tuple[list[str], int]:
        codes = table_codes(ft, inputs["gelu"][:n])
        return stream_lines(codes, ft.eval_int(codes)), len(codes)

    return [Unit(top, rnn.nnlut_rom_verilog(ft, top, stages=1), "stream", stream_lines(xs, ft.eval_int(xs)), len(xs),
                 1, "nnlut-rom", ["gelu"], _stream_tb(top, "x_in", fmt.in_bits, "y_out", fmt.out_bits, 1), real,
                 rnn.nnlut_rom_verilog(ft, f"{top}_comb", stages=1, registered=False),
                 {"entries": ft.entries, "programmable": False, "stages": 1, "power_inputs": "gelu"})]


# ---------------------------------------------------------------------------- I-BERT units
def _gelu_golden(xs: np.ndarray) -> np.ndarray:
    return int_gelu(torch.tensor(xs), GELU_SCALE)[0].numpy()


@register_unit("ibert_gelu")
def _ibert_gelu(ctx: BuildContext) -> list[Unit]:
    k = rib.gelu_constants(GELU_SCALE)
    clip_edges = [sign * k["b_int"] + d for sign in (1, -1) for d in (-1, 0, 1)]
    xs = edge_and_random(-32767, 32767, ctx.vectors, ctx.rng, clip_edges)

    def real(inputs: dict[str, np.ndarray], n: int) -> tuple[list[str], int]:
        q = np.clip(np.round(inputs["gelu"][:n] / GELU_SCALE), -32767, 32767).astype(np.int64)
        return stream_lines(q, _gelu_golden(q)), len(q)

    return [Unit("ibert_gelu", rib.ibert_gelu_verilog(GELU_SCALE), "stream", stream_lines(xs, _gelu_golden(xs)),
                 len(xs), 3, "ibert", ["gelu"], _stream_tb("ibert_gelu", "q_in", 16, "y_out", 40, 3), real,
                 rib.ibert_gelu_verilog(GELU_SCALE, "ibert_gelu_comb", registered=False),
                 {"scale": GELU_SCALE, **k, "power_inputs": "gelu"})]


def _exp_golden(xs: np.ndarray) -> np.ndarray:
    return int_exp_requant(torch.tensor(xs), EXP_SCALE).numpy()


@register_unit("ibert_exp")
def _ibert_exp(ctx: BuildContext) -> list[Unit]:
    k = rib.exp_constants(EXP_SCALE)
    x0 = k["x0_int"]
    edges = [k["qmin"], k["qmin"] - 1, k["qmin"] + 1, -(2**31)] + [j * x0 + d for j in range(0, 31) for d in (-1, 0, 1)]
    small = ctx.rng.integers(30 * x0, 1, ctx.vectors // 2)
    xs = np.concatenate([edge_and_random(-(2**31), 0, ctx.vectors - len(small), ctx.rng, edges), small])

    def real(inputs: dict[str, np.ndarray], n: int) -> tuple[list[str], int]:
        q = np.clip(np.round(inputs["exp"][:n] / EXP_SCALE), -(2**31), 0).astype(np.int64)
        return stream_lines(q, _exp_golden(q)), len(q)

    return [Unit("ibert_exp", rib.ibert_exp_verilog(EXP_SCALE), "stream", stream_lines(xs, _exp_golden(xs)), len(xs),
                 3, "ibert", ["exp"], _stream_tb("ibert_exp", "q_in", 32, "e_out", 16, 3), real,
                 rib.ibert_exp_verilog(EXP_SCALE, name="ibert_exp_comb", registered=False),
                 {"scale": EXP_SCALE, **k, "power_inputs": "exp"})]


def ibert_row_integers(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """I-BERT's integers at its divider and i-sqrt inputs, from the recorded real values:
    Softmax's ``sum of i-exp`` per row, LayerNorm's integer variance (after I-BERT's shift to
    32 bits) and its integer std (rows quantised to 16 bits on one scale)."""
    from ..ibert._int import LN_MAX_BIT

    rows = inputs["ln_rows"]
    q = np.round(rows / (np.abs(rows).max() / 2**15)).astype(np.int64)
    y = q - np.round(q.mean(axis=1, keepdims=True)).astype(np.int64)
    shift = 0
    while int(((y >> shift) ** 2).sum(axis=1).max()) >= 2**LN_MAX_BIT:
        shift += 1
    var = ((y >> shift) ** 2).sum(axis=1)
    std = np.maximum(isqrt(torch.tensor(var)).numpy() * 2**shift, 1)
    return {"softmax_sum": inputs["ibert_sum"], "ln_var": var, "ln_std": std}


def _sequential(name: str, verilog: str, in_port: str, in_bits: int, out_port: str, out_bits: int,
                fn: Callable[[np.ndarray], Any], xs: np.ndarray, latency: int, functions: list[str],
                source: str) -> Unit:
    def lines_of(v: np.ndarray) -> list[str]:
        ys = fn(v)
        return [f"{((int(x) & ((1 << 64) - 1)) << 64) | (int(y) & ((1 << 64) - 1)):032x}" for x, y in zip(v, ys, strict=True)]

    def make(n_cmds: int, n_vecs: int, hexfile: str, vcd: str | None) -> str:
        return tbm.sequential_testbench(name, n_vecs, in_port=in_port, in_bits=in_bits, out_port=out_port,
                                        out_bits=out_bits, hexfile=hexfile, vcd=vcd)

    def real(inputs: dict[str, np.ndarray], n: int) -> tuple[list[str], int]:
        v = ibert_row_integers(inputs)[source][:n]
        return lines_of(v), len(v)

    return Unit(name, verilog, "sequential", lines_of(xs), len(xs), latency, "ibert", functions, make, real,
                extra={"power_inputs": source})


def _div(kb: int) -> Callable[[np.ndarray], Any]:
    return lambda d: np.array([(1 << kb) // int(v) for v in d], dtype=object)


@register_unit("ibert_div")
def _ibert_divs(ctx: BuildContext) -> list[Unit]:
    rng, vectors = ctx.rng, ctx.vectors
    d_edges = np.array([1, 2, 3, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 65535, 65536, 32767], dtype=np.int64)
    q4 = max(vectors // 4, 1)
    ds = np.concatenate([d_edges, rng.integers(1, 2**32, vectors // 2), 2 ** rng.integers(0, 32, q4)
                         + rng.integers(0, 3, q4), rng.integers(1, 2**20, q4)])
    # floor(2^32 / sum) for Softmax, floor(2^31 / std) for LayerNorm
    return [_sequential(f"ibert_div{kb}", rib.ibert_div_verilog(kb, f"ibert_div{kb}"), "d_in", 32, "q_out", kb + 1,
                        _div(kb), ds, kb + 1, [fn], src)
            for kb, fn, src in ((32, "reciprocal", "softmax_sum"), (31, "rsqrt", "ln_std"))]


@register_unit("ibert_isqrt")
def _ibert_isqrt(ctx: BuildContext) -> list[Unit]:
    rng, vectors = ctx.rng, ctx.vectors
    q4 = max(vectors // 4, 1)
    n_edges = np.array([0, 1, 2, 3, 4, 15, 16, 17, 2**32 - 1, 2**31, 2**16, 2**16 - 1, 2**16 + 1], dtype=np.int64)
    ns = np.concatenate([n_edges, rng.integers(0, 2**32, vectors // 2), rng.integers(0, 2**16, q4),
                         rng.integers(1, 2**16, q4) ** 2 - rng.integers(0, 2, q4)])
    return [_sequential("ibert_isqrt", rib.ibert_isqrt_verilog(), "n_in", 32, "r_out", 17,
                        lambda n: isqrt(torch.tensor(n)).numpy(), ns, 0, ["rsqrt"], "ln_var")]
