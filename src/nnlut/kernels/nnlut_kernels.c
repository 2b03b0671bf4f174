/* nnlut fused CPU kernels: piecewise-linear table evaluation in one pass over memory.
 *
 * Compiled at first use by nnlut.kernels._cpu with -O3 -march=native -ffp-contract=off
 * -fopenmp. -ffp-contract=off keeps "s*x + t" as a rounded multiply then a rounded add, so
 * results are bit-identical to nnlut's reference evaluation (torch: s[idx] * x + t[idx]).
 *
 * The segment index is idx = #{j : x >= bp[j]} (torch.searchsorted with right=True). With
 * AVX-512 and up to 64 entries it is a binary search in registers (below); otherwise a
 * branch-free compare-and-count that the compiler vectorises, or, above COUNT_MAX
 * breakpoints, a scalar binary search.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define COUNT_MAX 64
#define BLOCK 256

typedef struct {
    int32_t nb;          /* breakpoints (entries - 1) */
    int32_t clamp_lo, clamp_hi;
    int32_t scaling;     /* 0 none, 1 paper, 2 full */
    int32_t q;           /* period = 2**q */
    int32_t shift;       /* output exponent change per period */
    int32_t odd;         /* negative inputs: 1 -> -f(-x), 0 -> NaN */
    int32_t pad;
    float lo, hi, lim_lo, lim_hi;
    const float *bp, *s, *t;
} pwl32_t;

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* 2**k as a float, exact for -149 <= k <= 127 (0 below, inf above), like torch.exp2 */
static inline float pow2i(int k) {
    if (k >= -126) return k > 127 ? INFINITY : u2f((uint32_t)(k + 127) << 23);
    if (k >= -149) return u2f(1u << (k + 149));
    return 0.0f;
}

/* 2**k as a double, with k saturated to [-1022, 1023]: a float32 (or an INT16 core value)
 * times 2**k, rounded to float32, is then still exact: beyond those bounds it is inf or 0
 * either way */
