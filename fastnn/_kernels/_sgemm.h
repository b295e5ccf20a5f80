/* fastnn's own float32 GEMM for AVX2 + FMA CPUs; used by gemm() in _common.pxd.
 *
 * Three row-major products, each C = op(A) op(B) (alpha 1, beta 0), the only
 * ones the kernels ask for:
 *   fastnn_sgemm_nn  C[M,N] = A[M,K]   B[K,N]    forward:          X W
 *   fastnn_sgemm_nt  C[M,N] = A[M,K]   B[N,K]^T  input gradient:   dZ W^T
 *   fastnn_sgemm_tn  C[M,N] = A[K,M]^T B[K,N]    weight gradient:  X^T dZ
 *
 * Why not only BLAS (measured on a 2-core AMD EPYC, Zen 3, AVX2, GCC 12; see
 * docs/performance.md): a training step multiplies small panels (a batch of 64
 * rows, 256 to 784 inputs, one thread's share of the weights) where
 * OpenBLAS's single-thread sgemm spends a good part of its time packing both
 * operands for large-matrix blocking. These kernels pack only what the
 * register block re-reads from L1:
 *   nn: a 6 x 16 register block (12 ymm accumulators); B's 16-column panel
 *       is copied into a contiguous stack buffer (rows of W are 2 KiB apart, so
 *       unpacked they map to two L1 sets and thrash), A is broadcast straight
 *       from its rows. Blocked by KC rows of B and MC rows of A.
 *   nt: both operands are contiguous along the summed dimension, so a 4 x 3
 *       block of dot products runs 8 lanes at a time, no packing; blocked by
 *       MC rows of A and KC of the sum.
 *   tn: a 6 x 16 register block over k; B's panels and A's 6-column strip are
 *       packed (malloc'ed work, freed on return). Blocked by KC.
 * At these shapes they run 10-25% faster than OpenBLAS's sgemm on one thread.
 * Products over a K-block are summed in one fixed order, so results are
 * deterministic, but they differ from BLAS's in rounding (FMA, order of the
 * sum): the tests compare them with NumPy at float32 tolerances.
 *
 * Portability: the code is compiled for AVX2 + FMA through function
 * attributes (GCC, Clang on x86-64), so the build stays at the baseline and
 * fastnn_sgemm_ready() chooses it at run time only when the CPU and OS have
 * both. Elsewhere (MSVC, arm64, an older CPU, a failed malloc) every call
 * returns 0 and the caller uses BLAS.
 */
#ifndef FASTNN_SGEMM_H
#define FASTNN_SGEMM_H

#include <stddef.h>
#include <stdlib.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTNN_SGEMM_AVX2 1
#else
#define FASTNN_SGEMM_AVX2 0
#endif

/* -1: not checked yet; 0: use BLAS; 1: use these kernels. Checked lazily (a
 * benign race: every thread writes the same value); tests switch it with
 * fastnn_sgemm_set. One copy per extension module (static). */
static int fastnn_sgemm_state = -1;

