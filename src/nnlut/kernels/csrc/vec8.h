/* AVX2 (8-lane) table evaluation: the same steps and roundings as the portable code, for CPUs
 * without AVX-512. Tables of up to 64 entries live in registers: breakpoints padded to 8, 16,
 * 32 or 64 by +inf, slopes and intercepts by their last entry. The segment index
 * #{j : u >= bp[j]} is a branch-free binary search whose probes, and the final slope and
 * intercept, are read with in-register permutes (one per 8 entries, then selects on the index
 * bits). Range reduction is integer arithmetic on the exponent field; the output scaling
 * 2**(j * shift) is applied in double and rounded once, as in pwl_scaled_one. */
#if defined(__AVX2__)
#include <immintrin.h>
#define HAVE_VEC8 1

typedef struct {
    __m256 s[8], t[8], b[8];
    __m256 bmid;       /* the first probe: the middle breakpoint, in every lane */
    int nreg;          /* registers per array: 1, 2, 4 or 8 (entries 8, 16, 32, 64) */
    int scaled, paper, q, shift, odd, clo, chi;
    __m256 lo, hi, lim_lo, lim_hi;
} vec8_t;

/* whether a table can take the vector path: up to 64 entries, period 2 or 4 when scaled */
static inline int vec8_ok(const pwl32_t *p) {
    return p->nb <= 63 && (p->scaling == 0 || p->q == 1 || p->q == 2);
}

static inline void vec8_prep(const pwl32_t *p, vec8_t *r) {
    float sb[64], tb[64], bb[64];
    int ne = p->nb + 1, n = 8;
    while (n < ne) n *= 2;
    for (int i = 0; i < n; ++i) {
        sb[i] = p->s[i < ne ? i : ne - 1];
        tb[i] = p->t[i < ne ? i : ne - 1];
        bb[i] = i < p->nb ? p->bp[i] : INFINITY;
    }
    r->nreg = n / 8;
    r->bmid = _mm256_set1_ps(bb[n / 2 - 1]);
    for (int k = 0; k < r->nreg; ++k) {
        r->s[k] = _mm256_loadu_ps(sb + 8 * k);
        r->t[k] = _mm256_loadu_ps(tb + 8 * k);
        r->b[k] = _mm256_loadu_ps(bb + 8 * k);
    }
    r->scaled = p->scaling != 0;
    r->paper = p->scaling == 1;
    r->q = p->q;
    r->shift = p->shift;
    r->odd = p->odd;
    r->clo = p->clamp_lo;
    r->chi = p->clamp_hi;
    r->lo = _mm256_set1_ps(p->lo);
    r->hi = _mm256_set1_ps(p->hi);
    r->lim_lo = _mm256_set1_ps(p->lim_lo);
    r->lim_hi = _mm256_set1_ps(p->lim_hi);
}

/* arr[idx] for each lane, arr held in nreg registers: one permute per register, then selects
 * on the index bits above the lowest three */
static inline __m256 sel8(__m256i idx, int bit, __m256 a, __m256 b) {
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 31 - bit)));
}

static inline __attribute__((always_inline)) __m256 look8(const __m256 *arr, __m256i idx, const int nreg) {
    if (nreg == 1) return _mm256_permutevar8x32_ps(arr[0], idx);
    __m256 a = sel8(idx, 3, _mm256_permutevar8x32_ps(arr[0], idx), _mm256_permutevar8x32_ps(arr[1], idx));
    if (nreg == 2) return a;
    __m256 b = sel8(idx, 3, _mm256_permutevar8x32_ps(arr[2], idx), _mm256_permutevar8x32_ps(arr[3], idx));
    if (nreg == 4) return sel8(idx, 4, a, b);
    __m256 c = sel8(idx, 3, _mm256_permutevar8x32_ps(arr[4], idx), _mm256_permutevar8x32_ps(arr[5], idx));
    __m256 d = sel8(idx, 3, _mm256_permutevar8x32_ps(arr[6], idx), _mm256_permutevar8x32_ps(arr[7], idx));
    return sel8(idx, 5, sel8(idx, 4, a, b), sel8(idx, 4, c, d));
}

/* s[idx] * u + t[idx], idx = #{j : u >= bp[j]} (a rounded multiply, then a rounded add), by a
 * binary search whose first probe is the middle breakpoint in every lane */
static inline __attribute__((always_inline)) __m256 core8(const vec8_t *r, __m256 u, const int nreg) {
    const int n = 8 * nreg;
    __m256i idx = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(u, r->bmid, _CMP_GE_OQ)), _mm256_set1_epi32(n / 2));
    for (int step = n / 4; step >= 1; step >>= 1) {
        __m256i probe = step > 1 ? _mm256_add_epi32(idx, _mm256_set1_epi32(step - 1)) : idx;
        __m256i ge = _mm256_castps_si256(_mm256_cmp_ps(u, look8(r->b, probe, nreg), _CMP_GE_OQ));
        idx = step > 1 ? _mm256_add_epi32(idx, _mm256_and_si256(ge, _mm256_set1_epi32(step))) : _mm256_sub_epi32(idx, ge);
    }
    return _mm256_add_ps(_mm256_mul_ps(look8(r->s, idx, nreg), u), look8(r->t, idx, nreg));
}

