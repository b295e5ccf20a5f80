/* Dropout masks from a counter-based generator, in C; for the Cython kernels.
 *
 * fastnn_philox4x32_10 is Philox4x32-10 exactly as in Random123 (Salmon et
 * al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) and cuRAND:
 * ten rounds, the key bumped by the Weyl constants before every round but the
 * first. fastnn._philox (NumPy) is checked against Random123's known-answer
 * vectors in tests/contract/test_philox.py; this C must agree with it bit for bit
 * (tested through the Cython kernels that use it).
 *
 * The mask contract, shared with fastnn._philox (NumPy, the definition) and
 * fastnn._kernels._numba_philox: element (r, c) of a (rows, n_out) mask has
 * flat index e = (row_offset + r) * n_out + c; its word is word e & 3 of
 * philox4x32_10(ctr = (e >> 2, layer, step low, step high),
 *               key = (seed low, seed high));
 * keep = word >= threshold (so threshold 0 keeps everything). A mask depends
 * only on (seed, step, layer) and the element's place in the layer's full
 * output, not on how the rows are batched or the columns split over threads.
 * e >> 2 is taken modulo 2^32: masks repeat after 2^34 elements of one layer
 * and step, far beyond any layer output.
 *
 * fastnn_dropout_keep fills columns [c0, c1) of every row (threads split the
 * columns, each writing only its own) and generates one Philox block per four
 * consecutive flat indices that it touches, not one per element: twenty
 * 32x32->64-bit multiplies per four mask bytes.
 */
#ifndef FASTNN_PHILOX_H
#define FASTNN_PHILOX_H

#include <stddef.h>
#include <stdint.h>

#ifndef FASTNN_INLINE
#if defined(_MSC_VER) && !defined(__cplusplus)
#define FASTNN_INLINE static __inline
#else
#define FASTNN_INLINE static inline
#endif
#endif

#define FASTNN_PHILOX_M0 UINT32_C(0xD2511F53)
#define FASTNN_PHILOX_M1 UINT32_C(0xCD9E8D57)
#define FASTNN_PHILOX_W0 UINT32_C(0x9E3779B9)
#define FASTNN_PHILOX_W1 UINT32_C(0xBB67AE85)

FASTNN_INLINE void fastnn_philox4x32_10(const uint32_t ctr[4],
                                        const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    int round;
    for (round = 0; round < 10; round++) {
        uint64_t p0, p1;
        if (round > 0) {
            k0 += FASTNN_PHILOX_W0;
            k1 += FASTNN_PHILOX_W1;
        }
        p0 = (uint64_t)FASTNN_PHILOX_M0 * c0;
        p1 = (uint64_t)FASTNN_PHILOX_M1 * c2;
        c0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        c2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* keep[r * n_out + c] for 0 <= r < rows and c0 <= c < c1 only. The caller
 * guarantees 0 <= c0 <= c1 <= n_out, row_offset >= 0 and step >= 0. */
FASTNN_INLINE void fastnn_dropout_keep(uint64_t seed, int64_t step,
                                       uint32_t layer, int64_t row_offset,
                                       ptrdiff_t rows, ptrdiff_t n_out,
                                       ptrdiff_t c0, ptrdiff_t c1,
                                       uint32_t threshold, unsigned char *keep)
{
    uint32_t key[2], ctr[4], w[4];
    ptrdiff_t r;
    key[0] = (uint32_t)seed;
    key[1] = (uint32_t)(seed >> 32);
    ctr[1] = layer;
    ctr[2] = (uint32_t)(uint64_t)step;
    ctr[3] = (uint32_t)((uint64_t)step >> 32);
    for (r = 0; r < rows; r++) {
        unsigned char *row = keep + r * n_out;
        uint64_t e = ((uint64_t)row_offset + (uint64_t)r) * (uint64_t)n_out +
                     (uint64_t)c0;
        ptrdiff_t c = c0;
        if (threshold == 0) { /* nothing dropped: no words needed */
            for (; c < c1; c++)
                row[c] = 1;
            continue;
        }
        /* One block per group of four flat indices; the first group of the
         * range may start part-way (e & 3 != 0), the last may end early. */
        while (c < c1) {
            unsigned j = (unsigned)(e & 3);
            ptrdiff_t n = 4 - (ptrdiff_t)j;
            if (n > c1 - c)
                n = c1 - c;
            ctr[0] = (uint32_t)(e >> 2);
            fastnn_philox4x32_10(ctr, key, w);
            for (; n > 0; n--, j++, c++, e++)
                row[c] = (unsigned char)(w[j] >= threshold);
        }
    }
}

#endif /* FASTNN_PHILOX_H */