static int fastnn_sgemm_cpu_ok(void)
{
#if FASTNN_SGEMM_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Use the kernels if ``on`` and the CPU can; returns whether they are used. */
static int fastnn_sgemm_set(int on)
{
    fastnn_sgemm_state = on && fastnn_sgemm_cpu_ok();
    return fastnn_sgemm_state;
}

static int fastnn_sgemm_ready(void)
{
    if (fastnn_sgemm_state < 0)
        fastnn_sgemm_set(1);
    return fastnn_sgemm_state;
}

#if FASTNN_SGEMM_AVX2
#include <immintrin.h>

#define FASTNN_AVX2 __attribute__((target("avx2,fma")))
#define FASTNN_ALWAYS FASTNN_AVX2 static inline __attribute__((always_inline))

#define FASTNN_NN_KC 256 /* rows of B per packed panel: 16 KiB on the stack */
#define FASTNN_NN_MC 256 /* rows of A per block: MC x KC floats stay in L2 */
#define FASTNN_NT_KC 512 /* summed entries per block */
#define FASTNN_NT_MC 128 /* rows of A per block */
#define FASTNN_TN_KC 256 /* summed rows per block */

/* Lanes [0, n) of a ymm: all ones; the others zero (n may be <= 0 or > 8). */
FASTNN_ALWAYS __m256i fastnn_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Copy rows [0, k) of a 16-wide column panel (``nr`` <= 16 columns valid) of
 * B into dst (16 floats per row, 32-byte aligned, the rest zero). */
FASTNN_ALWAYS void fastnn_pack16(float *dst, const float *B, ptrdiff_t ldb,
                                 int k, int nr)
{
    if (nr == 16) {
        for (int r = 0; r < k; r++) {
            const float *s = B + r * ldb;
            _mm256_store_ps(dst + 16 * r, _mm256_loadu_ps(s));
            _mm256_store_ps(dst + 16 * r + 8, _mm256_loadu_ps(s + 8));
        }
    } else {
        __m256i m0 = fastnn_lanes(nr), m1 = fastnn_lanes(nr - 8);
        for (int r = 0; r < k; r++) {
            const float *s = B + r * ldb;
            _mm256_store_ps(dst + 16 * r, _mm256_maskload_ps(s, m0));
            _mm256_store_ps(dst + 16 * r + 8, _mm256_maskload_ps(s + 8, m1));
        }
    }
}

/* The 6 x 16 register block, ``mr`` <= 6 rows, over k = 0..K-1:
 *   acc[i][:] += a(i, k) * bp[16 k : 16 k + 16]
 * with a(i, k) = A[i * a_row + k * a_col] (nn: row i of A; tn: the packed
 * strip). Then C[i, 0:nr] = acc (add: C += acc). */
FASTNN_ALWAYS void fastnn_block_6x16(int mr, int K, const float *A,
                                     ptrdiff_t a_row, ptrdiff_t a_col,
                                     const float *bp, float *C, ptrdiff_t ldc,
                                     int nr, int add)
{
    __m256 c[6][2];
    for (int i = 0; i < 6; i++)
        c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m256 b0 = _mm256_load_ps(bp + 16 * k);
        __m256 b1 = _mm256_load_ps(bp + 16 * k + 8);
        for (int i = 0; i < 6; i++)
            if (i < mr) {
                __m256 a = _mm256_broadcast_ss(A + i * a_row + k * a_col);
                c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
                c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
            }
    }
    if (nr == 16) {
        for (int i = 0; i < 6; i++)
            if (i < mr) {
                float *ci = C + i * ldc;
                if (add) {
                    c[i][0] = _mm256_add_ps(_mm256_loadu_ps(ci), c[i][0]);
                    c[i][1] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), c[i][1]);
                }
                _mm256_storeu_ps(ci, c[i][0]);
                _mm256_storeu_ps(ci + 8, c[i][1]);
            }
    } else {
        __m256i m0 = fastnn_lanes(nr), m1 = fastnn_lanes(nr - 8);
        for (int i = 0; i < 6; i++)
            if (i < mr) {
                float *ci = C + i * ldc;
                if (add) {
                    c[i][0] = _mm256_add_ps(_mm256_maskload_ps(ci, m0), c[i][0]);
                    c[i][1] = _mm256_add_ps(_mm256_maskload_ps(ci + 8, m1), c[i][1]);
                }
                _mm256_maskstore_ps(ci, m0, c[i][0]);
                _mm256_maskstore_ps(ci + 8, m1, c[i][1]);
            }
    }
}

/* fastnn_block_6x16 with ``mr`` a compile-time constant in each branch, so
 * the row loops unroll and the accumulators stay in registers. */
FASTNN_ALWAYS void fastnn_block_rows(int mr, int K, const float *A,
                                     ptrdiff_t a_row, ptrdiff_t a_col,
                                     const float *bp, float *C, ptrdiff_t ldc,
                                     int nr, int add)
{
    switch (mr) {
    case 6: fastnn_block_6x16(6, K, A, a_row, a_col, bp, C, ldc, nr, add); break;
    case 5: fastnn_block_6x16(5, K, A, a_row, a_col, bp, C, ldc, nr, add); break;
    case 4: fastnn_block_6x16(4, K, A, a_row, a_col, bp, C, ldc, nr, add); break;
    case 3: fastnn_block_6x16(3, K, A, a_row, a_col, bp, C, ldc, nr, add); break;
    case 2: fastnn_block_6x16(2, K, A, a_row, a_col, bp, C, ldc, nr, add); break;
    default: fastnn_block_6x16(1, K, A, a_row, a_col, bp, C, ldc, nr, add); break;
    }
}