static inline double pow2d(int k) {
    k = k < -1022 ? -1022 : (k > 1023 ? 1023 : k);
    uint64_t u = (uint64_t)(k + 1023) << 52;
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static inline int floordiv(int a, int q) { int d = a / q; return (a % q != 0 && ((a < 0) != (q < 0))) ? d - 1 : d; }

static inline int seg_index(const pwl32_t *p, float u) {
    int nb = p->nb;
    if (nb <= COUNT_MAX) {
        int idx = 0;
        for (int j = 0; j < nb; ++j) idx += (u >= p->bp[j]);
        return idx;
    }
    int lo = 0, n = nb;           /* first j with bp[j] > u */
    while (n > 0) {
        int half = n >> 1;
        int go = (p->bp[lo + half] <= u);
        lo = go ? lo + half + 1 : lo;
        n = go ? n - half - 1 : half;
    }
    return lo;
}

/* unscaled tables: clamp, search, multiply-add, limits */
static void pwl_plain_block_generic(const pwl32_t *p, const float *x, float *y, int64_t n) {
    int idx[BLOCK];
    for (int64_t b = 0; b < n; b += BLOCK) {
        int m = (int)((n - b) < BLOCK ? (n - b) : BLOCK);
        const float *xb = x + b;
        float *yb = y + b;
        float ub[BLOCK];
        for (int e = 0; e < m; ++e) {
            float u = xb[e];
            u = (p->clamp_lo && u < p->lo) ? p->lo : u;
            u = (p->clamp_hi && u > p->hi) ? p->hi : u;
            ub[e] = u;
            idx[e] = 0;
        }
        if (p->nb <= COUNT_MAX) {
            for (int j = 0; j < p->nb; ++j) {
                float d = p->bp[j];
                for (int e = 0; e < m; ++e) idx[e] += (ub[e] >= d);
            }
        } else {
            for (int e = 0; e < m; ++e) idx[e] = seg_index(p, ub[e]);
        }
        for (int e = 0; e < m; ++e) {
            float v = p->s[idx[e]] * ub[e];
            v = v + p->t[idx[e]];
            float xv = xb[e];
            v = (xv == INFINITY) ? p->lim_hi : v;
            v = (xv == -INFINITY) ? p->lim_lo : v;
            yb[e] = v;
        }
    }
}

#if defined(__AVX512F__)
/* Up to 64 entries. Slopes, intercepts and breakpoints live in registers; the segment index
 * is a branch-free binary search: with the breakpoints padded to 16, 32 or 64 by +inf,
 * idx = #{j : u >= bp[j]} in 4, 5 or 6 compare-and-add steps, each reading its probe
 * breakpoint with a permute (with 64 entries, two permutes and a select). The gather of
 * slope and intercept is a permute too. */
typedef struct {
    __m512 s0, s1, t0, t1, b0, b1;
    __m512 s2, s3, t2, t3, b2, b3, b31;   /* entries 32..63 and breakpoint 31, for up to 64 entries */
    int wide, w64;
    /* direct path for range-reduced tables (see scaled_direct_prep) */
    int direct, steps, q;
    __m512i cell_base, cell_base1, xlo, xspan, kscale;
} pwlregs_t;

static void scaled_direct_prep(const pwl32_t *p, pwlregs_t *r);

static inline void pwl_regs(const pwl32_t *p, pwlregs_t *r) {
    float sb[64], tb[64], bb[64];
    int ne = p->nb + 1;
    for (int i = 0; i < 64; ++i) {
        sb[i] = p->s[i < ne ? i : ne - 1];
        tb[i] = p->t[i < ne ? i : ne - 1];
        bb[i] = i < p->nb ? p->bp[i] : INFINITY;
    }
    r->s0 = _mm512_loadu_ps(sb); r->s1 = _mm512_loadu_ps(sb + 16);
    r->t0 = _mm512_loadu_ps(tb); r->t1 = _mm512_loadu_ps(tb + 16);
    r->b0 = _mm512_loadu_ps(bb); r->b1 = _mm512_loadu_ps(bb + 16);
    r->s2 = _mm512_loadu_ps(sb + 32); r->s3 = _mm512_loadu_ps(sb + 48);
    r->t2 = _mm512_loadu_ps(tb + 32); r->t3 = _mm512_loadu_ps(tb + 48);
    r->b2 = _mm512_loadu_ps(bb + 32); r->b3 = _mm512_loadu_ps(bb + 48);
    r->b31 = _mm512_set1_ps(bb[31]);
    r->wide = p->nb > 15;
    r->w64 = p->nb > 31;
    scaled_direct_prep(p, r);
}

/* Range-reduced tables (period 2**q, q = 1 or 2) have a shorter exact path for positive
 * normal inputs whose result stays normal. The reduced input u in [1, 2**q) is the input's
 * mantissa with a fixed exponent, so five of its bits (the top mantissa bits, and for q = 2
 * the exponent's low bit) split [1, 2**q) into 32 cells. A table of each cell's first segment
 * replaces most of the binary search: idx = base[cell], then one compare per breakpoint that
 * can fall inside a cell. The output scaling 2**(j * shift) is an integer add to the exponent
 * field, exact because the window below keeps every result normal. Inputs outside the window
 * (zero, negative, subnormal, inf, NaN, or an exponent whose result would leave the normal
 * range) take the general path, vector by vector. */
static void scaled_direct_prep(const pwl32_t *p, pwlregs_t *r) {
    r->direct = 0;
    if (p->scaling == 0 || (p->q != 1 && p->q != 2) || p->nb > 31) return;
    const int q = p->q, w = 17 + q;
    const float P = (float)(1 << q);
    if ((p->clamp_lo && p->lo > 1.0f) || (p->clamp_hi && p->hi < P)) return;   /* a clamp would act */
    int32_t base[32];
    int steps = 0;
    for (int c = 0; c < 32; ++c) {
        uint32_t b0 = (q == 1 || c >= 16) ? 0x3f800000u : 0x40000000u;
        uint32_t cc = q == 2 ? (uint32_t)(c & 15) : (uint32_t)c;
        float first = u2f(b0 + (cc << w)), last = u2f(b0 + ((cc + 1) << w) - 1u);
        int i0 = 0, i1 = 0;
        for (int j = 0; j < p->nb; ++j) { i0 += p->bp[j] <= first; i1 += p->bp[j] <= last; }
        base[c] = i0;
        steps = i1 - i0 > steps ? i1 - i0 : steps;
    }
    if (steps > 3) return;   /* the binary search is as short */
    /* smallest and largest |s*u + t| over [1, P): each segment's value is monotone in u */
    float amin = INFINITY, amax = 0.0f;
    for (int i = 0; i <= p->nb; ++i) {
        float a = i == 0 ? 1.0f : (p->bp[i - 1] > 1.0f ? p->bp[i - 1] : 1.0f);
        float e = i == p->nb ? P : (p->bp[i] < P ? p->bp[i] : P);
        if (!(a < e)) continue;
        e = u2f(f2u(e) - 1u);   /* the largest float below the segment's end */
        float va = p->s[i] * a, ve = p->s[i] * e;
        va = va + p->t[i];
        ve = ve + p->t[i];
        if (!isfinite(va) || !isfinite(ve) || va == 0.0f || ve == 0.0f || ((va < 0.0f) != (ve < 0.0f))) return;
        float lo = fabsf(va) < fabsf(ve) ? fabsf(va) : fabsf(ve), hi = fabsf(va) < fabsf(ve) ? fabsf(ve) : fabsf(va);
        amin = lo < amin ? lo : amin;
        amax = hi > amax ? hi : amax;
    }
    int emin = (int)(f2u(amin) >> 23), emax = (int)(f2u(amax) >> 23);
    if (emin < 1 || emax > 254) return;
    /* inputs 2**E with E in [-126, 127]; j = floor(E / q); keep j with a normal result */
    int jlo = floordiv(-126, q), jhi = floordiv(127, q), alo = 1, ahi = 0;
    if (p->scaling == 1 && jhi > 0) jhi = 0;   /* paper scaling feeds x >= 2**q to the table as it is */
    for (int j = jlo; j <= jhi; ++j) {
        int k = j * p->shift;
        if (emin + k >= 1 && emax + k <= 254) {
            if (alo > ahi) alo = ahi = j;
            else ahi = j;
        }
    }
    if (alo > ahi) return;
    int Elo = q * alo > -126 ? q * alo : -126, Ehi = q * ahi + q - 1 < 127 ? q * ahi + q - 1 : 127;
    r->cell_base = _mm512_loadu_si512(base);
    r->cell_base1 = _mm512_loadu_si512(base + 16);
    r->xlo = _mm512_set1_epi32((int32_t)((uint32_t)(Elo + 127) << 23));
    r->xspan = _mm512_set1_epi32((int32_t)((uint32_t)(Ehi - Elo + 1) << 23));
    r->kscale = _mm512_set1_epi32((int32_t)((uint32_t)p->shift << 23));
    r->steps = steps;
    r->q = q;
    r->direct = 1;
}

/* the direct path for 16 inputs inside the window: bit-identical to pwl_vec there. Called
 * with constant q, steps and wide (see DIRECT_LOOP), so each case compiles to its own loop. */
static inline __attribute__((always_inline)) __m512 pwl_direct(const pwlregs_t *r, __m512i xi, const int q,
                                                               const int steps, const int wide) {
    __m512i ub;   /* the reduced input's bits: mantissa with exponent 0 (or 1 for odd E, q = 2) */
    if (q == 2)
        ub = _mm512_add_epi32(_mm512_and_si512(_mm512_xor_si512(xi, _mm512_set1_epi32(0x00800000)), _mm512_set1_epi32(0x00ffffff)),
                              _mm512_set1_epi32(0x3f800000));
    else
        ub = _mm512_or_si512(_mm512_and_si512(xi, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f800000));
    __m512 u = _mm512_castsi512_ps(ub);
    __m512i idx = _mm512_permutex2var_epi32(r->cell_base, _mm512_srli_epi32(ub, 17 + q), r->cell_base1);
    __m512 v;
    if (wide) {
        for (int k = 0; k < steps; ++k) {
            __m512 b = _mm512_permutex2var_ps(r->b0, idx, r->b1);
            idx = _mm512_mask_add_epi32(idx, _mm512_cmp_ps_mask(u, b, _CMP_GE_OQ), idx, _mm512_set1_epi32(1));
        }
        v = _mm512_add_ps(_mm512_mul_ps(_mm512_permutex2var_ps(r->s0, idx, r->s1), u), _mm512_permutex2var_ps(r->t0, idx, r->t1));
    } else {
        for (int k = 0; k < steps; ++k) {
            __m512 b = _mm512_permutexvar_ps(idx, r->b0);
            idx = _mm512_mask_add_epi32(idx, _mm512_cmp_ps_mask(u, b, _CMP_GE_OQ), idx, _mm512_set1_epi32(1));
        }
        v = _mm512_add_ps(_mm512_mul_ps(_mm512_permutexvar_ps(idx, r->s0), u), _mm512_permutexvar_ps(idx, r->t0));
    }
    /* j = floor(E / q), E = exponent field - 127; the result's exponent field gains j * shift */
    __m512i j = _mm512_srai_epi32(_mm512_sub_epi32(xi, _mm512_set1_epi32(127 << 23)), 22 + q);
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(v), _mm512_mullo_epi32(j, r->kscale)));
}

