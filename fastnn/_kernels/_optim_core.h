/* Adam (and AdamW), RMSprop and Adagrad over a contiguous range, in C; used
 * by _update.pyx (SGD has its own, blocked, AVX2-dispatched core:
 * _sgd_core.h).
 *
 * Each function updates entries [0, n) of the parameters P from the gradient
 * G (only read) and the optimizer's slots, with fastnn.reference.update's
 * arithmetic operation by operation in the array dtype (the build has
 * -ffp-contract=off, so no fused multiply-add changes a rounding; sqrt and
 * division are IEEE-exact), so float32 and float64 results equal NumPy's bit
 * for bit. ``decay``: the entries are weights; ``coupled``: weight decay is
 * L2 added to the gradient (g + wd * w), else AdamW's decoupled shrink
 * (w * shrink, before the step). The scalars are the step's, already in the
 * array dtype (contract.step_scalars). Loops branch only on loop-invariant
 * flags, which GCC unswitches; the buffers may be slots of one array, so
 * nothing is declared restrict.
 *
 * Every value stored (parameter and slot) below the dtype's smallest normal
 * number in magnitude is stored as zero (FASTNN_FLUSH; the reference does
 * the same). Adam's normalised steps drive unused weights, and their moments,
 * into the subnormal range, where each multiply takes a microcode assist on
 * x86: an MNIST epoch slowed from 2.8 s to 5.8 s over four epochs with 56,781
 * subnormal weights. The flush changes nothing above 1.2e-38 (float32),
 * 2.2e-308 (float64); TensorFlow and XLA flush subnormals on CPUs too.
 */
#ifndef FASTNN_OPTIM_CORE_H
#define FASTNN_OPTIM_CORE_H

#include <float.h>
#include <math.h>
#include <stddef.h>

/* An AVX2 clone of each loop besides the baseline one, chosen at load time
 * (GCC's function multiversioning; elementwise IEEE arithmetic without FMA
 * rounds alike at any vector width, so both give the same bits). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
    && defined(__linux__)
#define FASTNN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTNN_CLONES
#endif

/* x, or +0 where |x| is below TINY (NaN stays NaN): an absolute value, a
 * compare and a blend once vectorised, which takes -fno-trapping-math (see
 * setup.py): without it GCC keeps the select a branch and the loop scalar,
 * at 3.3 ms against 0.7 ms per Adam update of 932,362 parameters. */
#define FASTNN_FLUSH(x, ABS, TINY) (ABS(x) < (TINY) ? 0 : (x))

/* Each loop is expanded once per combination of its flags as literals
 * (DECAY, COUPLED, AMSGRAD ...), so that every expansion is branch-free and
 * vectorises: left as run-time flags, the loop grew past GCC's unswitching
 * limits and ran scalar (Adam's update: 3.6 ms against 0.7 ms per call on
 * the 932,362 parameters of the 784-512x3-10 network). */
#define FASTNN_ADAM_LOOP(DECAY, COUPLED, AMSGRAD, SQRT, ABS, TINY)           \
    for (i = 0; i < n; i++) {                                                \
        w = P[i];                                                            \
        g = G[i];                                                            \
        if (DECAY) {                                                         \
            if (COUPLED)                                                     \
                g = g + wd * w;                                              \
            else                                                             \
                w = w * shrink;                                              \
        }                                                                    \
        m = M[i] + one_minus_b1 * (g - M[i]);                                \
        M[i] = FASTNN_FLUSH(m, ABS, TINY);                                   \
        v = V[i] * b2 + one_minus_b2 * (g * g);                              \
        V[i] = FASTNN_FLUSH(v, ABS, TINY);                                   \
        if (AMSGRAD) {                                                       \
            vm = VMAX[i];                                                    \
            vm = (v > vm || v != v) ? v : vm; /* np.maximum: NaN wins */     \
            VMAX[i] = FASTNN_FLUSH(vm, ABS, TINY);                           \
            v = vm;                                                          \
        }                                                                    \
        w = w - step_size * (m / (SQRT(v) / bc2_sqrt + eps));                \
        P[i] = FASTNN_FLUSH(w, ABS, TINY);                                   \
    }

#define FASTNN_ADAM_DEFINE(NAME, T, SQRT, ABS, TINY)                         \
    FASTNN_CLONES static void NAME(                                          \
        T *P, const T *G, T *M, T *V, T *VMAX, ptrdiff_t n, int amsgrad,     \
        int decay, int coupled, T wd, T shrink, T one_minus_b1, T b2,        \
        T one_minus_b2, T step_size, T bc2_sqrt, T eps)                      \
    {                                                                        \
        ptrdiff_t i;                                                         \
        T w, g, m, v, vm;                                                    \
        if (decay && coupled) {                                              \
            if (amsgrad) {                                                   \
                FASTNN_ADAM_LOOP(1, 1, 1, SQRT, ABS, TINY)                   \
            } else {                                                         \
                FASTNN_ADAM_LOOP(1, 1, 0, SQRT, ABS, TINY)                   \
            }                                                                \
        } else if (decay) {                                                  \
            if (amsgrad) {                                                   \
                FASTNN_ADAM_LOOP(1, 0, 1, SQRT, ABS, TINY)                   \
            } else {                                                         \
                FASTNN_ADAM_LOOP(1, 0, 0, SQRT, ABS, TINY)                   \
            }                                                                \
        } else if (amsgrad) {                                                \
            FASTNN_ADAM_LOOP(0, 0, 1, SQRT, ABS, TINY)                       \
        } else {                                                             \
            FASTNN_ADAM_LOOP(0, 0, 0, SQRT, ABS, TINY)                       \
        }                                                                    \
    }

