/* The SGD update over a contiguous range, in C; used by _sgd.pyx.
 *
 * fastnn_sgd_f32 / fastnn_sgd_f64 update entries [0, n) of the three buffers
 * with the reference's arithmetic, operation by operation in the array dtype
 * (no fused multiply-add: the build has -ffp-contract=off and the AVX2 clone
 * below does not enable FMA), and return the pre-update float64 sum of
 * squares of the params when ``decay``. They work in blocks of
 * FASTNN_SGD_BLOCK entries: the block's sum of squares, then its update, so
 * that the params are read from memory once and from L1 the second time.
 *
 * Why C and not Cython (measured on a 2-core AMD EPYC, AVX2, GCC 12):
 *
 * - Sum of squares. GCC vectorises a float64 reduction only if it may
 *   reassociate (-fassociative-math, which the build does not use); Cython's
 *   loop with eight scalar partial sums stayed scalar (cvtss2sd, mulsd, addsd
 *   per entry: half the time of the whole update), so did an array of partial
 *   sums once inlined, and GCC 12 lowers a vector-extension float2 -> double2
 *   conversion to scalar converts. Hence SSE2 intrinsics: eight float64
 *   partial sums in four 16-byte registers, each add an ordinary packed add of
 *   independent sums, so the result does not depend on compiler flags. SSE2 is
 *   the x86-64 baseline (no -march needed; MSVC has it too). Elsewhere (arm64)
 *   a plain C loop adds in the same order: partial sum j takes the entries
 *   with index % 8 == j, the eight are combined pairwise at the end, then the
 *   tail is added in order.
 * - Update. The loop auto-vectorises at the baseline (SSE2, 16 bytes), but the
 *   update is bound by moving data between L3 and the core, and 32-byte AVX2
 *   loads and stores do it in half the instructions (about 10% faster, and
 *   what numba, compiled for the host CPU, uses). The wheel must run on any
 *   x86-64, so the AVX2 code is a second copy of the same C compiled with
 *   __attribute__((target("avx2"))), chosen at run time by
 *   fastnn_sgd_init() (once, at import) when the CPU and OS support AVX2.
 *   Elementwise IEEE arithmetic without FMA rounds the same in any vector
 *   width, and the sum of squares is the same SSE2 code in both copies, so
 *   both copies give bitwise the same results (tested).
 */
#ifndef FASTNN_SGD_CORE_H
#define FASTNN_SGD_CORE_H

#include <stddef.h>

#if defined(_MSC_VER) && !defined(__cplusplus)
#define FASTNN_INLINE static __inline
#else
#define FASTNN_INLINE static inline
#endif

/* ------------------------------------------------------------------------ */
/* Sum of squares                                                            */
/* ------------------------------------------------------------------------ */

/* Every version keeps eight float64 partial sums l[0..7] (l[j] takes the
 * entries x[i] with i % 8 == j), combines them pairwise, then adds the tail
 * in order; so every version gives bitwise the same result. */
#define FASTNN_SUMSQ_FINISH                                                  \
    s = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));   \
    for (; i < n; i++) {                                                     \
        t = (double)x[i];                                                    \
        s += t * t;                                                          \
    }                                                                        \
    return s;

#if defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64)
#include <emmintrin.h>

/* The partial sums in four 16-byte registers; Ln(k): entries k, k + 1 of x
 * as two float64. */
#define FASTNN_SUMSQ_SSE2(L)                                                 \
    __m128d a0 = _mm_setzero_pd(), a1 = _mm_setzero_pd();                    \
    __m128d a2 = _mm_setzero_pd(), a3 = _mm_setzero_pd(), w;                 \
    double l[8], s, t;                                                       \
    ptrdiff_t i = 0;                                                         \
    for (; i + 8 <= n; i += 8) {                                             \
        w = L(i);                                                            \
        a0 = _mm_add_pd(a0, _mm_mul_pd(w, w));                               \
        w = L(i + 2);                                                        \
        a1 = _mm_add_pd(a1, _mm_mul_pd(w, w));                               \
        w = L(i + 4);                                                        \
        a2 = _mm_add_pd(a2, _mm_mul_pd(w, w));                               \
        w = L(i + 6);                                                        \
        a3 = _mm_add_pd(a3, _mm_mul_pd(w, w));                               \
    }                                                                        \
    _mm_storeu_pd(l, a0);                                                    \
    _mm_storeu_pd(l + 2, a1);                                                \
    _mm_storeu_pd(l + 4, a2);                                                \
    _mm_storeu_pd(l + 6, a3);                                                \
    FASTNN_SUMSQ_FINISH

