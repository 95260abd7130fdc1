/* Error codes, the per-thread last-error message, and the log hook. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dmvjnd/core.h"

static _Thread_local char last_error[1024];

const char *dj_strerror(int status) {
    switch (status) {
    case DJ_OK: return "success";
    case DJ_EINVAL: return "invalid argument";
    case DJ_ENOMEM: return "out of memory";
    case DJ_EIO: return "input/output error";
    case DJ_EFORMAT: return "malformed file";
    case DJ_ENOTFOUND: return "not found";
    case DJ_EBACKEND: return "compute backend error";
    case DJ_ENUMERIC: return "non-finite number";
    case DJ_EINTERNAL: return "internal error";
    default: return "unknown error";
    }
}

const char *dj_last_error(void) { return last_error; }

int dj_error(int status, const char *fmt, ...) {
    /* Format into a scratch buffer first: callers often pass dj_last_error()
     * itself as an argument, to prefix context to an inner message. */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return status;
}

static void default_log(int level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "dmvjnd: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
}

static dj_log_fn log_fn = default_log;
static void *log_user;
static int log_max = DJ_LOG_WARN;

void dj_set_log(dj_log_fn fn, void *user, int max_level) {
    log_fn = fn ? fn : default_log;
    log_user = user;
    log_max = max_level;
}

void dj_log(int level, const char *fmt, ...) {
    if (level > log_max) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}

const char *dj_version(void) { return DJ_VERSION_STRING; }
