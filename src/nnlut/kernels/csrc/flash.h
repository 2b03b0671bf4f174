/* Fused LUT attention: out = softmax_lut(scale * q k^T [softcap] [+ bias] [+ mask]) v without
 * the (queries, keys) score matrix. Work items are (batch, head, block of FQ queries), spread
 * over threads; each walks the keys in tiles of FK, scores a tile into a small buffer (it stays
 * in cache) and never stores more than that.
 *
 * Numerics are those of the unfused LUT attention, up to the summation order: a PWL exp table
 * is not multiplicative (exp_t(a) exp_t(b) != exp_t(a + b)), so rescaling partial sums by
 * exp_t(m_old - m_new) when a running maximum grows would change the probabilities by the
 * table's error, not by rounding. Each block therefore makes two sweeps over its keys: the first
 * finds every row's exact maximum, the second evaluates exp_t(s - max) once per score, sums it
 * (in double) and accumulates the probabilities times the values; the row is normalised at the
 * end by the reciprocal table on the float sum, as the unfused kernel does.
 *
 * Scores follow the unfused order: s = (q . k) * scale; softcap: tanh(s / c) * c; + bias;
 * boolean mask: masked -> float32's minimum; float mask: + mask. Keys outside the implicit band
 * lo <= key - query <= hi (causal, sliding window) are left out. Tiles that lie outside the band,
 * and (when skip_ok: the exp table is exactly 0 far below zero) tiles whose every score is masked
 * in a block whose rows all have an unmasked key, contribute exactly 0 and are not computed. */
#define FQ 32   /* queries per block (a multiple of 4) */
#define FK 64   /* keys per tile (a multiple of 16) */
#define MASKED_BELOW (-1e30f)   /* a float mask value at or below this masks its score */

typedef struct {
    const void *q, *k, *v;
    void *o;
    int32_t bf16;          /* q, k, v and o: 0 float32, 1 bfloat16 */
    int32_t mkind;         /* mask: 0 none, 1 float32 additive, 2 bool keep, 3 bfloat16 additive */
    int32_t bkind;         /* bias: 0 none, 1 float32, 3 bfloat16 */
    int32_t skip_ok;
    int64_t B, H, Hkv, Lq, Lk, D, Dv;
    int64_t qs[3], ks[3], vs[3], os[3];   /* strides (elements) of batch, head, position */
    int64_t ms[4], bs[4];                 /* strides of batch, head, query, key (0: broadcast) */
    float scale, softcap;
    int64_t lo, hi;                       /* band: key - query in [lo, hi] */
    const void *mask, *bias;
} flash_args_t;

