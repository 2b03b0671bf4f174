/* segment search and block evaluation of unscaled and range-reduced tables (AVX-512 and portable) */
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
    int direct, steps, q, capped;
    __m512i cell_base, cell_base1, xlo, xspan, kscale, cap_lo, cap_span;
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
    r->capped = 0;
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
    /* paper scaling: finite x >= 2**q is the table's input as it is (j capped at 0, no output
     * scaling), so such lanes take the unscaled steps: clamp, search, multiply-add */
    r->capped = p->scaling == 1;
    r->cap_lo = _mm512_set1_epi32((int32_t)((uint32_t)(127 + q) << 23));
    r->cap_span = _mm512_set1_epi32((int32_t)(0x7f800000u - ((uint32_t)(127 + q) << 23)));
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

static inline __mmask16 direct_lanes(const pwlregs_t *r, __m512i xi) {
    return _mm512_cmplt_epu32_mask(_mm512_sub_epi32(xi, r->xlo), r->xspan);
}

/* lanes of finite x >= 2**q under paper scaling (pwl_vec's value there: the unscaled steps) */
static inline __mmask16 capped_lanes(const pwlregs_t *r, __m512i xi) {
    return _mm512_cmplt_epu32_mask(_mm512_sub_epi32(xi, r->cap_lo), r->cap_span);
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
 * NaN below zero, inf with the zero's sign at zero, NaN inputs kept */
static inline __m512 scaled16(__m512 v, __m512 xv, __m512 jf, int shift, int odd) {
    v = _mm512_scalef_ps(v, _mm512_mul_ps(jf, _mm512_set1_ps((float)shift)));
    __mmask16 neg = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_LT_OQ);
    v = odd ? _mm512_mask_sub_ps(v, neg, _mm512_setzero_ps(), v) : _mm512_mask_blend_ps(neg, v, _mm512_set1_ps(NAN));
    __m512 sinf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_set1_epi32(0x7f800000),
                                                      _mm512_and_si512(_mm512_castps_si512(xv), _mm512_set1_epi32((int)0x80000000u))));
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_EQ_OQ), v, sinf);
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

/* 16 inputs of a table with a direct window: pwl_direct where every lane is inside it; where
 * the other lanes are all capped (paper scaling, x >= 2**q finite), the unscaled steps for
 * those; pwl_vec otherwise. Bit-identical to pwl_vec. */
static inline __attribute__((always_inline)) __m512 direct16(const pwl32_t *p, const pwlregs_t *r, __m512i xi,
                                                            const int q, const int steps, const int wide) {
    __mmask16 dm = direct_lanes(r, xi);
    if (dm == (__mmask16)0xffff) return pwl_direct(r, xi, q, steps, wide);
    if (r->capped) {
        __mmask16 cm = capped_lanes(r, xi);
        if ((__mmask16)(cm | dm) == (__mmask16)0xffff) {
            __m512 c = pwl_core16(r, clamp_edges(p, _mm512_castsi512_ps(xi)));
            return dm ? _mm512_mask_blend_ps(cm, pwl_direct(r, xi, q, steps, wide), c) : c;
        }
    }
    return pwl_vec_outlined(p, r, _mm512_castsi512_ps(xi));
}

/* whole vectors inside the direct window take pwl_direct, the rest pwl_vec; returns how many
 * leading elements (a multiple of 16) were done */
static inline __attribute__((always_inline)) int64_t direct_loop(const pwl32_t *p, const pwlregs_t *r, const float *x,
                                                                 float *y, int64_t n, const int q, const int steps,
                                                                 const int wide) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i xi = _mm512_castps_si512(_mm512_loadu_ps(x + i));
        _mm512_storeu_ps(y + i, direct16(p, r, xi, q, steps, wide));
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
static inline __attribute__((always_inline)) __m512i bf16_widen(__m256i h) {
    return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
}

static inline __attribute__((always_inline)) __m256i bf16_narrow(__m512 v) {
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    __m512i u = _mm512_castps_si512(v);
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, bias),
                                                         _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
    __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    __mmask16 isnan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(isnan, rounded, quiet));
}

