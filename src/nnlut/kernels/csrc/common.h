/* nnlut fused CPU kernels: piecewise-linear table evaluation in one pass over memory.
 *
 * Compiled at first use by nnlut.kernels._build with -O3 -march=native -ffp-contract=off
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
#include <stdlib.h>
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
