/* row kernels: softmax, attention softmax, LayerNorm and RMSNorm with LUT exp, reciprocal and rsqrt */
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

/* RMSNorm over rows of `cols` contiguous float32 values with an rsqrt table (LLaMA style): the
 * mean of squares is accumulated in double and rounded to float, r = table(ms + eps), then the
 * reference's float32 roundings: y = x * r, and with a weight y = (w + offset) * y. w may be
 * NULL. */
void nnlut_rmsnorm_f32(const pwl32_t *pr, const float *x, const float *w, float offset, float *y, int64_t rows,
                       int64_t cols, float eps, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float ms = (float)(sum8(xr, cols, 1) / (double)cols);
        float v = ms + eps, inv;
        if (pr->scaling) inv = pwl_scaled_one(pr, v);
        else pwl_plain_block(pr, &v, &inv, 1);
        if (w) for (int64_t k = 0; k < cols; ++k) yr[k] = (w[k] + offset) * (xr[k] * inv);
        else for (int64_t k = 0; k < cols; ++k) yr[k] = xr[k] * inv;
    }
}