FASTNN_AVX2 static void fastnn_sgemm_nn_avx2(int M, int N, int K, const float *A,
                                             int lda, const float *B, int ldb,
                                             float *C, int ldc)
{
    float bp[FASTNN_NN_KC * 16] __attribute__((aligned(32)));
    for (int k0 = 0; k0 < K; k0 += FASTNN_NN_KC) {
        int kc = K - k0 < FASTNN_NN_KC ? K - k0 : FASTNN_NN_KC;
        for (int m0 = 0; m0 < M; m0 += FASTNN_NN_MC) {
            int m1 = M - m0 < FASTNN_NN_MC ? M : m0 + FASTNN_NN_MC;
            for (int n = 0; n < N; n += 16) {
                int nr = N - n < 16 ? N - n : 16;
                fastnn_pack16(bp, B + (ptrdiff_t)k0 * ldb + n, ldb, kc, nr);
                for (int m = m0; m < m1; m += 6) {
                    int mr = m1 - m < 6 ? m1 - m : 6;
                    fastnn_block_rows(mr, kc, A + (ptrdiff_t)m * lda + k0, lda, 1,
                                      bp, C + (ptrdiff_t)m * ldc + n, ldc, nr,
                                      k0 > 0);
                }
            }
        }
    }
}

FASTNN_ALWAYS float fastnn_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* A 4 x 3 block (``mr`` <= 4 rows of A, ``nr`` <= 3 rows of B) of dot
 * products over k = 0..K-1, 8 lanes at a time (the tail masked):
 * C[i, j] = (add ? C[i, j] : 0) + sum_k A[i, k] B[j, k]. */
FASTNN_ALWAYS void fastnn_dots_4x3(int mr, int nr, int K, const float *A,
                                   ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                                   float *C, ptrdiff_t ldc, int add)
{
    __m256 c[4][3], b[3];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            c[i][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        for (int j = 0; j < 3; j++)
            if (j < nr)
                b[j] = _mm256_loadu_ps(B + j * ldb + k);
        for (int i = 0; i < 4; i++)
            if (i < mr) {
                __m256 a = _mm256_loadu_ps(A + i * lda + k);
                for (int j = 0; j < 3; j++)
                    if (j < nr)
                        c[i][j] = _mm256_fmadd_ps(a, b[j], c[i][j]);
            }
    }
    if (k < K) {
        __m256i tail = fastnn_lanes(K - k);
        for (int j = 0; j < 3; j++)
            if (j < nr)
                b[j] = _mm256_maskload_ps(B + j * ldb + k, tail);
        for (int i = 0; i < 4; i++)
            if (i < mr) {
                __m256 a = _mm256_maskload_ps(A + i * lda + k, tail);
                for (int j = 0; j < 3; j++)
                    if (j < nr)
                        c[i][j] = _mm256_fmadd_ps(a, b[j], c[i][j]);
            }
    }
    for (int i = 0; i < 4; i++)
        if (i < mr)
            for (int j = 0; j < 3; j++)
                if (j < nr) {
                    float s = fastnn_hsum(c[i][j]);
                    C[i * ldc + j] = add ? C[i * ldc + j] + s : s;
                }
}

FASTNN_ALWAYS void fastnn_dots_rows(int mr, int nr, int K, const float *A,
                                    ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                                    float *C, ptrdiff_t ldc, int add)
{
    if (mr == 4) {
        switch (nr) {
        case 3: fastnn_dots_4x3(4, 3, K, A, lda, B, ldb, C, ldc, add); break;
        case 2: fastnn_dots_4x3(4, 2, K, A, lda, B, ldb, C, ldc, add); break;
        default: fastnn_dots_4x3(4, 1, K, A, lda, B, ldb, C, ldc, add); break;
        }
        return;
    }
    for (int i = 0; i < mr; i++) {
        const float *a = A + i * lda;
        float *c = C + i * ldc;
        switch (nr) {
        case 3: fastnn_dots_4x3(1, 3, K, a, lda, B, ldb, c, ldc, add); break;
        case 2: fastnn_dots_4x3(1, 2, K, a, lda, B, ldb, c, ldc, add); break;
        default: fastnn_dots_4x3(1, 1, K, a, lda, B, ldb, c, ldc, add); break;
        }
    }
}

