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
 */
#ifndef FASTNN_OPTIM_CORE_H
#define FASTNN_OPTIM_CORE_H

#include <math.h>
#include <stddef.h>

#define FASTNN_ADAM_DEFINE(NAME, T, SQRT)                                    \
    static void NAME(T *P, const T *G, T *M, T *V, T *VMAX, ptrdiff_t n,     \
                     int amsgrad, int decay, int coupled, T wd, T shrink,    \
                     T one_minus_b1, T b2, T one_minus_b2, T step_size,      \
                     T bc2_sqrt, T eps)                                      \
    {                                                                        \
        ptrdiff_t i;                                                         \
        T w, g, m, v, vm;                                                    \
        for (i = 0; i < n; i++) {                                            \
            w = P[i];                                                        \
            g = G[i];                                                        \
            if (decay) {                                                     \
                if (coupled)                                                 \
                    g = g + wd * w;                                          \
                else                                                         \
                    w = w * shrink;                                          \
            }                                                                \
            m = M[i] + one_minus_b1 * (g - M[i]);                            \
            M[i] = m;                                                        \
            v = V[i] * b2 + one_minus_b2 * (g * g);                          \
            V[i] = v;                                                        \
            if (amsgrad) {                                                   \
                vm = VMAX[i];                                                \
                if (v > vm || v != v) /* np.maximum: NaN wins */             \
                    vm = v;                                                  \
                VMAX[i] = vm;                                                \
                v = vm;                                                      \
            }                                                                \
            P[i] = w - step_size * (m / (SQRT(v) / bc2_sqrt + eps));         \
        }                                                                    \
    }

#define FASTNN_RMSPROP_DEFINE(NAME, T, SQRT)                                 \
    static void NAME(T *P, const T *G, T *A, T *BUF, T *GA, ptrdiff_t n,     \
                     int has_momentum, int centered, int decay, T wd, T rho, \
                     T one_minus_rho, T momentum, T eps, T lr)               \
    {                                                                        \
        ptrdiff_t i;                                                         \
        T w, g, a, ga, d, b;                                                 \
        for (i = 0; i < n; i++) {                                            \
            w = P[i];                                                        \
            g = G[i];                                                        \
            if (decay)                                                       \
                g = g + wd * w;                                              \
            a = A[i] * rho + one_minus_rho * (g * g);                        \
            A[i] = a;                                                        \
            if (centered) {                                                  \
                ga = GA[i] + one_minus_rho * (g - GA[i]);                    \
                GA[i] = ga;                                                  \
                d = SQRT(a - ga * ga);                                       \
            } else {                                                         \
                d = SQRT(a);                                                 \
            }                                                                \
            d = d + eps;                                                     \
            if (has_momentum) {                                              \
                b = BUF[i] * momentum + g / d;                               \
                BUF[i] = b;                                                  \
                P[i] = w - lr * b;                                           \
            } else {                                                         \
                P[i] = w - lr * (g / d);                                     \
            }                                                                \
        }                                                                    \
    }

#define FASTNN_ADAGRAD_DEFINE(NAME, T, SQRT)                                 \
    static void NAME(T *P, const T *G, T *S, ptrdiff_t n, int decay, T wd,   \
                     T eps, T lr)                                            \
    {                                                                        \
        ptrdiff_t i;                                                         \
        T w, g, s;                                                           \
        for (i = 0; i < n; i++) {                                            \
            w = P[i];                                                        \
            g = G[i];                                                        \
            if (decay)                                                       \
                g = g + wd * w;                                              \
            s = S[i] + g * g;                                                \
            S[i] = s;                                                        \
            P[i] = w - lr * (g / (SQRT(s) + eps));                           \
        }                                                                    \
    }

FASTNN_ADAM_DEFINE(fastnn_adam_f32, float, sqrtf)
FASTNN_ADAM_DEFINE(fastnn_adam_f64, double, sqrt)
FASTNN_RMSPROP_DEFINE(fastnn_rmsprop_f32, float, sqrtf)
FASTNN_RMSPROP_DEFINE(fastnn_rmsprop_f64, double, sqrt)
FASTNN_ADAGRAD_DEFINE(fastnn_adagrad_f32, float, sqrtf)
FASTNN_ADAGRAD_DEFINE(fastnn_adagrad_f64, double, sqrt)

#undef FASTNN_ADAM_DEFINE
#undef FASTNN_RMSPROP_DEFINE
#undef FASTNN_ADAGRAD_DEFINE

#endif /* FASTNN_OPTIM_CORE_H */
