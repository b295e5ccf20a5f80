/* fastnn's own float32 GEMM for AVX2 + FMA CPUs; used by gemm() in _common.pxd.
 *
 * Three row-major products, each C = op(A) op(B) (alpha 1, beta 0), the only
 * ones the kernels ask for:
 *   nn  C[M,N] = A[M,K]   B[K,N]    forward:          X W
 *   nt  C[M,N] = A[M,K]   B[N,K]^T  input gradient:   dZ W^T
 *   tn  C[M,N] = A[K,M]^T B[K,N]    weight gradient:  X^T dZ
 * through fastnn_sgemm (at the end).
 *
 * Why not only BLAS (measured on a 2-core AMD EPYC, Zen 3, AVX2, GCC 12; see
 * docs/performance.md): a training step multiplies small panels (a batch of 64
 * rows, 256 to 784 inputs, one thread's share of the weights) where
 * OpenBLAS's single-thread sgemm spends a good part of its time packing for
 * large-matrix blocking. These kernels pack only what the register block
 * re-reads from L1, and all three share one 6 x 16 register block (12 ymm
 * accumulators, two panel loads and six broadcasts per 12 FMAs):
 *   nn: B's 16-column panels are copied into a contiguous stack buffer (rows
 *       of W are 2 KiB apart, so unpacked they map to two L1 sets and
 *       thrash). A's MC x KC block is packed once into 6-row strips in work
 *       space, so the register block broadcasts from one contiguous stream
 *       (broadcasting straight from six rows of A, 2 KiB apart, was 3-9%
 *       slower per training step). Blocked by KC rows of B and MC rows of A.
 *   nt: the same, with each 16-row strip of B packed transposed (8 x 8 tiles
 *       transposed in registers). A first version with 4 x 3 blocks of dot
 *       products and no packing streamed A from L2 and ran at 35-55 GFLOP/s.
 *   tn: B's panels and A's 6-column strip are packed into work space.
 *       Blocked by KC.
 * Work space is the caller's (fastnn_sgemm_work bytes), or malloc'ed.
 * At L64's per-thread shapes they ran at 57-74 GFLOP/s against OpenBLAS's
 * 49-59 in the same minutes; at L256's (256-row batches) they are level.
 * Products over a K-block are summed in one fixed order, so results are
 * deterministic, but they differ from BLAS's in rounding (FMA, order of the
 * sum): the tests hold them to the float32 error bound of a k-term sum.
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

/* The entry points are static inline: an extension that includes this header
 * and calls none of them gets no unused-function warnings. */
#if defined(_MSC_VER) && !defined(__cplusplus)
#define FASTNN_SGEMM_API static __inline
#else
#define FASTNN_SGEMM_API static inline
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTNN_SGEMM_AVX2 1
#else
#define FASTNN_SGEMM_AVX2 0
#endif

/* -1: not checked yet; 0: use BLAS; 1: use these kernels. Checked lazily (a
 * benign race: every thread writes the same value); tests switch it with
 * fastnn_sgemm_set. One copy per extension module (static). */
static int fastnn_sgemm_state = -1;

