/* threads.c: how many OpenMP threads kernels use, and keeping OpenMP usable across fork.
 *
 * The count is process configuration, like OMP_NUM_THREADS, not model state: it is the one piece of
 * mutable global state in C, and it holds no data a result depends on (results are bitwise the same at
 * any count). OpenMP keeps its own count per thread (omp_set_num_threads sets the calling thread's
 * nthreads-var only), so a count set from one Python thread would not reach kernels called from
 * another. cnn holds the count, and before each parallel region the calling thread's OpenMP count is
 * brought to it. That count is also what threadpoolctl reads and writes through the same libgomp:
 * when it differs from what cnn last left in this thread, someone set it since (threadpool_limits), and
 * it wins in this thread until it is put back. */
#include "cnn.h"
#ifdef _OPENMP
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>

static atomic_int process_count; /* cnn_set_num_threads' count; at load, the OpenMP default */
static int load_count;           /* the OpenMP default at load: every thread's count until someone sets it */
static _Thread_local int left;   /* this thread's OpenMP count as cnn last saw or set it; 0: never */
static _Thread_local int cap;    /* at most this many threads in this thread (cnn_cap_threads); 0: no cap */
static _Thread_local int paused; /* this thread's pool was shut down before it forked */
static atomic_int pool_lost;     /* in a child forked with the pool still up: its workers do not exist */

int cnn_num_threads(void)
{
    if (atomic_load_explicit(&pool_lost, memory_order_relaxed)) return 1;
    int want = atomic_load_explicit(&process_count, memory_order_relaxed), now = omp_get_max_threads();
    if (now != (left ? left : load_count)) return now; /* threadpoolctl's (or anyone's) limit in this thread */
    if (cap && want > cap) want = cap;
    if (now != want) omp_set_num_threads(want);
    left = want;
    return want;
}

/* While other processes keep cores busy, a fit caps the threads its own thread's kernels use (the Python
 * side measures the free cores: python/cnn/_contention.py). Per thread, so other threads' counts stay. */
void cnn_cap_threads(int n) { cap = n; }

void cnn_set_num_threads(int n)
{
    atomic_store_explicit(&process_count, n, memory_order_relaxed);
    omp_set_num_threads(n);
    left = n;
}

/* libgomp keeps a pool of worker threads per thread that opened a region; fork copies the pool's
 * bookkeeping but not its threads, so the child's next region waits forever for workers that do not
 * exist. Shutting the forking thread's pool down first (the only thread a child has) lets the child,
 * and the parent at its next region, start a fresh one: the child keeps the parent's count and can
 * change it. omp_pause_resource_all fails only inside a parallel region; a child forked so runs on
 * one thread rather than hang. */
static void before_fork(void) { paused = omp_pause_resource_all(omp_pause_soft) == 0; }
static void in_child(void)
{
    if (!paused) atomic_store_explicit(&pool_lost, 1, memory_order_relaxed);
}

static int atfork_error;
static void register_once(void)
{
    load_count = omp_get_max_threads();
    atomic_store_explicit(&process_count, load_count, memory_order_relaxed);
    atfork_error = pthread_atfork(before_fork, NULL, in_child);
}

int cnn_threads_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_once);
    return atfork_error;
}
#else
int cnn_num_threads(void) { return 1; }
void cnn_set_num_threads(int n) { (void)n; }
void cnn_cap_threads(int n) { (void)n; }
int cnn_threads_init(void) { return 0; }
#endif
