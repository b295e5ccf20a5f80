/* A spinning barrier for the threads of one fused training call.
 *
 * fastnn's Cython training loop can split every SGD step over T threads (see
 * _train.pyx): T Python threads enter the same compiled loop, release the GIL
 * and meet at two barriers per step. A step takes 0.3 to 15 ms, so the wait at
 * a barrier is short: spin on the generation counter (with the CPU's pause
 * hint) and only after FASTNN_SPINS rounds start yielding the core, which
 * keeps a loaded machine (more runnable threads than cores) from stalling.
 *
 * sync[0]: threads arrived at the current barrier; sync[1]: generation, bumped
 * by the last thread to arrive; sync[2]: abort flag, set when a thread fails
 * before it reaches the loop (the others must not wait for it forever).
 * Returns 0 when all T threads have arrived, -1 when aborted.
 */
#ifndef FASTNN_BARRIER_H
#define FASTNN_BARRIER_H

#include <stdint.h>

#if defined(_MSC_VER)
#include <intrin.h>
#include <windows.h>
#define FASTNN_LOAD(p) InterlockedCompareExchange64((volatile LONG64 *)(p), 0, 0)
#define FASTNN_STORE(p, v) InterlockedExchange64((volatile LONG64 *)(p), (v))
#define FASTNN_ADD(p, v) InterlockedAdd64((volatile LONG64 *)(p), (v))
#define FASTNN_PAUSE() YieldProcessor()
#define FASTNN_YIELD() SwitchToThread()
#else
#include <sched.h>
#define FASTNN_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define FASTNN_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define FASTNN_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#if defined(__x86_64__) || defined(__i386__)
#define FASTNN_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define FASTNN_PAUSE() __asm__ __volatile__("yield")
#else
#define FASTNN_PAUSE() ((void)0)
#endif
#define FASTNN_YIELD() sched_yield()
#endif

#define FASTNN_SPINS 20000

static int fastnn_barrier(int64_t *sync, int64_t n_threads)
{
    int64_t gen;
    long spins = 0;
    if (n_threads <= 1)
        return FASTNN_LOAD(&sync[2]) ? -1 : 0;
    gen = FASTNN_LOAD(&sync[1]);
    if (FASTNN_ADD(&sync[0], 1) == n_threads) {
        /* Last to arrive: reset the count before releasing the others, who
         * cannot arrive at the next barrier before they see the new gen. */
        FASTNN_STORE(&sync[0], 0);
        FASTNN_STORE(&sync[1], gen + 1);
        return FASTNN_LOAD(&sync[2]) ? -1 : 0;
    }
    while (FASTNN_LOAD(&sync[1]) == gen) {
        if (FASTNN_LOAD(&sync[2]))
            return -1;
        if (spins < FASTNN_SPINS) {
            ++spins;
            FASTNN_PAUSE();
        } else {
            FASTNN_YIELD();
        }
    }
    return FASTNN_LOAD(&sync[2]) ? -1 : 0;
}

/* Set the abort flag (a thread failed; the others leave at their next barrier). */
static void fastnn_barrier_abort(int64_t *sync)
{
    FASTNN_STORE(&sync[2], 1);
}

#endif /* FASTNN_BARRIER_H */