static inline int in_direct_window(const pwlregs_t *r, __m512i xi) {
    return _mm512_cmplt_epu32_mask(_mm512_sub_epi32(xi, r->xlo), r->xspan) == (__mmask16)0xffff;
}

/* s[idx] * u + t[idx] (a rounded multiply, then a rounded add) */
static inline __m512 pwl_core16(const pwlregs_t *r, __m512 u) {
    __m512i idx = _mm512_setzero_si512();
    if (r->w64) {
        /* breakpoint 31 decides the top bit of the index; each later probe reads its breakpoint
         * from the half its index falls in (two permutes and a select, per lane) */
        const __m512i top = _mm512_set1_epi32(32);
        idx = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(u, r->b31, _CMP_GE_OQ), top);
        for (int step = 16; step >= 1; step >>= 1) {
            __m512i probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
            __mmask16 hi = _mm512_test_epi32_mask(probe, top);
            __m512 b = _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(r->b0, probe, r->b1),
                                            _mm512_permutex2var_ps(r->b2, probe, r->b3));
            idx = _mm512_mask_add_epi32(idx, _mm512_cmp_ps_mask(u, b, _CMP_GE_OQ), idx, _mm512_set1_epi32(step));
        }
        __mmask16 hi = _mm512_test_epi32_mask(idx, top);
        __m512 sv = _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(r->s0, idx, r->s1), _mm512_permutex2var_ps(r->s2, idx, r->s3));
        __m512 tv = _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(r->t0, idx, r->t1), _mm512_permutex2var_ps(r->t2, idx, r->t3));
        return _mm512_add_ps(_mm512_mul_ps(sv, u), tv);
    }
    if (r->wide) {
        for (int step = 16; step >= 1; step >>= 1) {
            __m512i probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
            __m512 b = _mm512_permutex2var_ps(r->b0, probe, r->b1);
            idx = _mm512_mask_add_epi32(idx, _mm512_cmp_ps_mask(u, b, _CMP_GE_OQ), idx, _mm512_set1_epi32(step));
        }
        __m512 sv = _mm512_permutex2var_ps(r->s0, idx, r->s1);
        __m512 tv = _mm512_permutex2var_ps(r->t0, idx, r->t1);
        return _mm512_add_ps(_mm512_mul_ps(sv, u), tv);
    }
    for (int step = 8; step >= 1; step >>= 1) {
        __m512i probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
        __m512 b = _mm512_permutexvar_ps(probe, r->b0);
        idx = _mm512_mask_add_epi32(idx, _mm512_cmp_ps_mask(u, b, _CMP_GE_OQ), idx, _mm512_set1_epi32(step));
    }
    return _mm512_add_ps(_mm512_mul_ps(_mm512_permutexvar_ps(idx, r->s0), u), _mm512_permutexvar_ps(idx, r->t0));
}

/* saturation at the table's edges (clo, chi: whether each edge clamps) */
static inline __attribute__((always_inline)) __m512 clamp16(__m512 u, __m512 lo, __m512 hi, const int clo, const int chi) {
    if (clo) u = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(u, lo, _CMP_LT_OQ), u, lo);
    if (chi) u = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(u, hi, _CMP_GT_OQ), u, hi);
    return u;
}

static inline __m512 clamp_edges(const pwl32_t *p, __m512 u) {
    return clamp16(u, _mm512_set1_ps(p->lo), _mm512_set1_ps(p->hi), p->clamp_lo, p->clamp_hi);
}

/* the table's values at x = +inf and x = -inf */
static inline __m512 limits16(__m512 v, __m512 xv, float lim_lo, float lim_hi) {
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xv, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ), v, _mm512_set1_ps(lim_hi));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xv, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), v, _mm512_set1_ps(lim_lo));
}

/* Range reduction (scaling 1 paper, 2 full; period 2**q, q = 1 or 2): the reduced input
 * u = |x| * 2**(-q j) in [1, 2**q), or |x| itself where paper mode caps j at 0; *jf = j.
 * Exponent arithmetic in float (all values are small integers, so exact), subnormals too.
 * (Negative inputs of a table that is not odd give NaN in scaled16, whatever u is.) */