/* two floats (a 64-bit load) converted to two doubles */
#define FASTNN_LOAD2_F32(k)                                                  \
    _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(x + (k)))))
#define FASTNN_LOAD2_F64(k) _mm_loadu_pd(x + (k))

FASTNN_INLINE double fastnn_sumsq_f32(const float *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_SSE2(FASTNN_LOAD2_F32)
}

FASTNN_INLINE double fastnn_sumsq_f64(const double *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_SSE2(FASTNN_LOAD2_F64)
}

#undef FASTNN_LOAD2_F32
#undef FASTNN_LOAD2_F64
#undef FASTNN_SUMSQ_SSE2

#else /* no SSE2: the same partial sums in plain C */

#define FASTNN_SUMSQ_PLAIN                                                   \
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                  \
    double s, t;                                                             \
    ptrdiff_t i = 0;                                                         \
    int j;                                                                   \
    for (; i + 8 <= n; i += 8) {                                             \
        for (j = 0; j < 8; j++) {                                            \
            t = (double)x[i + j];                                            \
            l[j] += t * t;                                                   \
        }                                                                    \
    }                                                                        \
    FASTNN_SUMSQ_FINISH

FASTNN_INLINE double fastnn_sumsq_f32(const float *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_PLAIN
}

FASTNN_INLINE double fastnn_sumsq_f64(const double *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_PLAIN
}

#undef FASTNN_SUMSQ_PLAIN

#endif

/* ------------------------------------------------------------------------ */
/* The update                                                                */
/* ------------------------------------------------------------------------ */

/* Entries per block: the block's params (2-4 KiB) stay in L1 between the sum
 * of squares and the update (512 measured faster than 256 and 1024). */
#define FASTNN_SGD_BLOCK 512

/* modes, as sgd_mode in _sgd.pxd */
#define FASTNN_SGD_PLAIN 0
#define FASTNN_SGD_MOMENTUM 1
#define FASTNN_SGD_NESTEROV 2

/* One loop over [lo, hi) with literal DECAY, MODE and STORE (write g back
 * into G), so that each expansion is a branch-free, vectorisable loop:
 *     g = G + wd * P                  (DECAY)
 *     v = V * m + g;  V = v           (MODE != PLAIN)
 *     g = g + m * v                   (MODE == NESTEROV)
 *     P = P - lr * (v if MODE == MOMENTUM else g);  G = g (STORE) */
#define FASTNN_SGD_LOOP(DECAY, MODE, STORE)                                  \
    for (i = lo; i < hi; i++) {                                              \
        g = G[i];                                                            \
        if (DECAY)                                                           \
            g = g + wd * P[i];                                               \
        if ((MODE) != FASTNN_SGD_PLAIN) {                                    \
            v = V[i] * m + g;                                                \
            V[i] = v;                                                        \
            if ((MODE) == FASTNN_SGD_NESTEROV)                               \
                g = g + m * v;                                               \
        }                                                                    \
        if (STORE)                                                           \
            G[i] = g;                                                        \
        P[i] = P[i] - lr * ((MODE) == FASTNN_SGD_MOMENTUM ? v : g);          \
    }

#define FASTNN_SGD_MODES(DECAY, STORE)                                       \
    if (mode == FASTNN_SGD_PLAIN) {                                          \
        FASTNN_SGD_LOOP(DECAY, FASTNN_SGD_PLAIN, STORE)                      \
    } else if (mode == FASTNN_SGD_MOMENTUM) {                                \
        FASTNN_SGD_LOOP(DECAY, FASTNN_SGD_MOMENTUM, STORE)                   \
    } else {                                                                 \
        FASTNN_SGD_LOOP(DECAY, FASTNN_SGD_NESTEROV, STORE)                   \
    }

