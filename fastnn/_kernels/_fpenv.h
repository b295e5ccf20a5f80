/* Subnormals flushed to zero for the calling thread, during a training call.
 *
 * Weights that only weight decay moves (MNIST's border pixels never feed a
 * gradient) shrink geometrically under Adam and coupled L2, and their products
 * with the decay and with each other land in the subnormal range, where every
 * x86 multiply and add takes a microcode assist, a hundred cycles and more: a
 * 784-256-10 Adam epoch grew from 0.40 to 0.47 s over four epochs. The
 * adaptive optimizers already store such values as zero (_optim_core.h); this
 * also flushes the intermediate results (FTZ) and reads subnormal operands as
 * zero (DAZ), as TensorFlow and XLA do on CPUs. It changes nothing above the
 * smallest normal number (1.2e-38 in float32), and is restored on return.
 * Elsewhere than x86 it does nothing.
 */
#ifndef FASTNN_FPENV_H
#define FASTNN_FPENV_H

#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE__)
#include <xmmintrin.h>
#define FASTNN_FTZ_DAZ 0x8040u /* MXCSR bits 15 (FTZ) and 6 (DAZ) */

static unsigned int fastnn_flush_subnormals(void)
{
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | FASTNN_FTZ_DAZ);
    return old;
}

static void fastnn_restore_fpenv(unsigned int old)
{
    _mm_setcsr(old);
}
#else
static unsigned int fastnn_flush_subnormals(void) { return 0; }
static void fastnn_restore_fpenv(unsigned int old) { (void)old; }
#endif

#endif /* FASTNN_FPENV_H */