static inline __m512 reduce16(__m512 xv, int scaling, int q, __m512 *jf) {
    __m512 ax = _mm512_abs_ps(xv);
    __m512 ef = _mm512_getexp_ps(ax);                                          /* floor(log2 |x|) */
    __m512 m = _mm512_getmant_ps(ax, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);   /* in [1, 2) */
    __m512 j = q == 2 ? _mm512_roundscale_ps(_mm512_mul_ps(ef, _mm512_set1_ps(0.5f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC) : ef;
    __mmask16 capped = 0;
    if (scaling == 1) {
        capped = _mm512_cmp_ps_mask(j, _mm512_setzero_ps(), _CMP_GT_OQ);
        j = _mm512_mask_blend_ps(capped, j, _mm512_setzero_ps());
    }
    *jf = j;
    __m512 rf = _mm512_sub_ps(ef, _mm512_mul_ps(j, _mm512_set1_ps((float)q)));
    return _mm512_mask_blend_ps(capped, _mm512_scalef_ps(m, rf), ax);
}

/* undoes reduce16 on the table's value v: v * 2**(j * shift) rounded once, odd symmetry or
 * NaN below zero, inf at zero, NaN inputs kept */
static inline __m512 scaled16(__m512 v, __m512 xv, __m512 jf, int shift, int odd) {
    v = _mm512_scalef_ps(v, _mm512_mul_ps(jf, _mm512_set1_ps((float)shift)));
    __mmask16 neg = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_LT_OQ);
    v = odd ? _mm512_mask_sub_ps(v, neg, _mm512_setzero_ps(), v) : _mm512_mask_blend_ps(neg, v, _mm512_set1_ps(NAN));
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_EQ_OQ), v, _mm512_set1_ps(INFINITY));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xv, xv, _CMP_UNORD_Q), v, xv);
}

/* one vector of 16 inputs through the whole table: scaling, clamp, search, multiply-add,
 * output scaling and special values (the reference evaluation's semantics) */
static inline __m512 pwl_vec(const pwl32_t *p, const pwlregs_t *r, __m512 xv) {
    __m512 v;
    if (p->scaling == 0) {
        v = pwl_core16(r, clamp_edges(p, xv));
    } else {
        __m512 jf;
        v = pwl_core16(r, clamp_edges(p, reduce16(xv, p->scaling, p->q, &jf)));
        v = scaled16(v, xv, jf, p->shift, p->odd);
    }
    return limits16(v, xv, p->lim_lo, p->lim_hi);
}

/* out of line, so that the direct loop keeps its constants in registers */
static __attribute__((noinline)) __m512 pwl_vec_outlined(const pwl32_t *p, const pwlregs_t *r, __m512 xv) {
    return pwl_vec(p, r, xv);
}

/* whole vectors inside the direct window take pwl_direct, the rest pwl_vec; returns how many
 * leading elements (a multiple of 16) were done */
static inline __attribute__((always_inline)) int64_t direct_loop(const pwl32_t *p, const pwlregs_t *r, const float *x,
                                                                 float *y, int64_t n, const int q, const int steps,
                                                                 const int wide) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        __m512i xi = _mm512_castps_si512(xv);
        _mm512_storeu_ps(y + i, in_direct_window(r, xi) ? pwl_direct(r, xi, q, steps, wide) : pwl_vec_outlined(p, r, xv));
    }
    return i;
}

/* an unscaled table on 16 inputs: pwl_vec's steps, with the clamps constant (lo and hi held
 * by the caller's loop) and the limits at +-inf behind one class test */
static inline __attribute__((always_inline)) __m512 plain16(const pwl32_t *p, const pwlregs_t *r, __m512 xv, __m512 lo,
                                                            __m512 hi, const int clo, const int chi) {
    __m512 v = pwl_core16(r, clamp16(xv, lo, hi, clo, chi));
    return _mm512_fpclass_ps_mask(xv, 0x18) ? limits16(v, xv, p->lim_lo, p->lim_hi) : v;
}

/* unscaled tables over whole vectors with plain16 */
static inline __attribute__((always_inline)) int64_t plain_loop(const pwl32_t *p, const pwlregs_t *r, const float *x,
                                                                float *y, int64_t n, const int clo, const int chi) {
    const __m512 lo = _mm512_set1_ps(p->lo), hi = _mm512_set1_ps(p->hi);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(y + i, plain16(p, r, _mm512_loadu_ps(x + i), lo, hi, clo, chi));
    }
    return i;
}

#define PLAIN_CASE(L, H) \
    if (p->clamp_lo == L && p->clamp_hi == H) done = plain_loop(p, &r, x, y, n, L, H); else

#define DIRECT_CASE(Q, S, W) \
    if (r.q == Q && r.steps == S && r.wide == W) done = direct_loop(p, &r, x, y, n, Q, S, W); else

static void pwl_block_avx512(const pwl32_t *p, const float *x, float *y, int64_t n) {
    pwlregs_t r;
    pwl_regs(p, &r);
    int64_t done = 0;
    if (r.direct) {
        DIRECT_CASE(2, 1, 0) DIRECT_CASE(2, 2, 0) DIRECT_CASE(2, 3, 0) DIRECT_CASE(2, 1, 1) DIRECT_CASE(2, 2, 1)
        DIRECT_CASE(2, 3, 1) DIRECT_CASE(1, 1, 0) DIRECT_CASE(1, 2, 0) DIRECT_CASE(1, 3, 0) DIRECT_CASE(1, 1, 1)
        DIRECT_CASE(1, 2, 1) DIRECT_CASE(1, 3, 1) {}
    } else if (p->scaling == 0) {
        PLAIN_CASE(0, 0) PLAIN_CASE(1, 0) PLAIN_CASE(0, 1) PLAIN_CASE(1, 1) {}
    }
    for (int64_t i = done; i < n; i += 16) {
        int64_t rem = n - i;
        __mmask16 live = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        _mm512_mask_storeu_ps(y + i, live, pwl_vec(p, &r, _mm512_maskz_loadu_ps(live, x + i)));
    }
}

