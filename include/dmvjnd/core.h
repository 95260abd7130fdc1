/*
 * The core of the public C API: version, error codes and messages, the log
 * hook, the thread count. Every other header and every source file builds
 * on it; dmvjnd/dmvjnd.h is the umbrella that includes it with the engine's
 * headers. The conventions of the whole library are at the top of
 * dmvjnd/dmvjnd.h.
 */
#ifndef DMVJND_CORE_H
#define DMVJND_CORE_H

#ifdef __cplusplus
extern "C" {
#endif

#define DJ_VERSION_MAJOR 0
#define DJ_VERSION_MINOR 1
#define DJ_VERSION_PATCH 0
#define DJ_VERSION_STRING "0.1.0"

/* Error codes. 0 is success; every failure is negative. */
enum dj_status {
    DJ_OK = 0,
    DJ_EINVAL = -1,    /* invalid argument: wrong shape, out-of-range value   */
    DJ_ENOMEM = -2,    /* allocation failed                                  */
    DJ_EIO = -3,       /* file cannot be opened, read, written or renamed    */
    DJ_EFORMAT = -4,   /* file content is malformed: truncated, bad header   */
    DJ_ENOTFOUND = -5, /* a named tensor, file or key is missing             */
    DJ_EBACKEND = -6,  /* oneDNN refused or picked a reference kernel        */
    DJ_ENUMERIC = -7,  /* NaN or Inf where a finite number is required       */
    DJ_EINTERNAL = -8  /* a bug: an invariant of the library did not hold   */
};

/* Static description of a status code ("invalid argument", ...). */
const char *dj_strerror(int status);

/* Message of the last failure in the calling thread (never NULL; "" if none). */
const char *dj_last_error(void);

/* Record a failure: formats the thread's last-error message and returns
 * `status`, so library code can write `return dj_error(DJ_EIO, "...", ...)`. */
int dj_error(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Log levels and hook. The default hook writes warnings and errors to stderr.
 * Process-wide, not a setting of a graph or job: messages come from every
 * layer (file loaders, the backend, the training job) with no context at
 * hand, and an application has one place its messages go. Set it once at
 * start-up, before other threads call the library; dj_log may be called
 * from any thread (the hook must be thread-safe). */
enum dj_log_level { DJ_LOG_ERROR = 0, DJ_LOG_WARN = 1, DJ_LOG_INFO = 2, DJ_LOG_DEBUG = 3 };
typedef void (*dj_log_fn)(int level, const char *msg, void *user);
void dj_set_log(dj_log_fn fn, void *user, int max_level);
void dj_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Number of threads used by oneDNN and the library's own loops (OpenMP).
 * 0 means "all cores". */
void dj_set_num_threads(int n);
int dj_get_num_threads(void);

const char *dj_version(void);

#ifdef __cplusplus
}
#endif

#endif