static inline float ld_act(const void *p, int bf16, int64_t i) {
    return bf16 ? bf2f(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

static inline float ld_add(const void *p, int kind, int64_t i) {
    return kind == 3 ? bf2f(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* per-thread scratch */
typedef struct {
    float *qp;    /* FQ x D queries (rows past the block are zero) */
    float *kt;    /* D x FK keys, transposed */
    float *vt;    /* FK x Dv values */
    float *st;    /* FQ x FK scores, then probabilities */
    float *acc;   /* FQ x Dv output accumulator */
    float *strip; /* the block's scores, tile after tile (FQ x FK each), or NULL */
} flash_buf_t;

#define STRIP_MAX ((int64_t)16 << 20)   /* bytes of scores a thread keeps at most */

/* st[r][j] = sum_c qp[r][c] kt[c][j] for r < nq4, j < FK */
static void flash_qk(const float *qp, const float *kt, float *st, int nq4, int64_t D) {
#if defined(__AVX2__) && defined(__FMA__)
    for (int r = 0; r < nq4; r += 4) {
        for (int j = 0; j < FK; j += 16) {
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            const float *q0 = qp + r * D, *q1 = q0 + D, *q2 = q1 + D, *q3 = q2 + D;
            for (int64_t c = 0; c < D; ++c) {
                __m256 k0 = _mm256_loadu_ps(kt + c * FK + j), k1 = _mm256_loadu_ps(kt + c * FK + j + 8);
                __m256 b = _mm256_broadcast_ss(q0 + c);
                a00 = _mm256_fmadd_ps(b, k0, a00); a01 = _mm256_fmadd_ps(b, k1, a01);
                b = _mm256_broadcast_ss(q1 + c);
                a10 = _mm256_fmadd_ps(b, k0, a10); a11 = _mm256_fmadd_ps(b, k1, a11);
                b = _mm256_broadcast_ss(q2 + c);
                a20 = _mm256_fmadd_ps(b, k0, a20); a21 = _mm256_fmadd_ps(b, k1, a21);
                b = _mm256_broadcast_ss(q3 + c);
                a30 = _mm256_fmadd_ps(b, k0, a30); a31 = _mm256_fmadd_ps(b, k1, a31);
            }
            float *s = st + r * FK + j;
            _mm256_storeu_ps(s, a00); _mm256_storeu_ps(s + 8, a01);
            _mm256_storeu_ps(s + FK, a10); _mm256_storeu_ps(s + FK + 8, a11);
            _mm256_storeu_ps(s + 2 * FK, a20); _mm256_storeu_ps(s + 2 * FK + 8, a21);
            _mm256_storeu_ps(s + 3 * FK, a30); _mm256_storeu_ps(s + 3 * FK + 8, a31);
        }
    }
#else
    for (int r = 0; r < nq4; ++r)
        for (int j = 0; j < FK; ++j) {
            float a = 0.0f;
            for (int64_t c = 0; c < D; ++c) a += qp[r * D + c] * kt[c * FK + j];
            st[r * FK + j] = a;
        }
#endif
}

/* acc[r][c] += sum_j st[r][j] vt[j][c] for r < nq4, c < Dv (Dv a multiple of 8 on the vector path) */
static void flash_pv(const float *st, const float *vt, float *acc, int nq4, int64_t Dv) {
#if defined(__AVX2__) && defined(__FMA__)
    if (Dv % 16 == 0) {
        for (int r = 0; r < nq4; r += 4) {
            for (int64_t c = 0; c < Dv; c += 16) {
                float *o = acc + r * Dv + c;
                __m256 a00 = _mm256_loadu_ps(o), a01 = _mm256_loadu_ps(o + 8);
                __m256 a10 = _mm256_loadu_ps(o + Dv), a11 = _mm256_loadu_ps(o + Dv + 8);
                __m256 a20 = _mm256_loadu_ps(o + 2 * Dv), a21 = _mm256_loadu_ps(o + 2 * Dv + 8);
                __m256 a30 = _mm256_loadu_ps(o + 3 * Dv), a31 = _mm256_loadu_ps(o + 3 * Dv + 8);
                const float *p0 = st + r * FK, *p1 = p0 + FK, *p2 = p1 + FK, *p3 = p2 + FK;
                for (int j = 0; j < FK; ++j) {
                    __m256 v0 = _mm256_loadu_ps(vt + j * Dv + c), v1 = _mm256_loadu_ps(vt + j * Dv + c + 8);
                    __m256 b = _mm256_broadcast_ss(p0 + j);
                    a00 = _mm256_fmadd_ps(b, v0, a00); a01 = _mm256_fmadd_ps(b, v1, a01);
                    b = _mm256_broadcast_ss(p1 + j);
                    a10 = _mm256_fmadd_ps(b, v0, a10); a11 = _mm256_fmadd_ps(b, v1, a11);
                    b = _mm256_broadcast_ss(p2 + j);
                    a20 = _mm256_fmadd_ps(b, v0, a20); a21 = _mm256_fmadd_ps(b, v1, a21);
                    b = _mm256_broadcast_ss(p3 + j);
                    a30 = _mm256_fmadd_ps(b, v0, a30); a31 = _mm256_fmadd_ps(b, v1, a31);
                }
                _mm256_storeu_ps(o, a00); _mm256_storeu_ps(o + 8, a01);
                _mm256_storeu_ps(o + Dv, a10); _mm256_storeu_ps(o + Dv + 8, a11);
                _mm256_storeu_ps(o + 2 * Dv, a20); _mm256_storeu_ps(o + 2 * Dv + 8, a21);
                _mm256_storeu_ps(o + 3 * Dv, a30); _mm256_storeu_ps(o + 3 * Dv + 8, a31);
            }
        }
        return;
    }
#endif
    for (int r = 0; r < nq4; ++r)
        for (int j = 0; j < FK; ++j) {
            float p = st[r * FK + j];
            if (p == 0.0f) continue;
            for (int64_t c = 0; c < Dv; ++c) acc[r * Dv + c] += p * vt[j * Dv + c];
        }
}

/* The final scores of one tile row (query i, keys j0 .. j0+FK) in place in s[0..FK): lanes past
 * the keys or outside the band are -inf. Returns whether any score in the band is unmasked. */
static int flash_scores_row(const flash_args_t *a, int64_t b, int64_t h, int64_t i, int64_t j0, float *s) {
    int64_t jlo = i + a->lo, jhi = i + a->hi;   /* the band, clipped to the keys */
    if (jlo < 0) jlo = 0;
    if (jhi > a->Lk - 1) jhi = a->Lk - 1;
    const float scale = a->scale;
    int live = a->mkind == 0;
    if (a->mkind == 0 && a->bkind == 0 && a->softcap == 0.0f) {
        for (int e = 0; e < FK; ++e) s[e] = s[e] * scale;
    } else {
        const int64_t bo = a->bkind ? b * a->bs[0] + h * a->bs[1] + i * a->bs[2] : 0;
        const int64_t mo = a->mkind ? b * a->ms[0] + h * a->ms[1] + i * a->ms[2] : 0;
        const float c = a->softcap;
        int64_t n = a->Lk - j0 < FK ? a->Lk - j0 : FK;
        for (int64_t e = 0; e < n; ++e) {
            int64_t j = j0 + e;
            float v = s[e] * scale;
            if (c != 0.0f) v = tanhf(v / c) * c;
            if (a->bkind) v = v + ld_add(a->bias, a->bkind, bo + j * a->bs[3]);
            if (a->mkind == 2) {
                int keep = ((const uint8_t *)a->mask)[mo + j * a->ms[3]] != 0;
                v = keep ? v : -3.40282347e38f;
                live |= keep && j >= jlo && j <= jhi;
            } else if (a->mkind) {
                float m = ld_add(a->mask, a->mkind, mo + j * a->ms[3]);
                v = v + m;
                live |= m > MASKED_BELOW && j >= jlo && j <= jhi;
            }
            s[e] = v;
        }
    }
    if (jlo > j0 || jhi < j0 + FK - 1)
        for (int64_t e = 0; e < FK; ++e) {
            int64_t j = j0 + e;
            s[e] = (j < jlo || j > jhi) ? -INFINITY : s[e];
        }
    return live;
}

static inline float row_max(const float *s, int n, int *nan) {
    float mx = -INFINITY;
    int bad = 0;
    int e = 0;
#if defined(HAVE_VEC8)
    __m256 mv = _mm256_set1_ps(-INFINITY), nv = _mm256_setzero_ps();
    for (; e + 8 <= n; e += 8) {
        __m256 v = _mm256_loadu_ps(s + e);
        nv = _mm256_or_ps(nv, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        mv = _mm256_max_ps(mv, v);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    for (int l = 0; l < 8; ++l) mx = lanes[l] > mx ? lanes[l] : mx;
    bad = _mm256_movemask_ps(nv) != 0;
#endif
    for (; e < n; ++e) { bad |= s[e] != s[e]; mx = s[e] > mx ? s[e] : mx; }
    *nan |= bad;
    return mx;
}

#if defined(HAVE_VEC8)
static inline __attribute__((always_inline)) double row_exp8(const vec8_t *r, float *s, float mx, const int nreg,
                                                             const int full) {
    const __m256 mxv = _mm256_set1_ps(mx), ninf = _mm256_set1_ps(-INFINITY);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int e = 0; e < FK; e += 8) {
        __m256 x = _mm256_loadu_ps(s + e);
        __m256 z = _mm256_sub_ps(x, mxv);
        __m256 v = full ? pwl8n(r, z, nreg) : pwl8_finite(r, z, nreg);
        v = _mm256_andnot_ps(_mm256_cmp_ps(x, ninf, _CMP_EQ_OQ), v);
        _mm256_storeu_ps(s + e, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double l[4];
    _mm256_storeu_pd(l, _mm256_add_pd(s0, s1));
    return (l[0] + l[1]) + (l[2] + l[3]);
}
#endif

/* s[e] = exp_t(s[e] - mx), 0 where s[e] is -inf (out of the band, past the keys, or masked by
 * -inf: the caller's exp table is 0 at -inf); returns the sum in double. re: the exp table in
 * registers, or NULL for the portable path */
static inline double row_exp(const pwl32_t *pe, const void *re, float *s, float mx) {
#if defined(HAVE_VEC8)
    if (re) {
        const vec8_t *r = (const vec8_t *)re;
        /* limits matter only for a row whose maximum is +inf (then finite scores give -inf) */
        if (r->scaled || mx == INFINITY) return row_exp8(r, s, mx, r->nreg, 1);
        switch (r->nreg) {
        case 1: return row_exp8(r, s, mx, 1, 0);
        case 2: return row_exp8(r, s, mx, 2, 0);
        case 4: return row_exp8(r, s, mx, 4, 0);
        default: return row_exp8(r, s, mx, 8, 0);
        }
    }
#endif
    (void)re;
    float z[FK], ez[FK];
    double sum = 0.0;
    for (int e = 0; e < FK; ++e) z[e] = s[e] - mx;
    pwl_eval(pe, z, ez, FK);
    for (int e = 0; e < FK; ++e) {
        float v = s[e] == -INFINITY ? 0.0f : ez[e];
        s[e] = v;
        sum += (double)v;
    }
    return sum;
}

static void flash_item(const pwl32_t *pe, const void *re, const pwl32_t *pr, const flash_args_t *a, flash_buf_t *w,
                       int64_t b, int64_t h, int64_t i0) {
    const int64_t D = a->D, Dv = a->Dv, Lk = a->Lk;
    const int nq = (int)(a->Lq - i0 < FQ ? a->Lq - i0 : FQ), nq4 = (nq + 3) & ~3;
    const int64_t hk = h / (a->H / a->Hkv);
    const char *qb = (const char *)a->q, *kb = (const char *)a->k, *vb = (const char *)a->v;
    for (int r = 0; r < nq4; ++r)
        for (int64_t c = 0; c < D; ++c)
            w->qp[r * D + c] = r < nq ? ld_act(qb, a->bf16, b * a->qs[0] + h * a->qs[1] + (i0 + r) * a->qs[2] + c) : 0.0f;
    /* keys in the band of some row of the block */
    int64_t jmin = i0 + a->lo, jmax = i0 + nq - 1 + a->hi;
    if (a->lo < -Lk) jmin = 0;
    if (a->hi > Lk) jmax = Lk - 1;
    jmin = jmin < 0 ? 0 : jmin;
    jmax = jmax > Lk - 1 ? Lk - 1 : jmax;
    float mx[FQ];
    int nan[FQ];
    for (int r = 0; r < FQ; ++r) { mx[r] = -INFINITY; nan[r] = 0; }
    int64_t t0 = jmax >= jmin ? jmin / FK : 0, t1 = jmax >= jmin ? jmax / FK + 1 : 0;
    uint8_t live_small[512];
    uint8_t *live = (t1 - t0) <= 512 ? live_small : (uint8_t *)malloc((size_t)(t1 - t0));
    const int64_t kbase = b * a->ks[0] + hk * a->ks[1], vbase = b * a->vs[0] + hk * a->vs[1];
    for (int pass = 0; pass < 2; ++pass) {
        int skip = 0;
        if (pass == 1) {
            skip = a->skip_ok;
            for (int r = 0; r < nq; ++r) {
                if (nan[r]) mx[r] = NAN;
                if (!(mx[r] > MASKED_BELOW)) skip = 0;   /* a fully masked (or NaN) row: every tile counts */
            }
            memset(w->acc, 0, sizeof(float) * (size_t)(nq4 * Dv));
        }
        double sum[FQ];
        for (int r = 0; r < FQ; ++r) sum[r] = 0.0;
        for (int64_t t = t0; t < t1; ++t) {
            if (skip && !live[t - t0]) continue;
            const int64_t j0 = t * FK;
            const int nk = (int)(Lk - j0 < FK ? Lk - j0 : FK);
            /* the tile's scores: computed in the first sweep, kept in the strip for the second
             * (or, for very long rows, computed again: the same operations give the same values) */
            float *st = w->strip ? w->strip + (t - t0) * FQ * FK : w->st;
            int any = 0;
            if (pass == 0 || !w->strip) {
                if (nk < FK) memset(w->kt, 0, sizeof(float) * (size_t)(FK * D));
                for (int e = 0; e < nk; ++e) {
                    const int64_t ro = kbase + (j0 + e) * a->ks[2];
                    for (int64_t c = 0; c < D; ++c) w->kt[c * FK + e] = ld_act(kb, a->bf16, ro + c);
                }
                flash_qk(w->qp, w->kt, st, nq4, D);
                for (int r = 0; r < nq; ++r) any |= flash_scores_row(a, b, h, i0 + r, j0, st + r * FK);
            }
            for (int r = 0; r < nq; ++r) {
                float *s = st + r * FK;
                if (pass == 0) {
                    float m = row_max(s, FK, &nan[r]);
                    mx[r] = m > mx[r] ? m : mx[r];
                } else {
                    sum[r] += row_exp(pe, re, s, mx[r]);
                }
            }
            if (pass == 0) { live[t - t0] = (uint8_t)any; continue; }
            for (int r = nq; r < nq4; ++r) memset(st + r * FK, 0, sizeof(float) * FK);
            for (int e = 0; e < FK; ++e) {
                float *dst = w->vt + e * Dv;
                const int64_t ro = vbase + (j0 + e) * a->vs[2];
                if (e >= nk) memset(dst, 0, sizeof(float) * (size_t)Dv);
                else if (!a->bf16) memcpy(dst, (const float *)vb + ro, sizeof(float) * (size_t)Dv);
                else for (int64_t c = 0; c < Dv; ++c) dst[c] = ld_act(vb, 1, ro + c);
            }
            flash_pv(st, w->vt, w->acc, nq4, Dv);
        }
        if (pass == 1) {
            for (int r = 0; r < nq; ++r) {
                float s1 = (float)sum[r], inv;
                if (pr->scaling) inv = pwl_scaled_one(pr, s1);
                else pwl_plain_block(pr, &s1, &inv, 1);
                const int64_t oo = b * a->os[0] + h * a->os[1] + (i0 + r) * a->os[2];
                const float *src = w->acc + r * Dv;
                if (a->bf16) {
                    uint16_t *o = (uint16_t *)a->o + oo;
                    for (int64_t c = 0; c < Dv; ++c) o[c] = f2bf(src[c] * inv);
                } else {
                    float *o = (float *)a->o + oo;
                    for (int64_t c = 0; c < Dv; ++c) o[c] = src[c] * inv;
                }
            }
        }
    }
    if (live != live_small) free(live);
}

void nnlut_flash_attn(const pwl32_t *pe, const pwl32_t *pr, const flash_args_t *a, int threads) {
    const int64_t nblk = (a->Lq + FQ - 1) / FQ, items = a->B * a->H * nblk;
#if defined(HAVE_VEC8)
    vec8_t re;
    vec8_prep(pe, &re);
    const void *rep = vec8_ok(pe) ? (const void *)&re : 0;
#else
    const void *rep = 0;
#endif
    #pragma omp parallel num_threads(threads) if (items > 1)
    {
        flash_buf_t w;
        size_t D = (size_t)a->D, Dv = (size_t)a->Dv;
        w.qp = (float *)malloc(sizeof(float) * FQ * D);
        w.kt = (float *)malloc(sizeof(float) * FK * D);
        w.vt = (float *)malloc(sizeof(float) * FK * Dv);
        w.st = (float *)malloc(sizeof(float) * FQ * FK);
        w.acc = (float *)malloc(sizeof(float) * FQ * Dv);
        const int64_t strip = (int64_t)sizeof(float) * FQ * ((a->Lk + FK - 1) / FK + 1) * FK;
        w.strip = strip <= STRIP_MAX ? (float *)malloc((size_t)strip) : 0;
        /* blocks with the most keys first (under a causal band the last query blocks) */
        #pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; ++it) {
            int64_t blk = nblk - 1 - it % nblk, bh = it / nblk;
            flash_item(pe, rep, pr, a, &w, bh / a->H, bh % a->H, blk * FQ);
        }
        free(w.qp); free(w.kt); free(w.vt); free(w.st); free(w.acc); free(w.strip);
    }
}
