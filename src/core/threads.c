/* One threading runtime for everything: OpenMP. oneDNN (Debian's build uses
 * libgomp) and the library's own loops share its thread pool, so no two
 * runtimes spin against each other on the two cores. */
#include <omp.h>

#include "dmvjnd/core.h"

void dj_set_num_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
}

int dj_get_num_threads(void) { return omp_get_max_threads(); }
