/* threads.c: the OpenMP thread count. The count lives in the OpenMP runtime, not in cnn. */
#include "cnn.h"
#ifdef _OPENMP
#include <omp.h>
#endif

int cnn_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void cnn_set_num_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}