static inline __attribute__((always_inline)) __m256 clamp8(const vec8_t *r, __m256 u) {
    if (r->clo) u = _mm256_blendv_ps(u, r->lo, _mm256_cmp_ps(u, r->lo, _CMP_LT_OQ));
    if (r->chi) u = _mm256_blendv_ps(u, r->hi, _mm256_cmp_ps(u, r->hi, _CMP_GT_OQ));
    return u;
}

static inline __m256 limits8(const vec8_t *r, __m256 v, __m256 x) {
    v = _mm256_blendv_ps(v, r->lim_hi, _mm256_cmp_ps(x, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ));
    return _mm256_blendv_ps(v, r->lim_lo, _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ));
}

/* v * 2**k for float v and int32 k (saturated to [-1022, 1023]) in double, rounded once */
static inline __m256 scale2k8(__m256 v, __m256i k) {
    k = _mm256_min_epi32(_mm256_max_epi32(k, _mm256_set1_epi32(-1022)), _mm256_set1_epi32(1023));
    k = _mm256_add_epi32(k, _mm256_set1_epi32(1023));
    __m256d k0 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(k)), 52));
    __m256d k1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(k, 1)), 52));
    __m256d d0 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), k0);
    __m256d d1 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), k1);
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(d0)), _mm256_cvtpd_ps(d1), 1);
}

/* range reduction: u = |x| * 2**(-q j) in [1, 2**q) (|x| itself where paper mode caps j at 0),
 * *j = j; subnormal inputs are scaled by 2**64 first. Zero, inf and NaN give u = 1 (their
 * results are set by special8). */
static inline __m256 reduce8(const vec8_t *r, __m256 x, __m256i *jout) {
    const __m256i expm = _mm256_set1_epi32(0x7f800000);
    __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    __m256i bits = _mm256_castps_si256(ax);
    __m256i sub = _mm256_cmpeq_epi32(_mm256_and_si256(bits, expm), _mm256_setzero_si256());
    __m256 ax2 = _mm256_blendv_ps(ax, _mm256_mul_ps(ax, _mm256_set1_ps(18446744073709551616.0f)), _mm256_castsi256_ps(sub));
    __m256i bits2 = _mm256_castps_si256(ax2);
    __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits2, 23), _mm256_set1_epi32(127));
    e = _mm256_sub_epi32(e, _mm256_and_si256(sub, _mm256_set1_epi32(64)));
    __m256i j = r->q == 2 ? _mm256_srai_epi32(e, 1) : e;
    __m256i capped = _mm256_setzero_si256();
    if (r->paper) {
        capped = _mm256_cmpgt_epi32(j, _mm256_setzero_si256());
        j = _mm256_andnot_si256(capped, j);
    }
    __m256i rr = _mm256_sub_epi32(e, r->q == 2 ? _mm256_slli_epi32(j, 1) : j);   /* in [0, q) unless capped */
    __m256i ub = _mm256_or_si256(_mm256_and_si256(bits2, _mm256_set1_epi32(0x007fffff)),
                                 _mm256_slli_epi32(_mm256_add_epi32(rr, _mm256_set1_epi32(127)), 23));
    __m256 u = _mm256_blendv_ps(_mm256_castsi256_ps(ub), ax, _mm256_castsi256_ps(capped));
    __m256 ok = _mm256_and_ps(_mm256_cmp_ps(ax, _mm256_set1_ps(INFINITY), _CMP_LT_OQ),
                              _mm256_cmp_ps(ax, _mm256_setzero_ps(), _CMP_NEQ_UQ));
    *jout = j;
    return _mm256_blendv_ps(_mm256_set1_ps(1.0f), u, ok);
}

/* special values of a range-reduced table: odd symmetry or NaN below zero, inf with the zero's
 * sign at zero, NaN kept */