/* Defines NAME(P, G, V, n, lr, m, wd, decay, mode, store) -> sum of squares.
 * ``store``: write g into G; it is skipped anyway where g equals G (no decay,
 * no Nesterov). RESTRICT: __restrict (the buffers do not overlap: no run-time
 * alias checks in the loops) or nothing. */
#define FASTNN_SGD_DEFINE(NAME, T, SUMSQ, RESTRICT, ATTR)                    \
    ATTR static double NAME(T *RESTRICT P, T *RESTRICT G, T *RESTRICT V,     \
                            ptrdiff_t n, T lr, T m, T wd, int decay,         \
                            int mode, int store)                             \
    {                                                                        \
        ptrdiff_t lo, hi, i;                                                 \
        T g, v = 0;                                                          \
        double sq = 0;                                                       \
        store = store && (decay || mode == FASTNN_SGD_NESTEROV);             \
        for (lo = 0; lo < n; lo = hi) {                                      \
            hi = n - lo > FASTNN_SGD_BLOCK ? lo + FASTNN_SGD_BLOCK : n;      \
            if (decay) {                                                     \
                sq += SUMSQ(P + lo, hi - lo);                                \
                if (store) {                                                 \
                    FASTNN_SGD_MODES(1, 1)                                   \
                } else {                                                     \
                    FASTNN_SGD_MODES(1, 0)                                   \
                }                                                            \
            } else if (store) {                                              \
                FASTNN_SGD_LOOP(0, FASTNN_SGD_NESTEROV, 1)                   \
            } else {                                                         \
                FASTNN_SGD_MODES(0, 0)                                       \
            }                                                                \
        }                                                                    \
        return sq;                                                           \
    }

FASTNN_SGD_DEFINE(fastnn_sgd_f32_base, float, fastnn_sumsq_f32, __restrict, )
FASTNN_SGD_DEFINE(fastnn_sgd_f64_base, double, fastnn_sumsq_f64, __restrict, )
/* For overlapping buffers (nothing stops a caller passing them): entry after
 * entry, as the compiler's alias checks make it. */
FASTNN_SGD_DEFINE(fastnn_sgd_f32_alias, float, fastnn_sumsq_f32, , )
FASTNN_SGD_DEFINE(fastnn_sgd_f64_alias, double, fastnn_sumsq_f64, , )

/* The AVX2 copy: GCC and Clang on x86-64 (not MSVC: baseline only). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTNN_SGD_AVX2 1
#include <immintrin.h>

/* The same eight partial sums as fastnn_sumsq_*, four per 32-byte register
 * (lane j of a0 is l[j], of a1 l[4 + j]). */
#define FASTNN_SUMSQ_AVX2(LOAD_LO, LOAD_HI)                                  \
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), w;           \
    double l[8], s, t;                                                       \
    ptrdiff_t i = 0;                                                         \
    for (; i + 8 <= n; i += 8) {                                             \
        w = LOAD_LO;                                                         \
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(w, w));                         \
        w = LOAD_HI;                                                         \
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(w, w));                         \
    }                                                                        \
    _mm256_storeu_pd(l, a0);                                                 \
    _mm256_storeu_pd(l + 4, a1);                                             \
    FASTNN_SUMSQ_FINISH

__attribute__((target("avx2"))) FASTNN_INLINE double
fastnn_sumsq_f32_avx2(const float *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_AVX2(_mm256_cvtps_pd(_mm_loadu_ps(x + i)),
                      _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)))
}

__attribute__((target("avx2"))) FASTNN_INLINE double
fastnn_sumsq_f64_avx2(const double *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_AVX2(_mm256_loadu_pd(x + i), _mm256_loadu_pd(x + i + 4))
}

#undef FASTNN_SUMSQ_AVX2

