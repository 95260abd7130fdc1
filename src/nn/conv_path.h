/* The process-wide convolution path (include/dmvjnd/conv_path.h): what the
 * library's convolution code asks of it (internal API). */
#ifndef DMVJND_NN_CONV_PATH_H
#define DMVJND_NN_CONV_PATH_H

typedef enum dj_conv_path_id {
    DJ_CONV_PATH_DIRECT = 0,
    DJ_CONV_PATH_WINOGRAD_AVX2 = 1,
    DJ_CONV_PATH_WINOGRAD_AVX512 = 2,
} dj_conv_path_id;

/* The resolved path in *id (DMVJND_CONV read on the first call unless
 * dj_conv_set_path came first); DJ_EINVAL when DMVJND_CONV is bad. */
int dj_conv_path_get(dj_conv_path_id *id);

/* 1 when this CPU runs the path's kernels. */
int dj_conv_path_cpu_has(dj_conv_path_id id);

/* DJ_EINVAL, naming the missing CPU feature, unless the CPU runs `id`. */
int dj_conv_path_require(dj_conv_path_id id, const char *who);

#endif