static inline __m256 special8(const vec8_t *r, __m256 v, __m256 x) {
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    v = _mm256_blendv_ps(v, r->odd ? _mm256_xor_ps(v, _mm256_set1_ps(-0.0f)) : _mm256_set1_ps(NAN), neg);
    __m256 sinf = _mm256_or_ps(_mm256_set1_ps(INFINITY), _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
    v = _mm256_blendv_ps(v, sinf, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_EQ_OQ));
    return _mm256_blendv_ps(v, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* one vector of 8 inputs through the whole table (the reference evaluation's semantics) */
/* a range-reduced table on 8 inputs */
static inline __attribute__((always_inline)) __m256 pwl8s(const vec8_t *r, __m256 x, const int nreg) {
    __m256i j;
    __m256 v = core8(r, clamp8(r, reduce8(r, x, &j)), nreg);
    __m256i k = _mm256_mullo_epi32(j, _mm256_set1_epi32(r->shift));
    /* where every lane's value and result are normal floats, the scaling by 2**k is exact as
     * an add to the exponent field; otherwise it is done in double and rounded once */
    __m256i ev = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 23), _mm256_set1_epi32(0xff));
    __m256i er = _mm256_add_epi32(ev, k);
    __m256i bad = _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(1), ev),
                                  _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(1), er),
                                                  _mm256_cmpgt_epi32(er, _mm256_set1_epi32(254))));
    bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(ev, _mm256_set1_epi32(0xff)));
    if (_mm256_testz_si256(bad, bad)) v = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(v), _mm256_slli_epi32(k, 23)));
    else v = scale2k8(v, k);
    return limits8(r, special8(r, v, x), x);
}

static inline __attribute__((always_inline)) __m256 pwl8n(const vec8_t *r, __m256 x, const int nreg) {
    if (!r->scaled) return limits8(r, core8(r, clamp8(r, x), nreg), x);
    return pwl8s(r, x, nreg);
}

/* an unscaled table on 8 finite or -inf inputs whose value at -inf is 0, without the limits
 * (the caller zeroes the -inf lanes) */
static inline __attribute__((always_inline)) __m256 pwl8_finite(const vec8_t *r, __m256 x, const int nreg) {
    return core8(r, clamp8(r, x), nreg);
}

static inline __m256 pwl8(const vec8_t *r, __m256 x) {
    switch (r->nreg) {
    case 1: return pwl8n(r, x, 1);
    case 2: return pwl8n(r, x, 2);
    case 4: return pwl8n(r, x, 4);
    default: return pwl8n(r, x, 8);
    }
}

static inline __m256i tail_mask8(int64_t rem) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem >= 8 ? 8 : (int)rem), lane);
}

/* n float32 values; whole vectors in a loop specialised on the register count */
static inline __attribute__((always_inline)) void vec8_loop(const vec8_t *r, const float *x, float *y, int64_t n,
                                                            const int nreg) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, pwl8n(r, _mm256_loadu_ps(x + i), nreg));
    if (i < n) {
        __m256i live = tail_mask8(n - i);
        _mm256_maskstore_ps(y + i, live, pwl8n(r, _mm256_maskload_ps(x + i, live), nreg));
    }
}

static void vec8_block(const pwl32_t *p, const float *x, float *y, int64_t n) {
    vec8_t r;
    vec8_prep(p, &r);
    switch (r.nreg) {
    case 1: vec8_loop(&r, x, y, n, 1); break;
    case 2: vec8_loop(&r, x, y, n, 2); break;
    case 4: vec8_loop(&r, x, y, n, 4); break;
    default: vec8_loop(&r, x, y, n, 8); break;
    }
}

/* bfloat16 <-> float32 for 8 lanes (round to nearest even, NaN kept quiet, as f2bf) */
static inline __m256 bf16x8_load(const uint16_t *x) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)x)), 16));
}

static inline __m128i bf16x8_round(__m256 v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)),
                                                         _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))), 16);
    __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    __m256i out = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(quiet),
                                                       _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    out = _mm256_permute4x64_epi64(_mm256_packus_epi32(out, out), 0x08);
    return _mm256_castsi256_si128(out);
}

static inline __attribute__((always_inline)) void vec8_loop_bf16(const vec8_t *r, const uint16_t *x, uint16_t *y,
                                                                 int64_t n, const int nreg) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(y + i), bf16x8_round(pwl8n(r, bf16x8_load(x + i), nreg)));
    if (i < n) {
        uint16_t xb[8] = {0}, yb[8];
        for (int64_t e = 0; e < n - i; ++e) xb[e] = x[i + e];
        _mm_storeu_si128((__m128i *)yb, bf16x8_round(pwl8n(r, bf16x8_load(xb), nreg)));
        for (int64_t e = 0; e < n - i; ++e) y[i + e] = yb[e];
    }
}

static void vec8_block_bf16(const pwl32_t *p, const uint16_t *x, uint16_t *y, int64_t n) {
    vec8_t r;
    vec8_prep(p, &r);
    switch (r.nreg) {
    case 1: vec8_loop_bf16(&r, x, y, n, 1); break;
    case 2: vec8_loop_bf16(&r, x, y, n, 2); break;
    case 4: vec8_loop_bf16(&r, x, y, n, 4); break;
    default: vec8_loop_bf16(&r, x, y, n, 8); break;
    }
}
#endif