/* bfloat16 in and out: widen by a shift, round back to nearest even (NaN kept quiet) */
static void pwl_block_avx512_bf16(const pwl32_t *p, const uint16_t *x, uint16_t *y, int64_t n) {
    pwlregs_t r;
    pwl_regs(p, &r);
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    for (int64_t i = 0; i < n; i += 16) {
        int64_t rem = n - i;
        __mmask16 live = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        __m256i h = _mm256_maskz_loadu_epi16(live, x + i);
        __m512i xi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
        __m512 v = (r.direct && in_direct_window(&r, xi)) ? pwl_direct(&r, xi, r.q, r.steps, r.wide)
                                                           : pwl_vec(p, &r, _mm512_castsi512_ps(xi));
        __m512i u = _mm512_castps_si512(v);
        __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, bias),
                                                             _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
        __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
        __mmask16 isnan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        __m512i out = _mm512_mask_blend_epi32(isnan, rounded, quiet);
        _mm256_mask_storeu_epi16(y + i, live, _mm512_cvtepi32_epi16(out));
    }
}
#endif

static void pwl_plain_block(const pwl32_t *p, const float *x, float *y, int64_t n) {
#if defined(__AVX512F__)
    if (p->nb <= 63 && p->scaling == 0) { pwl_block_avx512(p, x, y, n); return; }
#endif
    pwl_plain_block_generic(p, x, y, n);
}

/* scaled tables (reciprocal, rsqrt): exponent arithmetic around the table */
static inline float pwl_scaled_one(const pwl32_t *p, float x) {
    if (isnan(x)) return x;
    if (x == INFINITY) return p->lim_hi;
    if (x == -INFINITY) return p->lim_lo;
    if (x == 0.0f) return INFINITY;
    if (x < 0.0f && !p->odd) return NAN;
    float ax = fabsf(x);
    uint32_t bits = f2u(ax);
    int sub = (bits & 0x7f800000u) == 0;
    if (sub) { ax = ax * 18446744073709551616.0f; bits = f2u(ax); }   /* * 2**64, exact */
    int E = (int)((bits >> 23) & 0xff) - 127 - (sub ? 64 : 0);
    int j = floordiv(E, p->q);
    if (p->scaling == 1 && j > 0) j = 0;
    /* reduced input: mantissa in [1, 2) times 2**(E - q j) (in [1, P), or ax itself when j = 0) */
    float m1 = u2f((bits & 0x007fffffu) | 0x3f800000u);
    float u = m1 * pow2i(E - p->q * j);
    u = (p->clamp_lo && u < p->lo) ? p->lo : u;
    u = (p->clamp_hi && u > p->hi) ? p->hi : u;
    int i = seg_index(p, u);
    float v = p->s[i] * u;
    v = v + p->t[i];
    v = (float)((double)v * pow2d(j * p->shift));   /* exact in double, rounded once */
    return (x < 0.0f) ? -v : v;
}

static inline float pow2n(int k) { return u2f((uint32_t)(k + 127) << 23); }   /* -126 <= k <= 127 */

/* the same as pwl_scaled_one, branch-free over a block so that it vectorises (q = 1 or 2) */
static void pwl_scaled_block(const pwl32_t *p, const float *x, float *y, int64_t n) {
    const int q = p->q, qs = q == 2 ? 1 : 0, paper = p->scaling == 1;
    float ub[BLOCK];
    int kb[BLOCK];
    pwl32_t plain = *p;
    plain.scaling = 0;
    plain.lim_lo = -INFINITY; plain.lim_hi = INFINITY;   /* specials are handled below */
    for (int64_t b = 0; b < n; b += BLOCK) {
        int m = (int)((n - b) < BLOCK ? (n - b) : BLOCK);
        const float *xb = x + b;
        for (int e = 0; e < m; ++e) {
            float xv = xb[e];
            float ax = fabsf(xv);
            uint32_t bits = f2u(ax);
            int sub = (bits & 0x7f800000u) == 0;
            float ax2 = sub ? ax * 18446744073709551616.0f : ax;
            uint32_t bits2 = f2u(ax2);
            int E = (int)((bits2 >> 23) & 0xff) - 127 - (sub ? 64 : 0);
            int j = E >> qs;                      /* floor(E / q) for q in {1, 2} */
            int capped = paper && j > 0;
            j = capped ? 0 : j;
            float m1 = u2f((bits2 & 0x007fffffu) | 0x3f800000u);
            int r = E - q * j;                    /* in [0, q-1] unless capped */
            float u = capped ? ax : m1 * pow2n(r < 127 ? r : 0);
            ub[e] = (isfinite(xv) && xv != 0.0f) ? u : 1.0f;
            kb[e] = j * p->shift;
        }
        pwl_plain_block(&plain, ub, y + b, m);
        for (int e = 0; e < m; ++e) {
            float xv = xb[e];
            float v = (float)((double)y[b + e] * pow2d(kb[e]));   /* exact in double, rounded once */
            v = (xv < 0.0f) ? (p->odd ? -v : NAN) : v;
            v = (xv == 0.0f) ? INFINITY : v;
            v = (xv == INFINITY) ? p->lim_hi : v;
            v = (xv == -INFINITY) ? p->lim_lo : v;
            v = isnan(xv) ? xv : v;
            y[b + e] = v;
        }
    }
}

static void pwl_eval(const pwl32_t *p, const float *x, float *y, int64_t n) {
#if defined(__AVX512F__)
    if (p->nb <= 63 && (p->q == 1 || p->q == 2)) { pwl_block_avx512(p, x, y, n); return; }
#endif
    if (p->scaling == 0) pwl_plain_block(p, x, y, n);
    else if (p->q == 1 || p->q == 2) pwl_scaled_block(p, x, y, n);
    else for (int64_t i = 0; i < n; ++i) y[i] = pwl_scaled_one(p, x[i]);
}

/* An output of 32 MiB or more is fresh memory (glibc maps blocks that large on their own, and
 * unmaps them on free) that the kernel is about to fill. Asking for transparent huge pages
 * before the first touch makes that touch take one page fault per 2 MiB instead of one per
 * 4 KiB, which at 64 MiB costs more than the table itself. Smaller outputs may be reused heap
 * memory, already mapped, and are left alone. A hint only: where THP is off or the call
 * fails, the pages are ordinary ones and the values are the same. */
