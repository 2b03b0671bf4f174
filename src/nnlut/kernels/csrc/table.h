/* table entry points: scaled blocks, dispatch, float32 and bfloat16 over threads */
/* scaled tables (reciprocal, rsqrt): exponent arithmetic around the table */
static inline float pwl_scaled_one(const pwl32_t *p, float x) {
    if (isnan(x)) return x;
    if (x == INFINITY) return p->lim_hi;
    if (x == -INFINITY) return p->lim_lo;
    if (x == 0.0f) return copysignf(INFINITY, x);   /* 1/-0 = rsqrt(-0) = -inf (IEEE) */
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
            v = (xv == 0.0f) ? copysignf(INFINITY, xv) : v;
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
#elif defined(HAVE_VEC8)
    if (vec8_ok(p)) { vec8_block(p, x, y, n); return; }
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
    if (nchunks <= 1) { pwl_eval(p, x, y, n); return; }   /* no parallel region: it costs more than a small call */
    #pragma omp parallel for num_threads(threads) schedule(static)
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

static void pwl_bf16_chunk(const pwl32_t *p, const uint16_t *x, uint16_t *y, int64_t n, int64_t chunk, int64_t c) {
    {
        float xb[BLOCK], yb[BLOCK];
        int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
#if defined(__AVX512F__)
        if (p->nb <= 63 && (p->scaling == 0 || p->q == 1 || p->q == 2)) {
            pwl_block_avx512_bf16(p, x + c * chunk, y + c * chunk, end - c * chunk);
            return;
        }
#elif defined(HAVE_VEC8)
        if (vec8_ok(p)) {
            vec8_block_bf16(p, x + c * chunk, y + c * chunk, end - c * chunk);
            return;
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

/* y = table(x) for n bfloat16 values: computed in float32, rounded once to bfloat16 */
void nnlut_pwl_bf16(const pwl32_t *p, const uint16_t *x, uint16_t *y, int64_t n, int threads) {
    const int64_t chunk = 1 << 15;
    prefer_huge_pages(y, n * 2);
    int64_t nchunks = (n + chunk - 1) / chunk;
    if (nchunks <= 1) { if (n) pwl_bf16_chunk(p, x, y, n, chunk, 0); return; }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) pwl_bf16_chunk(p, x, y, n, chunk, c);
}
