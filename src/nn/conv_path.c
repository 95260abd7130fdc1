/* The process-wide convolution path: names, the CPU check, DMVJND_CONV and
 * dj_conv_set_path (see include/dmvjnd/conv_path.h for why it is
 * process-wide). */
#include "nn/conv_path.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/conv_path.h"
#include "dmvjnd/core.h"

#define PATH_WINOGRAD_BEST (-1) /* "winograd": resolved from the CPU */

static const char *const path_names[] = {"direct", "winograd-avx2", "winograd-avx512"};

/* The selected path (a dj_conv_path_id or PATH_WINOGRAD_BEST); `explicit_`
 * once dj_conv_set_path chose it, so DMVJND_CONV no longer counts. */
static int selected = PATH_WINOGRAD_BEST;
static int explicit_;
/* DMVJND_CONV, parsed once: its path, or env_bad with the message. */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int env_path = PATH_WINOGRAD_BEST, env_bad;
static char env_msg[256];

static int cpu_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* The name of the first AVX-512 feature the kernels need that the CPU lacks,
 * or NULL when it has them all. */
static const char *cpu_avx512_missing(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return "avx512f";
    if (!__builtin_cpu_supports("avx512bw")) return "avx512bw";
    if (!__builtin_cpu_supports("avx512vl")) return "avx512vl";
    if (!__builtin_cpu_supports("avx512dq")) return "avx512dq";
    if (!cpu_avx2()) return "avx2/fma";
    return NULL;
#else
    return "avx512f";
#endif
}

int dj_conv_path_cpu_has(dj_conv_path_id id) {
    switch (id) {
    case DJ_CONV_PATH_DIRECT: return 1;
    case DJ_CONV_PATH_WINOGRAD_AVX2: return cpu_avx2();
    case DJ_CONV_PATH_WINOGRAD_AVX512: return cpu_avx512_missing() == NULL;
    }
    return 0;
}

/* The message of a path the CPU lacks, in buf. */
static void lacks(char *buf, size_t n, const char *who, dj_conv_path_id id) {
    const char *feat = id == DJ_CONV_PATH_WINOGRAD_AVX512 ? cpu_avx512_missing() : "avx2/fma";
    snprintf(buf, n, "%s: convolution path '%s' needs a CPU with %s; this CPU lacks %s", who, path_names[id],
             id == DJ_CONV_PATH_WINOGRAD_AVX512 ? "AVX-512 (avx512f, avx512bw, avx512vl, avx512dq)" : "AVX2 and FMA",
             feat ? feat : "it");
}

int dj_conv_path_require(dj_conv_path_id id, const char *who) {
    if (dj_conv_path_cpu_has(id)) return DJ_OK;
    char msg[256];
    lacks(msg, sizeof msg, who, id);
    return dj_error(DJ_EINVAL, "%s", msg);
}

/* Parses a path name into *path; else writes the message. */
static int parse(const char *name, const char *who, int *path, char *msg, size_t n) {
    if (name && !strcmp(name, "winograd")) {
        *path = PATH_WINOGRAD_BEST;
        return 0;
    }
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, path_names[i])) {
            if (!dj_conv_path_cpu_has((dj_conv_path_id)i)) {
                lacks(msg, n, who, (dj_conv_path_id)i);
                return -1;
            }
            *path = i;
            return 0;
        }
    snprintf(msg, n, "%s: unknown convolution path '%.64s' (winograd, winograd-avx2, winograd-avx512 or direct)",
             who, name ? name : "(null)");
    return -1;
}

static void read_env(void) {
    const char *v = getenv("DMVJND_CONV");
    if (v && *v) env_bad = parse(v, "DMVJND_CONV", &env_path, env_msg, sizeof env_msg) != 0;
}

int dj_conv_set_path(const char *name) {
    char msg[256];
    int path;
    if (parse(name, "dj_conv_set_path", &path, msg, sizeof msg) != 0) return dj_error(DJ_EINVAL, "%s", msg);
    selected = path;
    explicit_ = 1;
    return DJ_OK;
}

static int resolve(int path) {
    if (path != PATH_WINOGRAD_BEST) return path;
    if (dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX512)) return DJ_CONV_PATH_WINOGRAD_AVX512;
    if (dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX2)) return DJ_CONV_PATH_WINOGRAD_AVX2;
    return DJ_CONV_PATH_DIRECT;
}

int dj_conv_path_get(dj_conv_path_id *id) {
    if (!explicit_) {
        pthread_once(&env_once, read_env);
        if (env_bad) return dj_error(DJ_EINVAL, "%s", env_msg);
        *id = (dj_conv_path_id)resolve(env_path);
        return DJ_OK;
    }
    *id = (dj_conv_path_id)resolve(selected);
    return DJ_OK;
}

int dj_conv_path_check(void) {
    dj_conv_path_id id;
    return dj_conv_path_get(&id);
}

const char *dj_conv_path_name(void) {
    dj_conv_path_id id;
    if (dj_conv_path_get(&id) != DJ_OK) return "invalid";
    return path_names[id];
}
