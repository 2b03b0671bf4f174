
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
            out = xv == 0.0f ? copysignf(INFINITY, xv) : out;   /* inf with the zero's sign */
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

static void fixed_chunk(const fix_t *p, const float *x, float *y, int64_t m) {
#if defined(__AVX512F__)
    if (p->lut && (p->scaling == 0 || p->q == 1 || p->q == 2)) {
        fixed_block_avx512(p, x, y, m);
        return;
    }
#endif
    for (int64_t k = 0; k < m; k += BLOCK)
        fixed_block(p, x + k, y + k, (int)((m - k) < BLOCK ? (m - k) : BLOCK));
}

void nnlut_fixed_f32(const fix_t *p, const float *x, float *y, int64_t n, int threads) {
    prefer_huge_pages(y, n * 4);
    const int64_t chunk = 1 << 15;
    int64_t nchunks = (n + chunk - 1) / chunk;
    if (nchunks <= 1) { if (n) fixed_chunk(p, x, y, n); return; }   /* no parallel region for a small call */
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) {
        int64_t b = c * chunk, m = (n - b) < chunk ? (n - b) : chunk;
        fixed_chunk(p, x + b, y + b, m);
    }
}