FASTNN_SGEMM_API int fastnn_sgemm_cpu_ok(void)
{
#if FASTNN_SGEMM_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Use the kernels if ``on`` and the CPU can; returns whether they are used. */
FASTNN_SGEMM_API int fastnn_sgemm_set(int on)
{
    fastnn_sgemm_state = on && fastnn_sgemm_cpu_ok();
    return fastnn_sgemm_state;
}

FASTNN_SGEMM_API int fastnn_sgemm_ready(void)
{
    if (fastnn_sgemm_state < 0)
        fastnn_sgemm_set(1);
    return fastnn_sgemm_state;
}

/* How many products each path ran, for tests that must observe which one
 * did (never inferred from rounding, which depends on the CPU and the BLAS
 * kernel): [FASTNN_RAN_OWN] fastnn's kernels, [FASTNN_RAN_SGEMM] BLAS's
 * sgemm, [FASTNN_RAN_DGEMM] BLAS's dgemm. One copy per extension module;
 * relaxed atomic adds (a few cycles beside a product of thousands). */
enum { FASTNN_RAN_OWN = 0, FASTNN_RAN_SGEMM = 1, FASTNN_RAN_DGEMM = 2 };
static long long fastnn_gemm_ran[3];

FASTNN_SGEMM_API void fastnn_gemm_count(int path)
{
#if defined(__GNUC__) || defined(__clang__)
    __atomic_fetch_add(&fastnn_gemm_ran[path], 1, __ATOMIC_RELAXED);
#else
    fastnn_gemm_ran[path] += 1; /* MSVC: the tests that read it run one thread */
#endif
}

/* The count of ``path``; reset it to zero if ``reset``. */
FASTNN_SGEMM_API long long fastnn_gemm_counted(int path, int reset)
{
    long long n = fastnn_gemm_ran[path];
    if (reset)
        fastnn_gemm_ran[path] = 0;
    return n;
}

#define FASTNN_NN_KC 256 /* rows of B per packed panel: 16 KiB on the stack */
#define FASTNN_NN_MC 256 /* rows of A per packed block: MC x KC floats, in L2 */
#define FASTNN_TN_KC 256 /* summed rows per block */

/* Bytes of work space fastnn_sgemm needs for op(A) op(B) of shape (M, N, K)
 * (on every platform: the training loop allocates it): nn and nt pack A's
 * blocks (up to MC x KC floats, 2 floats of slack), tn packs B's panels
 * and one 6-column strip of A. */
FASTNN_SGEMM_API size_t fastnn_sgemm_work(int trans_a, int trans_b, int M,
                                          int N, int K)
{
    (void)trans_b;
    if (M <= 0 || N <= 0 || K <= 0)
        return 0;
    if (!trans_a) {
        size_t mc = M < FASTNN_NN_MC ? (size_t)M : FASTNN_NN_MC;
        size_t kc = K < FASTNN_NN_KC ? (size_t)K : FASTNN_NN_KC;
        return sizeof(float) * ((mc + 5) / 6 * 6 * kc + 2) + 32;
    }
    size_t kc = K < FASTNN_TN_KC ? (size_t)K : FASTNN_TN_KC;
    return sizeof(float) * (((size_t)N + 15) / 16 * kc * 16 + kc * 6) + 32;
}

/* The 32-byte aligned start of a work space. */
static inline float *fastnn_work_start(void *work)
{
    return (float *)(((size_t)work + 31) & ~(size_t)31);
}

#if FASTNN_SGEMM_AVX2
#include <immintrin.h>

#define FASTNN_AVX2 __attribute__((target("avx2,fma")))
#define FASTNN_ALWAYS FASTNN_AVX2 static inline __attribute__((always_inline))


/* Lanes [0, n) of a ymm: all ones; the others zero (n may be <= 0 or > 8). */
FASTNN_ALWAYS __m256i fastnn_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Copy rows [0, k) of a 16-wide column panel (``nr`` <= 16 columns valid) of
 * B into dst (16 floats per row, 32-byte aligned, the rest zero); with
 * ``idx``, row r is B's row idx[r]. */
FASTNN_ALWAYS void fastnn_pack16(float *dst, const float *B, ptrdiff_t ldb,
                                 int k, int nr, const int *idx)
{
    if (nr == 16) {
        for (int r = 0; r < k; r++) {
            const float *s = B + (idx ? idx[r] : r) * ldb;
            _mm256_store_ps(dst + 16 * r, _mm256_loadu_ps(s));
            _mm256_store_ps(dst + 16 * r + 8, _mm256_loadu_ps(s + 8));
        }
    } else {
        __m256i m0 = fastnn_lanes(nr), m1 = fastnn_lanes(nr - 8);
        for (int r = 0; r < k; r++) {
            const float *s = B + (idx ? idx[r] : r) * ldb;
            _mm256_store_ps(dst + 16 * r, _mm256_maskload_ps(s, m0));
            _mm256_store_ps(dst + 16 * r + 8, _mm256_maskload_ps(s + 8, m1));
        }
    }
}

/* r[j] = column j of the 8 x 8 tile whose rows are r[0..7]. */
FASTNN_ALWAYS void fastnn_transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) /* rows 0-3, then rows 4-7 */
        for (int i = 0; i < 2; i++) {
            __m256 lo = t[4 * h + i], hi = t[4 * h + i + 2];
            u[4 * h + 2 * i] = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
            u[4 * h + 2 * i + 1] = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));
        }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
        r[j + 4] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
    }
}

