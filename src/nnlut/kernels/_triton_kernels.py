"""The Triton kernels behind :mod:`nnlut.kernels._triton` (imported only where Triton is)."""

import triton
import triton.language as tl


@triton.jit
def pow2(k):
    """2**k as float32 for integer k, exactly (0 below 2**-149, inf above 2**127)."""
    normal = ((tl.minimum(tl.maximum(k, -126), 127) + 127) << 23).to(tl.float32, bitcast=True)
    sub = (1 << tl.minimum(tl.maximum(k + 149, 0), 22)).to(tl.float32, bitcast=True)
    v = tl.where(k >= -126, normal, tl.where(k >= -149, sub, 0.0))
    return tl.where(k > 127, float("inf"), v)


@triton.jit
def pwl_kernel(x_ptr, y_ptr, n, bp_ptr, s_ptr, t_ptr, nb, lo, hi, lim_lo, lim_hi,
               CLAMP_LO: tl.constexpr, CLAMP_HI: tl.constexpr, SCALED: tl.constexpr, PAPER: tl.constexpr,
               Q: tl.constexpr, SHIFT: tl.constexpr, ODD: tl.constexpr, BF16: tl.constexpr, BLOCK: tl.constexpr):
    """y = table(x) over n elements. bfloat16 travels as int16 bits (widened and rounded to
    nearest even here, so the rounding is the same in every backend)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    xin = tl.load(x_ptr + offs, mask=live, other=0)
    if BF16:
        x = ((xin.to(tl.int32) & 0xFFFF) << 16).to(tl.float32, bitcast=True)
    else:
        x = xin.to(tl.float32)
    u = x
    j = tl.zeros_like(offs).to(tl.int32)
    if SCALED:
        ax = tl.abs(x) if ODD else x
        sub = (ax.to(tl.int32, bitcast=True) & 0x7F800000) == 0
        ax2 = tl.where(sub, ax * 18446744073709551616.0, ax)  # * 2**64, exact
        bits = ax2.to(tl.int32, bitcast=True)
        e = ((bits >> 23) & 0xFF) - 127 - tl.where(sub, 64, 0)
        j = tl.floor(e.to(tl.float32) / Q).to(tl.int32)  # exact for these small integers
        if PAPER:
            j = tl.minimum(j, 0)
        m1 = ((bits & 0x007FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)  # in [1, 2)
        r = e - Q * j  # in [0, Q), or e itself where paper mode caps j
        u = m1 * pow2(r)
    if CLAMP_LO:
        u = tl.where(u < lo, lo, u)
    if CLAMP_HI:
        u = tl.where(u > hi, hi, u)
    idx = tl.zeros_like(j)
    for i in range(nb):
        idx += (u >= tl.load(bp_ptr + i)).to(tl.int32)
    # NaN compares false everywhere; its segment does not matter (the result is NaN)
    y = tl.load(s_ptr + idx) * u
    y = y + tl.load(t_ptr + idx)
    if SCALED:
        # y * 2**(j * SHIFT) rounded once: exact in float64 (2**128 is not a float32); k is
        # saturated to float64's normal exponents, beyond which the float32 result is inf or 0
        k = tl.minimum(tl.maximum((j * SHIFT).to(tl.int64), -1022), 1023)
        y = (y.to(tl.float64) * ((k + 1023) << 52).to(tl.float64, bitcast=True)).to(tl.float32)
        y = tl.where(x == 0.0, tl.where(x.to(tl.int32, bitcast=True) < 0, float("-inf"), float("inf")), y)  # 1/-0 = -inf
        if ODD:
            y = tl.where(x < 0.0, -y, y)
        else:
            y = tl.where(x < 0.0, float("nan"), y)
        y = tl.where(x != x, x, y)
    y = tl.where(x == float("inf"), lim_hi, y)
    y = tl.where(x == float("-inf"), lim_lo, y)
    if BF16:
        b = y.to(tl.int32, bitcast=True)
        rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
        quiet = ((b >> 16) | 0x40) & 0xFFFF
        tl.store(y_ptr + offs, tl.where(y != y, quiet, rounded).to(tl.int16), mask=live)
    else:
        tl.store(y_ptr + offs, y.to(xin.dtype), mask=live)


@triton.jit
def fixed_kernel(x_ptr, y_ptr, n, bp_ptr, s_ptr, t_ptr, nb, in_lo, in_hi, in_scale, out_scale, lim_lo, lim_hi,
                 SCALED: tl.constexpr, PAPER: tl.constexpr, Q: tl.constexpr, SHIFT: tl.constexpr, ODD: tl.constexpr,
                 PSHIFT: tl.constexpr, OSHIFT: tl.constexpr, OUT_BITS: tl.constexpr, BLOCK: tl.constexpr):
    """A fixed-point table (nnlut.fixed.FixedTable) on float32 inputs: the input code is
    round-half-even(u * 2**in_frac) saturated to the input width (in float64, exact), the
    integer multiply-add and rounding shift of the unit, and the output scaling in float64,
    rounded once to float32."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    x = tl.load(x_ptr + offs, mask=live, other=0.0)
    xd = x.to(tl.float64)
    u = xd
    ks = tl.full(xd.shape, 1.0, tl.float64)
    if SCALED:
        ax = tl.abs(xd)
        bits = ax.to(tl.int64, bitcast=True)
        e = ((bits >> 52) & 0x7FF) - 1023  # float32 inputs are normal doubles
        j = tl.floor(e.to(tl.float32) / Q).to(tl.int64)  # exact for these small integers
        if PAPER:
            j = tl.minimum(j, 0)
        r = e - Q * j
        m2 = ((bits & 0x000FFFFFFFFFFFFF) | ((r + 1023) << 52)).to(tl.float64, bitcast=True)
        ok = (ax != 0.0) & (ax <= 3.5e38)  # zero, inf and NaN are set below
        u = tl.where(ok, m2, 1.0)
        k = tl.minimum(tl.maximum(j * SHIFT, -1022), 1023)  # as in pwl_kernel
        ks = tl.where(ok, ((k + 1023) << 52).to(tl.float64, bitcast=True), 1.0)
    v = u * in_scale
    v = tl.minimum(tl.maximum(v, in_lo), in_hi)  # integer bounds: the same as rounding first
    v = tl.where(v != v, 0.0, v)
    f = tl.floor(v + 0.5)  # exact: |v| < 2**31 and v has at most 24 significant bits
    half_odd = (f - v == 0.5) & ((f.to(tl.int64) & 1) == 1)
    q = tl.where(half_odd, f - 1.0, f).to(tl.int64)
    idx = tl.zeros_like(q).to(tl.int32)
    for i in range(nb):
        idx += (q >= tl.load(bp_ptr + i)).to(tl.int32)
    acc = tl.load(s_ptr + idx) * q
    if PSHIFT > 0:
        acc = acc >> PSHIFT
    acc = acc + tl.load(t_ptr + idx)
    if OSHIFT > 0:
        acc = (acc + (1 << (OSHIFT - 1))) >> OSHIFT
    amax = (1 << (OUT_BITS - 1)) - 1
    acc = tl.minimum(tl.maximum(acc, -amax - 1), amax)
    y = (acc.to(tl.float64) * out_scale * ks).to(tl.float32)
    if SCALED:
        if ODD:
            y = tl.where(x < 0.0, -y, y)
        else:
            y = tl.where(x < 0.0, float("nan"), y)
        y = tl.where(x == 0.0, tl.where(x.to(tl.int32, bitcast=True) < 0, float("-inf"), float("inf")), y)  # 1/-0 = -inf
    y = tl.where(x == float("inf"), lim_hi, y)
    y = tl.where(x == float("-inf"), lim_lo, y)
    y = tl.where(x != x, x, y)
    tl.store(y_ptr + offs, y, mask=live)