static void prefer_huge_pages(void *y, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (bytes < (int64_t)(16 * huge)) return;
    uintptr_t a = ((uintptr_t)y + huge - 1) & ~(huge - 1), e = ((uintptr_t)y + (uintptr_t)bytes) & ~(huge - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)y; (void)bytes;
#endif
}

/* y = table(x) for n float32 values, using up to `threads` OpenMP threads */
void nnlut_pwl_f32(const pwl32_t *p, const float *x, float *y, int64_t n, int threads) {
    const int64_t chunk = 1 << 15;
    prefer_huge_pages(y, n * 4);
    int64_t nchunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for num_threads(threads) schedule(static) if (nchunks > 1)
    for (int64_t c = 0; c < nchunks; ++c) {
        int64_t b = c * chunk;
        int64_t m = (n - b) < chunk ? (n - b) : chunk;
        pwl_eval(p, x + b, y + b, m);
    }
}

static inline float bf2f(uint16_t h) { return u2f((uint32_t)h << 16); }
/* float -> bfloat16, round to nearest even, NaN stays NaN (as torch converts) */
static inline uint16_t f2bf(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* y = table(x) for n bfloat16 values: computed in float32, rounded once to bfloat16 */
void nnlut_pwl_bf16(const pwl32_t *p, const uint16_t *x, uint16_t *y, int64_t n, int threads) {
    const int64_t chunk = 1 << 15;
    prefer_huge_pages(y, n * 2);
    int64_t nchunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for num_threads(threads) schedule(static) if (nchunks > 1)
    for (int64_t c = 0; c < nchunks; ++c) {
        float xb[BLOCK], yb[BLOCK];
        int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
#if defined(__AVX512F__)
        if (p->nb <= 63 && (p->scaling == 0 || p->q == 1 || p->q == 2)) {
            pwl_block_avx512_bf16(p, x + c * chunk, y + c * chunk, end - c * chunk);
            continue;
        }
#endif
        for (int64_t b = c * chunk; b < end; b += BLOCK) {
            int m = (int)((end - b) < BLOCK ? (end - b) : BLOCK);
            for (int e = 0; e < m; ++e) xb[e] = bf2f(x[b + e]);
            pwl_eval(p, xb, yb, m);
            for (int e = 0; e < m; ++e) y[b + e] = f2bf(yb[e]);
        }
    }
}

/* sum of n floats in double, in 8 interleaved partial sums (a fixed order, so results do not
 * depend on the thread count; the compiler vectorises the lanes) */
static inline double sum8(const float *v, int64_t n, int squares) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; ++l) {
            double d = (double)v[k + l];
            acc[l] += squares ? d * d : d;
        }
    double tail = 0.0;
    for (; k < n; ++k) {
        double d = (double)v[k];
        tail += squares ? d * d : d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

#if defined(__AVX512F__)
/* exp table and row sum in one pass over y[0..cols) (overwritten with exp(y - mx)), the
 * sum in 16 double lanes (a fixed order); the table's clamps are constants (plain16) */
static inline __attribute__((always_inline)) double exp_row(const pwl32_t *pe, const pwlregs_t *re, float *yr,
                                                            int64_t cols, float mx, const int clo, const int chi) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    const __m512 mxv = _mm512_set1_ps(mx), lo = _mm512_set1_ps(pe->lo), hi = _mm512_set1_ps(pe->hi);
    for (int64_t j = 0; j < cols; j += 16) {
        int64_t rem = cols - j;
        __mmask16 live = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        __m512 z = _mm512_sub_ps(_mm512_maskz_loadu_ps(live, yr + j), mxv);   /* -inf: a masked score */
        __m512 v = _mm512_maskz_mov_ps(live, plain16(pe, re, z, lo, hi, clo, chi));
        _mm512_mask_storeu_ps(yr + j, live, v);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}
#endif

/* Attention softmax: y = softmax_lut(x * scale + mask) for rows of `cols` scores. Rows are
 * ordered (batch, head, query); the additive mask is read at
 * mask[b * msb + h * msh + q * msq + k * msk] (strides in elements, 0 to broadcast), or not at
 * all when mask is NULL. The row max is exact in any order; the row sum is accumulated in
 * double in 8 interleaved partial sums (a fixed order), then rounded to float. */
void nnlut_attn_softmax_f32(const pwl32_t *pe, const pwl32_t *pr, const float *x, float *y, int64_t batch,
                            int64_t heads, int64_t queries, int64_t cols, float scale, const float *mask,
                            int64_t msb, int64_t msh, int64_t msq, int64_t msk, int threads) {
    int64_t rows = batch * heads * queries;
#if defined(__AVX512F__)
    pwlregs_t re;   /* the exp table in registers, built once for every row */
    const int vec_exp = pe->nb <= 63 && pe->scaling == 0;
    if (vec_exp) pwl_regs(pe, &re);
#endif
    #pragma omp parallel for num_threads(threads) schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; ++r) {
        int64_t b = r / (heads * queries), h = (r / queries) % heads, q = r % queries;
        const float *xr = x + r * cols;
        const float *mr = mask ? mask + b * msb + h * msh + q * msq : 0;
        float *yr = y + r * cols;
        if (!mr) for (int64_t k = 0; k < cols; ++k) yr[k] = xr[k] * scale;
        else if (msk == 1) for (int64_t k = 0; k < cols; ++k) yr[k] = xr[k] * scale + mr[k];
        else for (int64_t k = 0; k < cols; ++k) yr[k] = xr[k] * scale + mr[k * msk];
        /* the row max (exact in any order); a NaN anywhere makes the row NaN, as in the reference */
        float mx = -INFINITY;
        int any_nan = 0;
        int64_t k = 0;
#if defined(__AVX512F__)
        __m512 mv = _mm512_set1_ps(-INFINITY);
        __mmask16 nans = 0;
        for (; k + 16 <= cols; k += 16) {
            __m512 v = _mm512_loadu_ps(yr + k);
            nans |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            mv = _mm512_max_ps(mv, v);   /* NaN lanes are caught by the mask above */
        }
        mx = _mm512_reduce_max_ps(mv);
        any_nan = nans != 0;
#else
        float lane[16];
        int nan_lane[16];
        for (int l = 0; l < 16; ++l) { lane[l] = -INFINITY; nan_lane[l] = 0; }
        for (; k + 16 <= cols; k += 16)
            for (int l = 0; l < 16; ++l) {
                float v = yr[k + l];
                nan_lane[l] |= (v != v);
                lane[l] = v > lane[l] ? v : lane[l];
            }
        for (int l = 0; l < 16; ++l) { mx = lane[l] > mx ? lane[l] : mx; any_nan |= nan_lane[l]; }
#endif
        for (; k < cols; ++k) { float v = yr[k]; any_nan |= (v != v); mx = v > mx ? v : mx; }
        if (any_nan) mx = NAN;
        double sum;
#if defined(__AVX512F__)
        if (vec_exp) {
            if (pe->clamp_lo && pe->clamp_hi) sum = exp_row(pe, &re, yr, cols, mx, 1, 1);
            else if (pe->clamp_lo) sum = exp_row(pe, &re, yr, cols, mx, 1, 0);
            else if (pe->clamp_hi) sum = exp_row(pe, &re, yr, cols, mx, 0, 1);
            else sum = exp_row(pe, &re, yr, cols, mx, 0, 0);
        } else
#endif
        {
            float zb[BLOCK];
            for (int64_t bb = 0; bb < cols; bb += BLOCK) {
                int64_t m = (cols - bb) < BLOCK ? (cols - bb) : BLOCK;
                for (int64_t e = 0; e < m; ++e) zb[e] = yr[bb + e] - mx;
                pwl_plain_block(pe, zb, yr + bb, m);
            }
            sum = sum8(yr, cols, 0);
        }
        float s1 = (float)sum, inv;
        if (pr->scaling) inv = pwl_scaled_one(pr, s1);
        else pwl_plain_block(pr, &s1, &inv, 1);
        for (int64_t j = 0; j < cols; ++j) yr[j] = yr[j] * inv;
    }
}