FASTNN_SGD_DEFINE(fastnn_sgd_f32_avx2, float, fastnn_sumsq_f32_avx2, __restrict,
                  __attribute__((target("avx2"))))
FASTNN_SGD_DEFINE(fastnn_sgd_f64_avx2, double, fastnn_sumsq_f64_avx2, __restrict,
                  __attribute__((target("avx2"))))
#else
#define FASTNN_SGD_AVX2 0
#endif

#undef FASTNN_SUMSQ_FINISH

#undef FASTNN_SGD_DEFINE
#undef FASTNN_SGD_MODES
#undef FASTNN_SGD_LOOP

/* 1: the AVX2 copy is used. Set once by fastnn_sgd_init (at import, with the
 * GIL held); fastnn_sgd_set_avx2 lets the tests compare the two copies. */
static int fastnn_sgd_use_avx2 = 0;

/* Whether this CPU and OS run AVX2 code (libgcc's check includes the OS
 * saving the YMM registers). */
static int fastnn_sgd_cpu_has_avx2(void)
{
#if FASTNN_SGD_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
#else
    return 0;
#endif
}

/* Use the AVX2 copy if ``on`` and the CPU has it; returns whether it is used. */
static int fastnn_sgd_set_avx2(int on)
{
    fastnn_sgd_use_avx2 = on && fastnn_sgd_cpu_has_avx2();
    return fastnn_sgd_use_avx2;
}

static void fastnn_sgd_init(void) { fastnn_sgd_set_avx2(1); }

/* Whether [a, a + n) and [b, b + n) share an entry (n in bytes). */
FASTNN_INLINE int fastnn_overlap(const void *a, const void *b, size_t n)
{
    size_t x = (size_t)a, y = (size_t)b;
    return x < y + n && y < x + n;
}

/* Whether P, G and V (n entries of ``size`` bytes) overlap anywhere; V only
 * counts with momentum (mode != 0: otherwise it is never touched). */
FASTNN_INLINE int fastnn_sgd_aliased(const void *P, const void *G,
                                     const void *V, ptrdiff_t n, size_t size,
                                     int mode)
{
    size_t bytes = (size_t)n * size;
    return fastnn_overlap(P, G, bytes)
           || (mode != FASTNN_SGD_PLAIN
               && (fastnn_overlap(P, V, bytes) || fastnn_overlap(G, V, bytes)));
}

#if FASTNN_SGD_AVX2
#define FASTNN_SGD_DISPATCH_AVX2(NAME)                                       \
    if (fastnn_sgd_use_avx2)                                                 \
        return NAME(P, G, V, n, lr, m, wd, decay, mode, store);
#else
#define FASTNN_SGD_DISPATCH_AVX2(NAME)
#endif

/* The update of n > 0 entries: the copy for overlapping buffers, the AVX2
 * copy or the baseline copy. */
#define FASTNN_SGD_DISPATCH(NAME, T, ALIAS, AVX2, BASE)                      \
    static double NAME(T *P, T *G, T *V, ptrdiff_t n, T lr, T m, T wd,       \
                       int decay, int mode, int store)                       \
    {                                                                        \
        if (fastnn_sgd_aliased(P, G, V, n, sizeof(T), mode))                 \
            return ALIAS(P, G, V, n, lr, m, wd, decay, mode, store);         \
        FASTNN_SGD_DISPATCH_AVX2(AVX2)                                       \
        return BASE(P, G, V, n, lr, m, wd, decay, mode, store);              \
    }

FASTNN_SGD_DISPATCH(fastnn_sgd_f32, float, fastnn_sgd_f32_alias,
                    fastnn_sgd_f32_avx2, fastnn_sgd_f32_base)
FASTNN_SGD_DISPATCH(fastnn_sgd_f64, double, fastnn_sgd_f64_alias,
                    fastnn_sgd_f64_avx2, fastnn_sgd_f64_base)

#undef FASTNN_SGD_DISPATCH
#undef FASTNN_SGD_DISPATCH_AVX2

#endif /* FASTNN_SGD_CORE_H */
