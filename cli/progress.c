/* Progress line: see progress.h. */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Monotonic wall-clock time in seconds. */
double dj_progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dj_progress_init(dj_progress *p, FILE *f, double interval) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = f && isatty(fileno(f));
    p->interval = interval > 0 ? interval : 30;
    p->tty_interval = 0.2;
    p->last = -1;
}

void dj_progress_update(dj_progress *p, int force, const char *fmt, ...) {
    if (!p->f) return;
    double now = dj_progress_now();
    double every = p->tty ? p->tty_interval : p->interval;
    if (!force && p->last >= 0 && now - p->last < every) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (p->tty) {
        /* Pad with spaces over a longer previous line, then stay on it. */
        size_t pad = p->shown > len ? p->shown - len : 0;
        fprintf(p->f, "\r%s%*s", line, (int)pad, "");
        if (pad) fprintf(p->f, "\r%s", line);
        p->shown = len;
    } else {
        fprintf(p->f, "%s\n", line);
    }
    fflush(p->f);
    p->last = now;
}

void dj_progress_clear(dj_progress *p) {
    if (!p->f || !p->tty || !p->shown) return;
    fprintf(p->f, "\r%*s\r", (int)p->shown, "");
    fflush(p->f);
    p->shown = 0;
}

void dj_format_duration(double s, char *buf, size_t size) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t < 60)
        snprintf(buf, size, "%lds", t);
    else if (t < 3600)
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else
        snprintf(buf, size, "%ldd%02ldh", t / 86400, (t % 86400) / 3600);
}