/* Row softmax from tables: y = exp(x - max) * reciprocal(sum), rows of `cols` contiguous
 * float32 values. The row sum is accumulated in double, then rounded to float. */
void nnlut_softmax_f32(const pwl32_t *pe, const pwl32_t *pr, const float *x, float *y, int64_t rows,
                       int64_t cols, int threads) {
    nnlut_attn_softmax_f32(pe, pr, x, y, rows, 1, 1, cols, 1.0f, 0, 0, 0, 0, 0, threads);
}

/* LayerNorm over rows of `cols` contiguous float32 values with an rsqrt table. The mean and
 * the variance are accumulated in double and rounded to float; every later step has the
 * reference's float32 roundings: d = x - mean, r = table(var + eps), y = ((d * r) * w) + b.
 * w and b may be NULL. */
void nnlut_layernorm_f32(const pwl32_t *pr, const float *x, const float *w, const float *b, float *y, int64_t rows,
                         int64_t cols, float eps, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mean = (float)(sum8(xr, cols, 0) / (double)cols);
        for (int64_t k = 0; k < cols; ++k) yr[k] = xr[k] - mean;
        float var = (float)(sum8(yr, cols, 1) / (double)cols);
        float v = var + eps, inv;
        if (pr->scaling) inv = pwl_scaled_one(pr, v);
        else pwl_plain_block(pr, &v, &inv, 1);
        if (w && b) for (int64_t k = 0; k < cols; ++k) yr[k] = (yr[k] * inv) * w[k] + b[k];
        else if (w) for (int64_t k = 0; k < cols; ++k) yr[k] = (yr[k] * inv) * w[k];
        else if (b) for (int64_t k = 0; k < cols; ++k) yr[k] = yr[k] * inv + b[k];
        else for (int64_t k = 0; k < cols; ++k) yr[k] = yr[k] * inv;
    }
}

/* ---------------------------------------------------------------- fixed-point tables
 * The integer unit on real inputs, with the semantics of nnlut.fixed.FixedTable: the input is
 * scaled by 2**in_frac in double (exact), rounded half to even, saturated to in_bits; the
 * segment is #{j : bp[j] <= q}; acc = ((s*q) >> pshift) + t, rounded by oshift, saturated to
 * out_bits; the output is acc * 2**-out_frac. Range-reduced tables run the integer core on the
 * reduced input and scale its output by 2**(j * shift) in double. Results are rounded to
 * float32 once. */
typedef struct {
    int32_t nb, scaling, q, shift, odd, pshift, oshift, out_bits;
    int64_t in_lo, in_hi;
    double in_scale, out_scale, lim_lo, lim_hi;
    const int64_t *bp, *s, *t;
    const float *lut;   /* the core's output for every input code (in_bits <= 18), or NULL */
} fix_t;

static inline int64_t fixed_search(const fix_t *p, int64_t q) {   /* #{j : bp[j] <= q} */
    int lo = 0, n = p->nb;
    while (n > 0) {
        int half = n >> 1;
        int go = p->bp[lo + half] <= q;
        lo = go ? lo + half + 1 : lo;
        n = go ? n - half - 1 : half;
    }
    return lo;
}

/* the integer core on input code q, as a real value (exact in float for out_bits <= 24) */
static inline double fixed_core(const fix_t *p, int64_t q, int64_t i) {
    int64_t acc = p->s[i] * q;
    if (p->pshift > 0) acc >>= p->pshift;
    acc += p->t[i];
    if (p->oshift > 0) acc = (acc + ((int64_t)1 << (p->oshift - 1))) >> p->oshift;
    const int64_t amax = ((int64_t)1 << (p->out_bits - 1)) - 1;
    acc = acc > amax ? amax : (acc < -amax - 1 ? -amax - 1 : acc);
    return (double)acc * p->out_scale;
}