/* direct_loop and plain_loop on bfloat16 whole vectors: the same steps between the widening
 * and the rounding, with the search parameters constant */
static inline __attribute__((always_inline)) int64_t direct_loop_bf16(const pwl32_t *p, const pwlregs_t *r,
                                                                      const uint16_t *x, uint16_t *y, int64_t n,
                                                                      const int q, const int steps, const int wide) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i xi = bf16_widen(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm256_storeu_si256((__m256i *)(y + i), bf16_narrow(direct16(p, r, xi, q, steps, wide)));
    }
    return i;
}

static inline __attribute__((always_inline)) int64_t plain_loop_bf16(const pwl32_t *p, const pwlregs_t *r,
                                                                     const uint16_t *x, uint16_t *y, int64_t n,
                                                                     const int clo, const int chi) {
    const __m512 lo = _mm512_set1_ps(p->lo), hi = _mm512_set1_ps(p->hi);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_castsi512_ps(bf16_widen(_mm256_loadu_si256((const __m256i *)(x + i))));
        _mm256_storeu_si256((__m256i *)(y + i), bf16_narrow(plain16(p, r, xv, lo, hi, clo, chi)));
    }
    return i;
}

#define PLAIN_CASE_BF16(L, H) \
    if (p->clamp_lo == L && p->clamp_hi == H) done = plain_loop_bf16(p, &r, x, y, n, L, H); else

#define DIRECT_CASE_BF16(Q, S, W) \
    if (r.q == Q && r.steps == S && r.wide == W) done = direct_loop_bf16(p, &r, x, y, n, Q, S, W); else

static void pwl_block_avx512_bf16(const pwl32_t *p, const uint16_t *x, uint16_t *y, int64_t n) {
    pwlregs_t r;
    pwl_regs(p, &r);
    int64_t done = 0;
    if (r.direct) {
        DIRECT_CASE_BF16(2, 1, 0) DIRECT_CASE_BF16(2, 2, 0) DIRECT_CASE_BF16(2, 3, 0) DIRECT_CASE_BF16(2, 1, 1)
        DIRECT_CASE_BF16(2, 2, 1) DIRECT_CASE_BF16(2, 3, 1) DIRECT_CASE_BF16(1, 1, 0) DIRECT_CASE_BF16(1, 2, 0)
        DIRECT_CASE_BF16(1, 3, 0) DIRECT_CASE_BF16(1, 1, 1) DIRECT_CASE_BF16(1, 2, 1) DIRECT_CASE_BF16(1, 3, 1) {}
    } else if (p->scaling == 0) {
        PLAIN_CASE_BF16(0, 0) PLAIN_CASE_BF16(1, 0) PLAIN_CASE_BF16(0, 1) PLAIN_CASE_BF16(1, 1) {}
    }
    for (int64_t i = done; i < n; i += 16) {
        int64_t rem = n - i;
        __mmask16 live = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        __m512i xi = bf16_widen(_mm256_maskz_loadu_epi16(live, x + i));
        __m512 v = (r.direct && in_direct_window(&r, xi)) ? pwl_direct(&r, xi, r.q, r.steps, r.wide)
                                                           : pwl_vec(p, &r, _mm512_castsi512_ps(xi));
        _mm256_mask_storeu_epi16(y + i, live, bf16_narrow(v));
    }
}
#endif

static void pwl_plain_block(const pwl32_t *p, const float *x, float *y, int64_t n) {
#if defined(__AVX512F__)
    if (p->nb <= 63 && p->scaling == 0) { pwl_block_avx512(p, x, y, n); return; }
#elif defined(HAVE_VEC8)
    if (p->nb <= 63 && n >= 8) {
        pwl32_t plain = *p;
        plain.scaling = 0;
        vec8_block(&plain, x, y, n);
        return;
    }
#endif
    pwl_plain_block_generic(p, x, y, n);
}