/* Rows [0, k) of the transpose of a 16-row strip of B (``nr`` <= 16 rows
 * valid, each ``k`` long) into dst, as fastnn_pack16 lays them out:
 * dst[16 r + c] = B[c, r], zero for c >= nr. 8 x 8 tiles are transposed in
 * registers; the ragged edges go one entry at a time. */
FASTNN_ALWAYS void fastnn_pack16_t(float *dst, const float *B, ptrdiff_t ldb,
                                   int k, int nr)
{
    int r0 = 0;
    for (; r0 + 8 <= k; r0 += 8) {
        for (int c0 = 0; c0 < 16; c0 += 8) {
            if (c0 + 8 > nr)
                break;
            const float *s = B + c0 * ldb + r0;
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = _mm256_loadu_ps(s + i * ldb);
            fastnn_transpose8(r);
            float *d = dst + 16 * r0 + c0;
            for (int j = 0; j < 8; j++)
                _mm256_store_ps(d + j * 16, r[j]);
        }
        /* the strip's ragged columns (rows of B beyond the last full 8) */
        for (int c = nr & ~7; c < 16; c++)
            for (int r = r0; r < r0 + 8; r++)
                dst[16 * r + c] = c < nr ? B[c * ldb + r] : 0.0f;
    }
    for (int r = r0; r < k; r++) /* the rows beyond the last full 8 */
        for (int c = 0; c < 16; c++)
            dst[16 * r + c] = c < nr ? B[c * ldb + r] : 0.0f;
}

/* The 6 x 16 register block, ``mr`` <= 6 rows, over k = 0..K-1:
 *   acc[i][:] += ap[6 k + i] * bp[16 k : 16 k + 16]
 * (ap: a packed strip of A). Then row i of C, crow[i][0:nr] = acc (add:
 * += acc). */