#define FASTNN_RMSPROP_LOOP(DECAY, MOMENTUM, CENTERED, SQRT, ABS, TINY)      \
    for (i = 0; i < n; i++) {                                                \
        w = P[i];                                                            \
        g = G[i];                                                            \
        if (DECAY)                                                           \
            g = g + wd * w;                                                  \
        a = A[i] * rho + one_minus_rho * (g * g);                            \
        A[i] = FASTNN_FLUSH(a, ABS, TINY);                                   \
        if (CENTERED) {                                                      \
            ga = GA[i] + one_minus_rho * (g - GA[i]);                        \
            GA[i] = FASTNN_FLUSH(ga, ABS, TINY);                             \
            d = SQRT(a - ga * ga);                                           \
        } else {                                                             \
            d = SQRT(a);                                                     \
        }                                                                    \
        d = d + eps;                                                         \
        if (MOMENTUM) {                                                      \
            b = BUF[i] * momentum + g / d;                                   \
            BUF[i] = FASTNN_FLUSH(b, ABS, TINY);                             \
            w = w - lr * b;                                                  \
        } else {                                                             \
            w = w - lr * (g / d);                                            \
        }                                                                    \
        P[i] = FASTNN_FLUSH(w, ABS, TINY);                                   \
    }

#define FASTNN_RMSPROP_CENTERED(DECAY, MOMENTUM, SQRT, ABS, TINY)            \
    if (centered) {                                                          \
        FASTNN_RMSPROP_LOOP(DECAY, MOMENTUM, 1, SQRT, ABS, TINY)             \
    } else {                                                                 \
        FASTNN_RMSPROP_LOOP(DECAY, MOMENTUM, 0, SQRT, ABS, TINY)             \
    }

#define FASTNN_RMSPROP_DEFINE(NAME, T, SQRT, ABS, TINY)                      \
    FASTNN_CLONES static void NAME(                                          \
        T *P, const T *G, T *A, T *BUF, T *GA, ptrdiff_t n, int has_momentum, \
        int centered, int decay, T wd, T rho, T one_minus_rho, T momentum,   \
        T eps, T lr)                                                         \
    {                                                                        \
        ptrdiff_t i;                                                         \
        T w, g, a, ga, d, b;                                                 \
        if (decay) {                                                         \
            if (has_momentum) {                                              \
                FASTNN_RMSPROP_CENTERED(1, 1, SQRT, ABS, TINY)               \
            } else {                                                         \
                FASTNN_RMSPROP_CENTERED(1, 0, SQRT, ABS, TINY)               \
            }                                                                \
        } else if (has_momentum) {                                           \
            FASTNN_RMSPROP_CENTERED(0, 1, SQRT, ABS, TINY)                   \
        } else {                                                             \
            FASTNN_RMSPROP_CENTERED(0, 0, SQRT, ABS, TINY)                   \
        }                                                                    \
    }

#define FASTNN_ADAGRAD_LOOP(DECAY, SQRT, ABS, TINY)                          \
    for (i = 0; i < n; i++) {                                                \
        w = P[i];                                                            \
        g = G[i];                                                            \
        if (DECAY)                                                           \
            g = g + wd * w;                                                  \
        s = S[i] + g * g;                                                    \
        S[i] = FASTNN_FLUSH(s, ABS, TINY);                                   \
        w = w - lr * (g / (SQRT(s) + eps));                                  \
        P[i] = FASTNN_FLUSH(w, ABS, TINY);                                   \
    }

#define FASTNN_ADAGRAD_DEFINE(NAME, T, SQRT, ABS, TINY)                      \
    FASTNN_CLONES static void NAME(T *P, const T *G, T *S, ptrdiff_t n,      \
                                   int decay, T wd, T eps, T lr)             \
    {                                                                        \
        ptrdiff_t i;                                                         \
        T w, g, s;                                                           \
        if (decay) {                                                         \
            FASTNN_ADAGRAD_LOOP(1, SQRT, ABS, TINY)                          \
        } else {                                                             \
            FASTNN_ADAGRAD_LOOP(0, SQRT, ABS, TINY)                          \
        }                                                                    \
    }

FASTNN_ADAM_DEFINE(fastnn_adam_f32, float, sqrtf, fabsf, FLT_MIN)
FASTNN_ADAM_DEFINE(fastnn_adam_f64, double, sqrt, fabs, DBL_MIN)
FASTNN_RMSPROP_DEFINE(fastnn_rmsprop_f32, float, sqrtf, fabsf, FLT_MIN)
FASTNN_RMSPROP_DEFINE(fastnn_rmsprop_f64, double, sqrt, fabs, DBL_MIN)
FASTNN_ADAGRAD_DEFINE(fastnn_adagrad_f32, float, sqrtf, fabsf, FLT_MIN)
FASTNN_ADAGRAD_DEFINE(fastnn_adagrad_f64, double, sqrt, fabs, DBL_MIN)

#undef FASTNN_ADAM_DEFINE
#undef FASTNN_RMSPROP_DEFINE
#undef FASTNN_ADAGRAD_DEFINE
#undef FASTNN_FLUSH
#undef FASTNN_ADAM_LOOP
#undef FASTNN_RMSPROP_LOOP
#undef FASTNN_RMSPROP_CENTERED
#undef FASTNN_ADAGRAD_LOOP

#endif /* FASTNN_OPTIM_CORE_H */