FASTNN_AVX2 static void fastnn_sgemm_nt_avx2(int M, int N, int K, const float *A,
                                             int lda, const float *B, int ldb,
                                             float *C, int ldc)
{
    for (int k0 = 0; k0 < K; k0 += FASTNN_NT_KC) {
        int kc = K - k0 < FASTNN_NT_KC ? K - k0 : FASTNN_NT_KC;
        for (int m0 = 0; m0 < M; m0 += FASTNN_NT_MC) {
            int m1 = M - m0 < FASTNN_NT_MC ? M : m0 + FASTNN_NT_MC;
            for (int n = 0; n < N; n += 3) {
                int nr = N - n < 3 ? N - n : 3;
                for (int m = m0; m < m1; m += 4) {
                    int mr = m1 - m < 4 ? m1 - m : 4;
                    fastnn_dots_rows(mr, nr, kc, A + (ptrdiff_t)m * lda + k0, lda,
                                     B + (ptrdiff_t)n * ldb + k0, ldb,
                                     C + (ptrdiff_t)m * ldc + n, ldc, k0 > 0);
                }
            }
        }
    }
}

/* 0 when the work buffer cannot be had (the caller falls back to BLAS). */
FASTNN_AVX2 static int fastnn_sgemm_tn_avx2(int M, int N, int K, const float *A,
                                            int lda, const float *B, int ldb,
                                            float *C, int ldc)
{
    int panels = (N + 15) / 16;
    int kc0 = K < FASTNN_TN_KC ? K : FASTNN_TN_KC;
    size_t bytes = sizeof(float) * ((size_t)panels * kc0 * 16 + (size_t)kc0 * 6) + 32;
    char *work = (char *)malloc(bytes);
    if (work == NULL)
        return 0;
    float *bp = (float *)(((size_t)work + 31) & ~(size_t)31);
    float *ap = bp + (size_t)panels * kc0 * 16;
    for (int k0 = 0; k0 < K; k0 += FASTNN_TN_KC) {
        int kc = K - k0 < FASTNN_TN_KC ? K - k0 : FASTNN_TN_KC;
        for (int p = 0; p < panels; p++) {
            int n = 16 * p;
            fastnn_pack16(bp + (size_t)p * kc * 16, B + (ptrdiff_t)k0 * ldb + n, ldb,
                          kc, N - n < 16 ? N - n : 16);
        }
        for (int m = 0; m < M; m += 6) {
            int mr = M - m < 6 ? M - m : 6;
            for (int k = 0; k < kc; k++)
                for (int i = 0; i < 6; i++)
                    ap[6 * k + i] = i < mr ? A[(ptrdiff_t)(k0 + k) * lda + m + i] : 0.0f;
            for (int p = 0; p < panels; p++) {
                int n = 16 * p;
                fastnn_block_rows(mr, kc, ap, 1, 6, bp + (size_t)p * kc * 16,
                                  C + (ptrdiff_t)m * ldc + n, ldc,
                                  N - n < 16 ? N - n : 16, k0 > 0);
            }
        }
    }
    free(work);
    return 1;
}

#undef FASTNN_ALWAYS
#endif /* FASTNN_SGEMM_AVX2 */

/* C = op(A) op(B) for M, N, K >= 1 with the kernels above; returns 0 (nothing
 * written) when they are off or cannot run: then the caller uses BLAS. */
static int fastnn_sgemm(int trans_a, int trans_b, int M, int N, int K,
                        const float *A, int lda, const float *B, int ldb,
                        float *C, int ldc)
{
#if FASTNN_SGEMM_AVX2
    if (!fastnn_sgemm_ready() || M <= 0 || N <= 0 || K <= 0)
        return 0;
    if (!trans_a && !trans_b) {
        fastnn_sgemm_nn_avx2(M, N, K, A, lda, B, ldb, C, ldc);
        return 1;
    }
    if (!trans_a && trans_b) {
        fastnn_sgemm_nt_avx2(M, N, K, A, lda, B, ldb, C, ldc);
        return 1;
    }
    if (trans_a && !trans_b)
        return fastnn_sgemm_tn_avx2(M, N, K, A, lda, B, ldb, C, ldc);
#else
    (void)trans_a; (void)trans_b; (void)M; (void)N; (void)K; (void)A;
    (void)lda; (void)B; (void)ldb; (void)C; (void)ldc;
#endif
    return 0;
}

#endif /* FASTNN_SGEMM_H */