FASTNN_ALWAYS void fastnn_block_6x16(int mr, int K, const float *ap,
                                     const float *bp, float *const *crow,
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
                __m256 a = _mm256_broadcast_ss(ap + 6 * k + i);
                c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
                c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
            }
    }
    if (nr == 16) {
        for (int i = 0; i < 6; i++)
            if (i < mr) {
                float *ci = crow[i];
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
                float *ci = crow[i];
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
 * the row loops unroll and the accumulators stay in registers; row i of C
 * starts at crow[i] + col. */
FASTNN_ALWAYS void fastnn_block_rows(int mr, int K, const float *ap,
                                     const float *bp, float *const *crow,
                                     ptrdiff_t col, int nr, int add)
{
    float *c[6];
    for (int i = 0; i < 6; i++)
        c[i] = i < mr ? crow[i] + col : NULL;
    switch (mr) {
    case 6: fastnn_block_6x16(6, K, ap, bp, c, nr, add); break;
    case 5: fastnn_block_6x16(5, K, ap, bp, c, nr, add); break;
    case 4: fastnn_block_6x16(4, K, ap, bp, c, nr, add); break;
    case 3: fastnn_block_6x16(3, K, ap, bp, c, nr, add); break;
    case 2: fastnn_block_6x16(2, K, ap, bp, c, nr, add); break;
    default: fastnn_block_6x16(1, K, ap, bp, c, nr, add); break;
    }
}

/* Rows [0, mr) (mr <= 6) of A's columns [0, kc) into ap, as the register
 * block reads a packed strip: ap[6 k + i] = A[i, k], zero for i >= mr; with
 * ``idx``, column k is A's column idx[k]. Eight consecutive columns of a
 * full strip go through an 8 x 8 register transpose (rows 6 and 7 zero) and
 * eight overlapping 8-float stores, so ap needs 2 floats of slack after
 * 6 kc; the others one entry at a time. */
FASTNN_ALWAYS void fastnn_pack6(float *ap, const float *A, ptrdiff_t lda,
                                int kc, int mr, const int *idx)
{
    int k = 0;
    if (mr == 6) {
        while (k + 8 <= kc) {
            int c = idx ? idx[k] : k;
            if (idx && idx[k + 7] != c + 7) { /* not a run of 8 (idx ascends) */
                for (int i = 0; i < 6; i++)
                    ap[6 * k + i] = A[i * lda + c];
                k++;
                continue;
            }
            __m256 r[8];
            for (int i = 0; i < 6; i++)
                r[i] = _mm256_loadu_ps(A + i * lda + c);
            r[6] = r[7] = _mm256_setzero_ps();
            fastnn_transpose8(r);
            for (int j = 0; j < 8; j++) /* the last 2 floats of each are overwritten */
                _mm256_storeu_ps(ap + 6 * (k + j), r[j]);
            k += 8;
        }
    }
    for (; k < kc; k++) {
        int c = idx ? idx[k] : k;
        for (int i = 0; i < 6; i++)
            ap[6 * k + i] = i < mr ? A[i * lda + c] : 0.0f;
    }
}

/* Row pointers of C's rows m .. m + mr - 1 (with ``idx``, row i is C's
 * row idx[i]). */
FASTNN_ALWAYS void fastnn_rows(float **crow, float *C, ptrdiff_t ldc, int m,
                               int mr, const int *idx)
{
    for (int i = 0; i < 6; i++)
        crow[i] = i < mr ? C + (ptrdiff_t)(idx ? idx[m + i] : m + i) * ldc : NULL;
}

/* nn (trans_b 0): B is (K, N); nt (trans_b 1): B is (N, K), its 16-row
 * strips packed transposed. ``ap``: fastnn_sgemm_work bytes, aligned.
 * ``kidx`` (nn only, or NULL): the K terms are A's columns and B's rows
 * kidx[0..K-1]. */
FASTNN_AVX2 static void fastnn_sgemm_nx_avx2(int trans_b, int M, int N, int K,
                                             const float *A, int lda,
                                             const float *B, int ldb, float *C,
                                             int ldc, float *ap, const int *kidx)
{
    float bp[FASTNN_NN_KC * 16] __attribute__((aligned(32)));
    float *crow[6];
    for (int k0 = 0; k0 < K; k0 += FASTNN_NN_KC) {
        int kc = K - k0 < FASTNN_NN_KC ? K - k0 : FASTNN_NN_KC;
        /* this K block: A's columns and B's rows from Ak and Bk, through ki */
        const int *ki = kidx ? kidx + k0 : NULL;
        const float *Ak = kidx ? A : A + k0;
        for (int m0 = 0; m0 < M; m0 += FASTNN_NN_MC) {
            int m1 = M - m0 < FASTNN_NN_MC ? M : m0 + FASTNN_NN_MC;
            for (int m = m0; m < m1; m += 6)
                fastnn_pack6(ap + (size_t)(m - m0) * kc, Ak + (ptrdiff_t)m * lda, lda,
                             kc, m1 - m < 6 ? m1 - m : 6, ki);
            for (int n = 0; n < N; n += 16) {
                int nr = N - n < 16 ? N - n : 16;
                if (trans_b)
                    fastnn_pack16_t(bp, B + (ptrdiff_t)n * ldb + k0, ldb, kc, nr);
                else
                    fastnn_pack16(bp, (kidx ? B : B + (ptrdiff_t)k0 * ldb) + n, ldb, kc,
                                  nr, ki);
                for (int m = m0; m < m1; m += 6) {
                    int mr = m1 - m < 6 ? m1 - m : 6;
                    fastnn_rows(crow, C, ldc, m, mr, NULL);
                    fastnn_block_rows(mr, kc, ap + (size_t)(m - m0) * kc, bp, crow, n,
                                      nr, k0 > 0);
                }
            }
        }
    }
}

/* B's 16-column panels, rows [0, kc) (kc <= FASTNN_TN_KC), into bp. */
FASTNN_AVX2 static void fastnn_tn_pack(int N, int kc, const float *B, int ldb,
                                       float *bp)
{
    for (int p = 0; p < (N + 15) / 16; p++) {
        int n = 16 * p;
        fastnn_pack16(bp + (size_t)p * kc * 16, B + n, ldb, kc, N - n < 16 ? N - n : 16,
                      NULL);
    }
}

/* C[M, N] (add: +=) = A[kc, M]^T B with B packed by fastnn_tn_pack; ap:
 * 6 kc floats of scratch for A's strips. ``midx`` (or NULL): row i of the
 * product is A's column and C's row midx[i]. */
FASTNN_AVX2 static void fastnn_tn_rows(int M, int N, int kc, const float *A,
                                       int lda, const float *bp, float *ap,
                                       float *C, int ldc, int add,
                                       const int *midx)
{
    float *crow[6];
    for (int m = 0; m < M; m += 6) {
        int mr = M - m < 6 ? M - m : 6, col[6];
        for (int i = 0; i < 6; i++)
            col[i] = i < mr ? (midx ? midx[m + i] : m + i) : -1;
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < 6; i++)
                ap[6 * k + i] = i < mr ? A[(ptrdiff_t)k * lda + col[i]] : 0.0f;
        fastnn_rows(crow, C, ldc, m, mr, midx);
        for (int p = 0; p < (N + 15) / 16; p++) {
            int n = 16 * p;
            fastnn_block_rows(mr, kc, ap, bp + (size_t)p * kc * 16, crow, n,
                              N - n < 16 ? N - n : 16, add);
        }
    }
}

/* ``ws``: fastnn_sgemm_work bytes, aligned: B's panels, then A's strip. */
FASTNN_AVX2 static void fastnn_sgemm_tn_avx2(int M, int N, int K, const float *A,
                                             int lda, const float *B, int ldb,
                                             float *C, int ldc, float *ws,
                                             const int *midx)
{
    for (int k0 = 0; k0 < K; k0 += FASTNN_TN_KC) {
        int kc = K - k0 < FASTNN_TN_KC ? K - k0 : FASTNN_TN_KC;
        float *strip = ws + (size_t)((N + 15) / 16) * kc * 16;
        fastnn_tn_pack(N, kc, B + (ptrdiff_t)k0 * ldb, ldb, ws);
        fastnn_tn_rows(M, N, kc, A + (ptrdiff_t)k0 * lda, lda, ws, strip, C, ldc,
                       k0 > 0, midx);
    }
}

#undef FASTNN_ALWAYS
#endif /* FASTNN_SGEMM_AVX2 */

/* C = op(A) op(B) for M, N, K >= 1 with the kernels above; returns 0 (nothing
 * written) when they are off or cannot run: then the caller uses BLAS.
 * ``work``: fastnn_sgemm_work(trans_a, trans_b, M, N, K) bytes, or NULL:
 * malloc'ed here (the training loop passes its own, allocated once per call,
 * so that no product allocates); 0 when none can be had.
 * ``idx`` (or NULL), ascending indices, for the products over a subset of
 * an input layer's features (the ones not zero throughout a batch):
 *   nn: C = A[:, idx] B[idx, :], K = the number of indices;
 *   tn: C[idx, :] = A[:, idx]^T B, M = the number of indices (C's other
 *       rows untouched);
 * nt takes none. */
FASTNN_SGEMM_API int fastnn_sgemm_idx(int trans_a, int trans_b, int M, int N, int K,
                                      const float *A, int lda, const float *B, int ldb,
                                      float *C, int ldc, void *work, const int *idx)
{
#if FASTNN_SGEMM_AVX2
    if (!fastnn_sgemm_ready() || M <= 0 || N <= 0 || K <= 0 || (trans_a && trans_b)
        || (idx && trans_b))
        return 0;
    void *owned = NULL;
    if (work == NULL) {
        work = owned = malloc(fastnn_sgemm_work(trans_a, trans_b, M, N, K));
        if (work == NULL)
            return 0;
    }
    if (trans_a)
        fastnn_sgemm_tn_avx2(M, N, K, A, lda, B, ldb, C, ldc, fastnn_work_start(work),
                             idx);
    else
        fastnn_sgemm_nx_avx2(trans_b, M, N, K, A, lda, B, ldb, C, ldc,
                             fastnn_work_start(work), idx);
    free(owned);
    fastnn_gemm_count(FASTNN_RAN_OWN);
    return 1;
#else
    (void)trans_a; (void)trans_b; (void)M; (void)N; (void)K; (void)A;
    (void)lda; (void)B; (void)ldb; (void)C; (void)ldc; (void)work; (void)idx;
    return 0;
#endif
}

FASTNN_SGEMM_API int fastnn_sgemm(int trans_a, int trans_b, int M, int N, int K,
                                  const float *A, int lda, const float *B, int ldb,
                                  float *C, int ldc, void *work)
{
    return fastnn_sgemm_idx(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, work,
                            NULL);
}

#endif /* FASTNN_SGEMM_H */
