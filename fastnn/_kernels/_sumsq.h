/* Sum of squares accumulated in float64, vectorised without reassociation.
 *
 * Used by _sgd.pyx (cdef extern). GCC vectorises a float64 reduction only if
 * it may reassociate (-fassociative-math, which the build does not use), and
 * the Cython loop with eight scalar partial sums stayed scalar too (cvtss2sd,
 * mulsd, addsd per entry: half the time of the whole SGD update); so did an
 * array of partial sums once inlined, and GCC 12 lowers a GCC-vector-extension
 * float2 -> double2 conversion to scalar converts. Hence SSE2 intrinsics:
 * eight float64 partial sums in four 16-byte registers, each add an ordinary
 * packed add of independent sums, so the result does not depend on compiler
 * flags. SSE2 is the x86-64 baseline (no -march needed, runs on every x86-64
 * CPU; MSVC has it too). Elsewhere (arm64, ...) a plain C loop adds in the
 * same order: partial sum j takes the entries with index % 8 == j, and the
 * eight are combined pairwise at the end, then the tail is added in order.
 */
#ifndef FASTNN_SUMSQ_H
#define FASTNN_SUMSQ_H

#include <stddef.h>

#if defined(_MSC_VER) && !defined(__cplusplus)
#define FASTNN_INLINE static __inline
#else
#define FASTNN_INLINE static inline
#endif

#if defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64)
#include <emmintrin.h>

FASTNN_INLINE double fastnn_hsum_pd(__m128d a)
{
    return _mm_cvtsd_f64(a) + _mm_cvtsd_f64(_mm_unpackhi_pd(a, a));
}

FASTNN_INLINE double fastnn_sumsq_f32(const float *x, ptrdiff_t n)
{
    __m128d a0 = _mm_setzero_pd(), a1 = _mm_setzero_pd();
    __m128d a2 = _mm_setzero_pd(), a3 = _mm_setzero_pd();
    __m128d v;
    __m128 f, h;
    double s, t;
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        f = _mm_loadu_ps(x + i);
        h = _mm_loadu_ps(x + i + 4);
        v = _mm_cvtps_pd(f);                  /* entries 0, 1 */
        a0 = _mm_add_pd(a0, _mm_mul_pd(v, v));
        v = _mm_cvtps_pd(_mm_movehl_ps(f, f)); /* entries 2, 3 */
        a1 = _mm_add_pd(a1, _mm_mul_pd(v, v));
        v = _mm_cvtps_pd(h);
        a2 = _mm_add_pd(a2, _mm_mul_pd(v, v));
        v = _mm_cvtps_pd(_mm_movehl_ps(h, h));
        a3 = _mm_add_pd(a3, _mm_mul_pd(v, v));
    }
    s = (fastnn_hsum_pd(a0) + fastnn_hsum_pd(a1))
        + (fastnn_hsum_pd(a2) + fastnn_hsum_pd(a3));
    for (; i < n; i++) {
        t = (double)x[i];
        s += t * t;
    }
    return s;
}

FASTNN_INLINE double fastnn_sumsq_f64(const double *x, ptrdiff_t n)
{
    __m128d a0 = _mm_setzero_pd(), a1 = _mm_setzero_pd();
    __m128d a2 = _mm_setzero_pd(), a3 = _mm_setzero_pd();
    __m128d v;
    double s, t;
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v = _mm_loadu_pd(x + i);
        a0 = _mm_add_pd(a0, _mm_mul_pd(v, v));
        v = _mm_loadu_pd(x + i + 2);
        a1 = _mm_add_pd(a1, _mm_mul_pd(v, v));
        v = _mm_loadu_pd(x + i + 4);
        a2 = _mm_add_pd(a2, _mm_mul_pd(v, v));
        v = _mm_loadu_pd(x + i + 6);
        a3 = _mm_add_pd(a3, _mm_mul_pd(v, v));
    }
    s = (fastnn_hsum_pd(a0) + fastnn_hsum_pd(a1))
        + (fastnn_hsum_pd(a2) + fastnn_hsum_pd(a3));
    for (; i < n; i++) {
        t = x[i];
        s += t * t;
    }
    return s;
}

#else /* no SSE2: the same partial sums in plain C */

#define FASTNN_SUMSQ_BODY                                                    \
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                  \
    double s, t;                                                             \
    ptrdiff_t i = 0;                                                         \
    int j;                                                                   \
    for (; i + 8 <= n; i += 8) {                                             \
        for (j = 0; j < 8; j++) {                                            \
            t = (double)x[i + j];                                            \
            a[j] += t * t;                                                   \
        }                                                                    \
    }                                                                        \
    s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));   \
    for (; i < n; i++) {                                                     \
        t = (double)x[i];                                                    \
        s += t * t;                                                          \
    }                                                                        \
    return s;

FASTNN_INLINE double fastnn_sumsq_f32(const float *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_BODY
}

FASTNN_INLINE double fastnn_sumsq_f64(const double *x, ptrdiff_t n)
{
    FASTNN_SUMSQ_BODY
}

#undef FASTNN_SUMSQ_BODY

#endif

#endif /* FASTNN_SUMSQ_H */