/* lut[q - in_lo] = core(q) for every input code: with narrow inputs one load replaces the
 * search and the multiply-add */
void nnlut_fixed_lut(const fix_t *p, float *lut) {
    for (int64_t q = p->in_lo; q <= p->in_hi; ++q) lut[q - p->in_lo] = (float)fixed_core(p, q, fixed_search(p, q));
}

/* a block of up to BLOCK values, in passes that the compiler vectorises */
static void fixed_block(const fix_t *p, const float *x, float *y, int m) {
    double kscale[BLOCK], core[BLOCK];
    int64_t q[BLOCK], idx[BLOCK];
    const double lo = (double)p->in_lo, hi = (double)p->in_hi;
    for (int e = 0; e < m; ++e) {
        double xv = (double)x[e];
        double ks = 1.0, uv = xv;
        if (p->scaling) {
            /* |x| = m2 * 2**E with m2 in [1, 2) (x is a float32, so a normal double);
             * j = floor(E / q), capped at 0 in paper mode; u = m2 * 2**(E - q j) */
            uint64_t bits;
            double ax = fabs(xv);
            memcpy(&bits, &ax, 8);
            int E = (int)((bits >> 52) & 0x7ff) - 1023;
            int j = p->q == 1 ? E : (p->q == 2 ? E >> 1 : floordiv(E, p->q));
            j = (p->scaling == 1 && j > 0) ? 0 : j;
            int r = E - p->q * j;
            uint64_t ub = (bits & 0x000fffffffffffffull) | ((uint64_t)(1023 + (r < 1023 ? r : 0)) << 52);
            double m2;
            memcpy(&m2, &ub, 8);
            int ok = ax != 0.0 && ax <= 3.5e38;   /* zero, inf and NaN are set below */
            uv = ok ? m2 : 1.0;
            ks = ok ? pow2d(j * p->shift) : 1.0;
        }
        double v = uv * p->in_scale;
        v = v != v ? 0.0 : rint(v);
        v = v < lo ? lo : (v > hi ? hi : v);
        q[e] = (int64_t)v;
        kscale[e] = ks;
    }
    if (p->lut) {
        for (int e = 0; e < m; ++e) core[e] = (double)p->lut[q[e] - p->in_lo];
    } else {
        if (p->nb <= COUNT_MAX) {
            for (int e = 0; e < m; ++e) idx[e] = 0;
            for (int j = 0; j < p->nb; ++j) {
                int64_t b = p->bp[j];
                for (int e = 0; e < m; ++e) idx[e] += q[e] >= b;
            }
        } else {
            for (int e = 0; e < m; ++e) idx[e] = fixed_search(p, q[e]);
        }
        for (int e = 0; e < m; ++e) core[e] = fixed_core(p, q[e], idx[e]);
    }
    for (int e = 0; e < m; ++e) {
        double r = core[e] * kscale[e];   /* exact: a power of two */
        float xv = x[e], out = (float)r;
        if (p->scaling) {
            out = xv < 0.0f ? (p->odd ? -out : NAN) : out;
            out = xv == 0.0f ? INFINITY : out;
        }
        out = xv == INFINITY ? (float)p->lim_hi : out;
        out = xv == -INFINITY ? (float)p->lim_lo : out;
        out = xv != xv ? xv : out;
        y[e] = out;
    }
}

#if defined(__AVX512F__)
/* 16 values through a table with an output LUT, in float32: the input code is rint(u * 2**in_frac)
 * (exact in float32: a power-of-two scale, and saturation covers the overflow to inf), the
 * core's value is one gather, and the output scaling is one scalef (a single rounding, as
 * float64 arithmetic rounded to float32). The same steps and special values as pwl_vec. */
static inline __m512 fixed_vec(const fix_t *p, __m512 xv) {
    const __m512 scale = _mm512_set1_ps((float)p->in_scale);
    const __m512 lo = _mm512_set1_ps((float)p->in_lo), hi = _mm512_set1_ps((float)p->in_hi);
    const __m512i off = _mm512_set1_epi32((int32_t)p->in_lo);
    __m512 u = xv, jf = _mm512_setzero_ps();
    if (p->scaling) u = reduce16(xv, p->scaling, p->q, &jf);
    __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(u, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);   /* NaN gives an in-range code; its result is NaN below */
    __m512i code = _mm512_sub_epi32(_mm512_cvtps_epi32(v), off);
    __m512 out = _mm512_i32gather_ps(code, p->lut, 4);
    if (p->scaling) out = scaled16(out, xv, jf, p->shift, p->odd);
    else out = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xv, xv, _CMP_UNORD_Q), out, xv);   /* the gather loses NaN */
    return limits16(out, xv, (float)p->lim_lo, (float)p->lim_hi);
}

static void fixed_block_avx512(const fix_t *p, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        int64_t rem = n - i;
        __mmask16 live = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        _mm512_mask_storeu_ps(y + i, live, fixed_vec(p, _mm512_maskz_loadu_ps(live, x + i)));
    }
}
#endif

void nnlut_fixed_f32(const fix_t *p, const float *x, float *y, int64_t n, int threads) {
    prefer_huge_pages(y, n * 4);
    const int64_t chunk = 1 << 15;
    int64_t nchunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for num_threads(threads) schedule(static) if (nchunks > 1)
    for (int64_t c = 0; c < nchunks; ++c) {
        int64_t b = c * chunk, m = (n - b) < chunk ? (n - b) : chunk;
#if defined(__AVX512F__)
        if (p->lut && (p->scaling == 0 || p->q == 1 || p->q == 2)) {
            fixed_block_avx512(p, x + b, y + b, m);
            continue;
        }
#endif
        for (int64_t k = 0; k < m; k += BLOCK)
            fixed_block(p, x + b + k, y + b + k, (int)((m - k) < BLOCK ? (m - k) : BLOCK));
    }
}

int nnlut_kernels_abi(void) { return 2; }
